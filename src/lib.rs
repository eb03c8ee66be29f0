//! stamp: one isolated copy of a web service's AWS infrastructure per customer.
//! `cli` holds the clap types; `app` turns them into settings and runs the engine
//! (`pipeline`), which reports through `progress` and runs tools through `tool`.

pub mod app;
pub mod aws;
pub mod cli;
pub mod config;
pub mod error;
pub mod names;
pub mod packer;
pub mod pipeline;
pub mod progress;
pub mod render;
pub mod signals;
pub mod terraform;
pub mod tool;
