//! The external tools: the one process runner, and what stamp knows of each tool.

pub mod aws;
pub mod find;
pub mod git;
pub mod packer;
pub mod process;
pub mod relay;
pub mod s3;
pub mod terraform;
pub mod version;
pub mod work_lock;
