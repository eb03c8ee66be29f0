//! One customer: its resolved plan (`plan`, no I/O but reading the files), its
//! pipeline (`pipeline`), and the report of a run (`report`).

pub mod journal;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod resume;
