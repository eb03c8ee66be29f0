//! terraform's machine-readable UI (`-json`): its events, their diagnostics and
//! the lines stamp shows for them.

use super::plan::*;
use serde_json::Value;

/// A plan's resource changes as its `-json` stream (`planned_change`,
/// `resource_drift`, `change_summary`) told them. When they are only creates,
/// deletes and replaces, nothing drifted and the summary agrees, the stream says
/// all that `terraform show -json` would (an update's changed attributes are only
/// in the saved plan): a first deploy needs no `terraform show` process.
#[derive(Debug, Default)]
pub(crate) struct StreamedPlan {
    pub(super) changes: Vec<ResourceChange>,
    /// (add, change, remove) of the `change_summary`.
    pub(super) summary: Option<(u64, u64, u64)>,
    /// Something the stream does not tell in full: an update, a drift, an import...
    pub(super) incomplete: bool,
}

impl StreamedPlan {
    pub(crate) fn see(&mut self, ev: &TfEvent) {
        match ev {
            TfEvent::PlannedChange { address, action, reason } => {
                let change = |action| ResourceChange { address: address.clone(), action, attributes: vec![], tainted: reason == "tainted" };
                match action.as_str() {
                    "create" => self.changes.push(change(Action::Create)),
                    "delete" => self.changes.push(change(Action::Delete)),
                    "replace" => self.changes.push(change(Action::Replace)),
                    // A data source read is not a change of the stack (as in `parse_plan_json`).
                    "read" => {}
                    _ => self.incomplete = true,
                }
            }
            TfEvent::ResourceDrift { .. } => self.incomplete = true,
            TfEvent::ChangeSummary { add, change, remove, operation } if operation == "plan" => {
                self.summary = Some((*add, *change, *remove))
            }
            _ => {}
        }
    }

    /// The changes, when the stream told them in full (see the type); else `None`:
    /// read the saved plan.
    pub(crate) fn complete(self) -> Option<Vec<ResourceChange>> {
        let (add, change, remove) = self.summary?;
        let count = |a: Action| self.changes.iter().filter(|c| c.action == a).count() as u64;
        let replaces = count(Action::Replace);
        let agrees = add == count(Action::Create) + replaces && change == 0 && remove == count(Action::Delete) + replaces;
        (!self.incomplete && agrees).then_some(self.changes)
    }
}

/// One event of terraform's `-json` machine-readable UI.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TfEvent {
    ChangeSummary {
        add: u64,
        change: u64,
        remove: u64,
        operation: String,
    },
    PlannedChange {
        address: String,
        action: String,
        /// Why a resource is replaced or deleted ("tainted", "requested", ...), or "".
        reason: String,
    },
    /// What a refresh found changed outside terraform (`resource_drift`).
    ResourceDrift {
        address: String,
        action: String,
        message: String,
    },
    ApplyStart {
        address: String,
    },
    /// Terraform's "Still creating... [1m30s elapsed]", every 10 s of a long resource.
    ApplyProgress {
        address: String,
        action: String,
        elapsed_secs: u64,
    },
    ApplyComplete {
        address: String,
    },
    ApplyErrored {
        address: String,
    },
    Diagnostic {
        severity: String,
        summary: String,
        detail: String,
    },
    Other {
        message: String,
    },
}

pub(crate) fn parse_event(line: &str) -> Option<TfEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let addr = |v: &Value| v.get("hook").and_then(|h| h.get("resource")).map(|r| s(r, "addr")).unwrap_or_default();
    Some(match v.get("type").and_then(Value::as_str)? {
        "change_summary" => {
            let c = v.get("changes")?;
            TfEvent::ChangeSummary { add: n(c, "add"), change: n(c, "change"), remove: n(c, "remove"), operation: s(c, "operation") }
        }
        "planned_change" => {
            let c = v.get("change")?;
            let address = c.get("resource").map(|r| s(r, "addr")).unwrap_or_default();
            TfEvent::PlannedChange { address, action: s(c, "action"), reason: s(c, "reason") }
        }
        "resource_drift" => {
            let c = v.get("change")?;
            let address = c.get("resource").map(|r| s(r, "addr")).unwrap_or_default();
            TfEvent::ResourceDrift { address, action: s(c, "action"), message: s(&v, "@message") }
        }
        "apply_start" => TfEvent::ApplyStart { address: addr(&v) },
        "apply_progress" => {
            let h = v.get("hook")?;
            TfEvent::ApplyProgress { address: addr(&v), action: s(h, "action"), elapsed_secs: n(h, "elapsed_seconds") }
        }
        "apply_complete" => TfEvent::ApplyComplete { address: addr(&v) },
        "apply_errored" => TfEvent::ApplyErrored { address: addr(&v) },
        "diagnostic" => {
            let d = v.get("diagnostic")?;
            TfEvent::Diagnostic { severity: s(d, "severity"), summary: s(d, "summary"), detail: s(d, "detail") }
        }
        _ => TfEvent::Other { message: s(&v, "@message") },
    })
}

/// A diagnostic as a human reads it, for failure summaries.
pub(crate) fn diagnostic_text(severity: &str, summary: &str, detail: &str) -> String {
    let mut s = format!("{severity}: {summary}");
    if !detail.is_empty() {
        s.push_str(" — ");
        s.push_str(&detail.replace('\n', " "));
    }
    s
}

/// What terraform waits for while a resource of this type is being applied (the
/// provider polls AWS until then), for the log of a resource that takes long.
pub(crate) fn waiting_for(address: &str, action: &str) -> String {
    let ty = address.rsplit('.').nth(1).unwrap_or_default();
    let deleting = action == "delete";
    let what = match (ty, deleting) {
        ("aws_db_instance", false) => {
            "the RDS instance to report `available` (creation, backups and monitoring set-up take minutes on AWS)"
        }
        ("aws_db_instance", true) => "the RDS instance to be deleted (after its final snapshot)",
        ("aws_autoscaling_group", false) => "the auto-scaling group's instances to be InService, or its instance refresh to finish",
        ("aws_autoscaling_group", true) => "the auto-scaling group's instances to terminate",
        ("aws_lb", false) => "the load balancer to become `active`",
        ("aws_nat_gateway", _) => "the NAT gateway to change state",
        ("aws_kms_key", true) => "the KMS key to be scheduled for deletion",
        (_, true) => "AWS to confirm the deletion",
        _ => "AWS to report the resource ready",
    };
    let verb = match action {
        "create" => "creating",
        "update" => "updating",
        "delete" => "destroying",
        "read" => "reading",
        other => other,
    };
    format!("terraform is still {verb} {address}: it waits for {what}")
}
