//! A fleet run: which customers (`selection`), the commit each git_id names
//! (`revisions`), and running them side by side (`scheduler`) as far as memory holds
//! them (`memory`), and the soak that watches a rollout's wave (`soak`). What the
//! customers of a run share is in `crate::shared`.

pub mod memory;
pub mod revisions;
pub mod scheduler;
pub mod selection;
pub mod soak;
