//! Everything the operator sees: events from the engine and their renderers, the
//! summaries, and the confirmation prompt.

pub mod ci;
pub mod colour;
pub mod events;
pub mod github;
pub mod plain;
pub mod prompt;
pub mod summary;
pub mod terminal;
