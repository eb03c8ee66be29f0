//! Everything the operator sees: events from the engine and their renderers, the
//! summaries, and the confirmation prompt.

pub mod events;
pub mod plain;
pub mod prompt;
pub mod summary;
pub mod terminal;
