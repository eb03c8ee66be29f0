//! What a customer's run did: its stages, outputs and result, as printed with
//! `--json` and kept in `<work>/<customer>/last-run.json` and `runs/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{Stage, Status};
use crate::operation::Operation;

/// Bumped when a field changes meaning; readers refuse a newer one.
/// 2: `changes` counts replacements apart (`replace`), no longer in add and destroy;
/// stack stages carry `resources`, `placeholder(s)` and (drift) `drifted`.
pub(crate) const SCHEMA_VERSION: u32 = 2;

pub(crate) use crate::tools::terraform::{Action, LockInfo, ResourceChange};
use crate::tools::terraform::{Tense, change_line};

/// Resources a plan adds, changes, destroys and replaces, each counted once (a
/// replacement is in `replace` only, not in add and destroy as terraform's text counts it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Changes {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    #[serde(default)]
    pub replace: u64,
}

impl Changes {
    /// The counts of a plan's resource changes.
    pub(crate) fn of(resources: &[ResourceChange]) -> Changes {
        let n = |a: Action| resources.iter().filter(|r| r.action == a).count() as u64;
        Changes { add: n(Action::Create), change: n(Action::Update), destroy: n(Action::Delete), replace: n(Action::Replace) }
    }

    pub(crate) fn total(self) -> u64 {
        self.add + self.change + self.destroy + self.replace
    }

    pub(crate) fn plus(self, o: Changes) -> Changes {
        Changes {
            add: self.add + o.add,
            change: self.change + o.change,
            destroy: self.destroy + o.destroy,
            replace: self.replace + o.replace,
        }
    }

    /// A plan's: "no changes" or "1 to add, 0 to change, 0 to destroy, 1 to replace".
    pub(crate) fn describe(self) -> String {
        self.describe_in(Tense::Plan)
    }

    /// The change line in either tense (`tools::terraform::change_line`).
    pub(crate) fn describe_in(self, tense: Tense) -> String {
        change_line(tense, self.add, self.change, self.destroy, Some(self.replace))
    }

    /// The short form of the tables: "+1 ~0 -0 -/+1", each marker as terraform's.
    pub(crate) fn short(self) -> String {
        format!("+{} ~{} -{} -/+{}", self.add, self.change, self.destroy, self.replace)
    }
}

/// An input planned with a stand-in value because the real one does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Placeholder {
    /// The vpc stack is not applied: vpc_id and the subnet ids are placeholders.
    VpcOutputs,
    /// No AMI is baked or deployed yet: ami_id is a placeholder.
    Ami,
}

impl Placeholder {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Placeholder::VpcOutputs => "vpc outputs",
            Placeholder::Ami => "AMI",
        }
    }

    /// "planned with placeholder vpc outputs / AMI: the real plan comes after `stamp deploy`".
    pub(crate) fn label(list: &[Placeholder]) -> String {
        let what: Vec<&str> = list.iter().map(|p| p.as_str()).collect();
        format!("planned with placeholder {}: the real plan comes after `stamp deploy`", what.join(" / "))
    }
}

/// What a stack's plan shows beyond its counts (a stack stage of plan, deploy,
/// destroy and drift); flattened into the stage's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanDetail {
    /// Every resource the plan changes, with its action (no-ops and data reads left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceChange>,
    /// Planned with placeholder inputs: such a plan is never applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
    /// Which inputs were placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placeholders: Vec<Placeholder>,
    /// Planned without a state bucket, against an empty state (a never-deployed customer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_state: bool,
    /// drift only: resources whose real infrastructure differs from the state
    /// (a refresh-only plan); `None` when not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<Vec<ResourceChange>>,
    /// plan only: the stack's state lock, held by another run while this plan (which
    /// takes no lock) read the state: that run may change what the plan shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_held: Option<LockInfo>,
}

/// What one stage did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StageReport {
    pub name: Stage,
    pub status: Status,
    pub duration_s: f64,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// What this stack's plan destroys or replaces: "<action> <address>".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroys: Vec<String>,
    #[serde(flatten)]
    pub plan: PlanDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunReport {
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
    /// deploy, plan: the customer's git_id and the commit it named when this run
    /// looked (what a deploy bakes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
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
    pub(crate) fn not_started(customer: &str, operation: Operation, env: &str, region: &str, log_dir: PathBuf, why: &str) -> Self {
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
            git_id: None,
            commit: None,
            stages: Vec::new(),
            outputs: BTreeMap::new(),
            log_dir,
            notes: Vec::new(),
            error: Some(why.to_owned()),
            failed_stage: None,
        }
    }

    /// Every stack's changes added up.
    pub(crate) fn changes(&self) -> Changes {
        self.stages.iter().filter_map(|s| s.changes).fold(Changes::default(), Changes::plus)
    }

    /// Whether any stack was planned with placeholder inputs.
    pub(crate) fn placeholder(&self) -> bool {
        self.stages.iter().any(|s| s.plan.placeholder)
    }

    /// The resources any stack found drifted, with their stage (drift only).
    pub(crate) fn drifted(&self) -> Vec<(Stage, &ResourceChange)> {
        self.stages.iter().flat_map(|s| s.plan.drifted.iter().flatten().map(move |r| (s.name, r))).collect()
    }

    pub(crate) fn public_url(&self) -> Option<&str> {
        self.outputs.get("frontends").and_then(|f| f.get("public_url")).and_then(Value::as_str)
    }

    /// Reads a saved report; `None` when there is none, an error when it is unreadable.
    pub(crate) fn read(path: &std::path::Path) -> Result<Option<Self>, String> {
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
