//! A fleet run: which customers (`selection`), the commit each git_id names
//! (`revisions`), and running them side by side (`scheduler`) as far as memory holds
//! them (`memory`). What the customers of a run share is in `crate::shared`.

pub(crate) mod memory;
pub(crate) mod revisions;
pub(crate) mod scheduler;
pub(crate) mod selection;
