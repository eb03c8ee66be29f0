//! A fleet run: which customers (`selection`), the commit each git_id names
//! (`revisions`), and running them side by side (`scheduler`) as far as memory holds
//! them (`memory`), and rollouts: waves over a selection (`waves`), their record in S3
//! (`rollout_record`, `rollout_store`), the run (`rollout`), the soak that watches
//! a wave (`soak`) and rollbacks (`rollback`). What the customers of a run share is in `crate::shared`.

pub(crate) mod memory;
pub(crate) mod revisions;
pub(crate) mod rollback;
pub(crate) mod rollout;
pub(crate) mod rollout_record;
pub(crate) mod rollout_store;
pub(crate) mod scheduler;
pub(crate) mod selection;
pub mod soak;
pub(crate) mod waves;
