//! Everything the operator sees: the renderers of the engine's events (`crate::events`), the
//! summaries, and the confirmation prompt.

pub mod ci;
pub mod ci_env;
pub mod colour;
pub mod github;
pub mod plain;
pub mod prompt;
pub mod rollout;
pub mod summary;
pub mod terminal;
