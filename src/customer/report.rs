//! What a customer's run did: its stages, outputs and result, as printed with
//! `--json` and kept in `<work>/<customer>/last-run.json` and `runs/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ui::events::{Stage, Status};

/// Bumped when a field changes meaning; readers refuse a newer one.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Deploy,
    Plan,
    Destroy,
    Render,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Plan => "plan",
            Operation::Destroy => "destroy",
            Operation::Render => "render",
        }
    }
}

/// Resources a plan adds, changes and destroys (a replacement counts in add and destroy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
}

impl Changes {
    pub fn total(self) -> u64 {
        self.add + self.change + self.destroy
    }

    pub fn plus(self, o: Changes) -> Changes {
        Changes { add: self.add + o.add, change: self.change + o.change, destroy: self.destroy + o.destroy }
    }
}

/// What one stage did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    pub name: Stage,
    pub status: Status,
    pub duration_s: f64,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// What this stack's plan destroys or replaces: "<action> <address>".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(default)]
    pub schema_version: u32,
    pub customer: String,
    pub operation: Operation,
    pub env: String,
    pub region: String,
    pub status: Status,
    pub started_at: String,
    pub duration_s: f64,
    pub state_bucket: Option<String>,
    pub stages: Vec<StageReport>,
    pub outputs: BTreeMap<String, Value>,
    pub log_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The stage that failed or was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<Stage>,
}

impl RunReport {
    /// A customer the run never started (the fleet stopped first).
    pub fn not_started(customer: &str, operation: Operation, env: &str, region: &str, log_dir: PathBuf, why: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            customer: customer.to_owned(),
            operation,
            env: env.to_owned(),
            region: region.to_owned(),
            status: Status::NotStarted,
            started_at: String::new(),
            duration_s: 0.0,
            state_bucket: None,
            stages: Vec::new(),
            outputs: BTreeMap::new(),
            log_dir,
            notes: Vec::new(),
            error: Some(why.to_owned()),
            failed_stage: None,
        }
    }

    /// Every stack's changes added up.
    pub fn changes(&self) -> Changes {
        self.stages.iter().filter_map(|s| s.changes).fold(Changes::default(), Changes::plus)
    }

    pub fn public_url(&self) -> Option<&str> {
        self.outputs.get("frontends").and_then(|f| f.get("public_url")).and_then(Value::as_str)
    }

    /// Reads a saved report; `None` when there is none, an error when it is unreadable.
    pub fn read(path: &std::path::Path) -> Result<Option<Self>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let r: RunReport = serde_json::from_str(&text).map_err(|e| format!("{}: not a run report: {e}", path.display()))?;
        if r.schema_version > SCHEMA_VERSION {
            return Err(format!("{}: written by a newer stamp (schema {})", path.display(), r.schema_version));
        }
        Ok(Some(r))
    }
}
