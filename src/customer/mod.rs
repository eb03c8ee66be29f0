//! One customer: its resolved plan (`plan`, no I/O but reading the files), its
//! pipeline (`pipeline`), the report of a run (`report`), and its releases and
//! deploy history (`release`).

pub mod journal;
pub mod pipeline;
pub mod plan;
pub mod release;
pub mod report;
pub mod resume;
