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
