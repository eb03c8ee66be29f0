//! One customer: its resolved plan (`plan`, no I/O but reading the files), its
//! pipeline (`pipeline`), and the report of a run (`report`).

pub(crate) mod journal;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod resume;
