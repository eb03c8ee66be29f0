//! The external tools: the one process runner, and what stamp knows of each tool.

pub(crate) mod aws;
pub(crate) mod find;
pub(crate) mod git;
pub(crate) mod packer;
pub mod process;
pub mod relay;
pub mod s3;
pub mod terraform;
pub(crate) mod version;
pub(crate) mod work_lock;
