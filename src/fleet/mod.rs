//! A fleet run: which customers (`selection`), what they share (`context`), the
//! commit each git_id names (`revisions`), one bake per image (`bakes`), and running
//! them side by side (`scheduler`) as far as memory holds them (`memory`).

pub mod bakes;
pub mod context;
pub mod memory;
pub mod revisions;
pub mod scheduler;
pub mod selection;
