//! Everything the operator sees: the renderers of the engine's events (`crate::events`), the
//! summaries, and the confirmation prompt.

pub(crate) mod ci;
pub(crate) mod ci_env;
pub(crate) mod colour;
pub(crate) mod github;
pub(crate) mod plain;
pub(crate) mod prompt;
pub(crate) mod rollout;
pub(crate) mod summary;
pub(crate) mod terminal;
