//! stamp: one isolated copy of a web service's AWS infrastructure per customer.
//!
//! The layers, from the top: `commands` (arguments -> options -> an operation,
//! output), `cli` (the clap types), `ui` (renderers, summaries, the prompt), `fleet`
//! (selection, revisions, the scheduler), `customer` (a customer's pipeline, journal
//! and resume decision), `stages` (bucket, stack, ami, smoke, and their contract), the
//! customer data (`customer::plan`, `customer::report`), `shared` (what a run's
//! customers share), `interrupt`, `tools`; below them the leaves (`config`, `render`,
//! `names`, `error`, `env_vars`, `signals`, `cancel`, `retry`, `events`, `running`,
//! `files`, `operation`, `hash`, `shell`). Imports run downward only: ARCHITECTURE.md
//! says what each may import, and `tests/layers.rs` enforces it.

// What is not the crate's API (main.rs, tests/) is `pub(crate)`; this keeps it so.
#![warn(unreachable_pub)]

pub(crate) mod cancel;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub(crate) mod customer;
pub mod env_vars;
pub mod error;
pub mod events;
pub(crate) mod files;
pub mod fleet;
pub(crate) mod hash;
pub(crate) mod interrupt;
pub mod names;
pub(crate) mod operation;
pub(crate) mod render;
pub(crate) mod retry;
pub(crate) mod running;
pub(crate) mod shared;
pub(crate) mod shell;
pub(crate) mod signals;
pub mod stages;
pub mod tools;
pub(crate) mod ui;
