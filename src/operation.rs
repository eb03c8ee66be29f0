//! What stamp was asked to do to a customer: the one list of operations, read by the
//! pipeline, the reports, the renderers and the tool finder.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Deploy,
    Plan,
    Destroy,
    Render,
    Drift,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Plan => "plan",
            Operation::Destroy => "destroy",
            Operation::Render => "render",
            Operation::Drift => "drift",
        }
    }
}

/// The operation a history record names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryOp {
    #[default]
    Deploy,
    Rollback,
    Rollout,
}

impl HistoryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryOp::Deploy => "deploy",
            HistoryOp::Rollback => "rollback",
            HistoryOp::Rollout => "rollout",
        }
    }
}
