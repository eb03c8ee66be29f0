//! One customer: its resolved plan (`plan`, no I/O but reading the files), its
//! pipeline (`pipeline`), the report of a run (`report`), and its releases and
//! deploy history (`release`).

pub(crate) mod journal;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod release;
pub(crate) mod report;
pub(crate) mod resume;
