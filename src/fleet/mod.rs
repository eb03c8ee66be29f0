//! A fleet run: which customers (`selection`), what they share (`context`), the
//! commit each git_id names (`revisions`), one bake per image (`bakes`), and running
//! them side by side (`scheduler`).

pub mod bakes;
pub mod context;
pub mod revisions;
pub mod scheduler;
pub mod selection;
