//! What one run shares between its customers: the fleet context (the fleet file,
//! the tools, the stacks read once, the locks two customers must not race on) and
//! the bakery (one bake per image). Below the stages, which use it; above the tools.

pub(crate) mod bakes;
pub(crate) mod context;
