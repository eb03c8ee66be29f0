//! stamp: one isolated copy of a web service's AWS infrastructure per customer.
//!
//! - `cli` (clap types) -> `commands` (arguments -> options -> operation, output);
//! - `fleet`: which customers, what they share, one bake per image, the scheduler;
//! - `customer`: a customer's resolved plan, its pipeline, its run report;
//! - `stages`: bucket, stack, ami (one file each, typed in and out);
//! - `tools`: the one process runner, terraform, packer, the AWS CLI;
//! - `ui`: events and their renderers, summaries, the prompt;
//! - `config`, `env_vars` (every environment variable stamp reads, checked at start), `render`, `names`, `error`, `signals` (the signal policy), `interrupt` (what stamp says when
//!   interrupted), `cancel`, `retry` (the one retry policy for transient AWS failures).

pub mod cancel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod customer;
pub mod env_vars;
pub mod error;
pub mod events;
pub mod files;
pub mod fleet;
pub mod hash;
pub mod interrupt;
pub mod names;
pub mod operation;
pub mod render;
pub mod retry;
pub mod running;
pub mod shared;
pub mod shell;
pub mod signals;
pub mod stages;
pub mod tools;
pub mod ui;

pub use tools::{aws, packer, terraform};
