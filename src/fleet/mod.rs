//! A fleet run: which customers (`selection`), the commit each git_id names
//! (`revisions`), and running them side by side (`scheduler`) as far as memory holds
//! them (`memory`), and rollouts: waves over a selection (`waves`), their record in S3
//! (`rollout_record`, `rollout_store`), the run (`rollout`), the soak that watches
//! a wave (`soak`) and rollbacks (`rollback`). What the customers of a run share is in `crate::shared`.

pub mod memory;
pub mod revisions;
pub mod rollback;
pub mod rollout;
pub mod rollout_record;
pub mod rollout_store;
pub mod scheduler;
pub mod selection;
pub mod soak;
pub mod waves;
