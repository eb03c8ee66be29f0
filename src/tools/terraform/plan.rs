//! What a terraform plan says: its changes (`terraform show -json`), their actions,
//! which drift matters, and the change line (the one wording of change counts).

use serde_json::Value;
use std::collections::BTreeSet;

/// What applying a plan does to one resource, read from `terraform show -json`
/// (`resource_changes[].change.actions`): never from terraform's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    Create,
    Update,
    Delete,
    /// `["delete","create"]` or `["create","delete"]` (create_before_destroy).
    Replace,
    /// A data source read during apply.
    Read,
    /// `removed { lifecycle { destroy = false } }`: leaves the state, stays in AWS.
    Forget,
    NoOp,
}

impl Action {
    /// The action of `change.actions`; `None` for a list terraform does not write.
    pub(crate) fn from_actions(actions: &[&str]) -> Option<Self> {
        Some(match actions {
            ["create"] => Action::Create,
            ["update"] => Action::Update,
            ["delete"] => Action::Delete,
            ["delete", "create"] | ["create", "delete"] => Action::Replace,
            ["read"] => Action::Read,
            ["forget"] => Action::Forget,
            ["no-op"] | [] => Action::NoOp,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Replace => "replace",
            Action::Read => "read",
            Action::Forget => "forget",
            Action::NoOp => "no-op",
        }
    }

    /// terraform's own marker, which carries the meaning without colour.
    pub(crate) fn marker(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
            Action::Read => "<=",
            Action::Forget => ".",
            Action::NoOp => " ",
        }
    }

    /// Whether applying it destroys something.
    pub(crate) fn destroys(self) -> bool {
        matches!(self, Action::Delete | Action::Replace)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One resource of a plan and what applying it does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub(crate) struct ResourceChange {
    pub address: String,
    pub action: Action,
    /// The attributes whose value differs between before and after (`tags.env`:
    /// a map's key), for an update; empty when terraform gave no values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// A replacement because the resource is tainted: its create failed part-way
    /// (a failed provisioner, a timeout) or someone ran `terraform taint`. It is
    /// replaced whatever changed, so an approval check does not ask about it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tainted: bool,
}

pub(super) fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The drift a deploy would put back: of a refresh-only plan's `drift`, the
/// resources gone from AWS (or to be recreated), and the updates whose changed
/// attributes the normal plan (`pending`) changes again. The rest are values the
/// configuration does not manage (set by other resources of the stack, computed
/// values read back after an apply): terraform would not act on them, nor do we.
pub(crate) fn relevant_drift(drift: &[ResourceChange], pending: &[ResourceChange]) -> Vec<ResourceChange> {
    drift
        .iter()
        .filter(|d| {
            let planned = pending.iter().find(|p| p.address == d.address);
            match (d.action, planned) {
                (Action::Update, Some(p)) if p.action == Action::Update => {
                    d.attributes.iter().any(|a| p.attributes.iter().any(|pa| same_or_nested(a, pa)))
                }
                (Action::Update, Some(p)) => p.action != Action::NoOp,
                (Action::Update, None) => false,
                _ => true,
            }
        })
        .cloned()
        .collect()
}

/// `tags.env` and `tags_all.env` are one change for drift: default tags land in tags_all.
pub(super) fn same_or_nested(drifted: &str, planned: &str) -> bool {
    let norm = |a: &str| a.replacen("tags_all", "tags", 1);
    let (d, p) = (norm(drifted), norm(planned));
    d == p || d.starts_with(&format!("{p}.")) || p.starts_with(&format!("{d}."))
}

/// The attributes that differ between `before` and `after` (objects): top-level
/// names, and `name.key` inside a map or a single nested block.
pub(crate) fn changed_attributes(before: &Value, after: &Value) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else { return Vec::new() };
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (bv, av) = (b.get(k).unwrap_or(&Value::Null), a.get(k).unwrap_or(&Value::Null));
        // null, "", [] and {} are one "nothing": providers read an unset map back as {}.
        if bv == av || (blank(bv) && blank(av)) {
            continue;
        }
        match (bv.as_object(), av.as_object()) {
            (Some(_), Some(_)) => out.extend(changed_attributes(bv, av).into_iter().map(|inner| format!("{k}.{inner}"))),
            _ => out.push(k.clone()),
        }
    }
    out
}

impl ResourceChange {
    /// Whether applying it destroys something.
    pub(crate) fn destroys(&self) -> bool {
        self.action.destroys()
    }
}

/// A saved plan as `terraform show -json <planfile>` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShownPlanJson {
    /// Managed resources the apply would change (no-ops and data reads left out).
    pub changes: Vec<ResourceChange>,
    /// Managed resources whose real state differs from the state file
    /// (`resource_drift`: what a refresh found).
    pub drift: Vec<ResourceChange>,
}

/// Reads the output of `terraform show -json <planfile>`.
pub(crate) fn parse_plan_json(json: &str) -> Result<ShownPlanJson, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("the plan is not JSON: {e}"))?;
    if v.get("format_version").is_none() {
        return Err("not the JSON of a plan (no format_version)".into());
    }
    let read = |key: &str| -> Result<Vec<ResourceChange>, String> {
        let mut out = Vec::new();
        for rc in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            let address = rc.get("address").and_then(Value::as_str).ok_or_else(|| format!("{key}: an entry has no address"))?;
            if rc.get("mode").and_then(Value::as_str) == Some("data") {
                continue;
            }
            let change = rc.get("change");
            let actions: Vec<&str> = change
                .and_then(|c| c.get("actions"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let action = Action::from_actions(&actions).ok_or_else(|| format!("{address}: unknown actions {actions:?}"))?;
            if !matches!(action, Action::NoOp | Action::Read) {
                let attributes = match (action, change) {
                    (Action::Update, Some(c)) => {
                        changed_attributes(c.get("before").unwrap_or(&Value::Null), c.get("after").unwrap_or(&Value::Null))
                    }
                    _ => Vec::new(),
                };
                let tainted = rc.get("action_reason").and_then(Value::as_str) == Some("replace_because_tainted");
                out.push(ResourceChange { address: address.to_owned(), action, attributes, tainted });
            }
        }
        Ok(out)
    };
    Ok(ShownPlanJson { changes: read("resource_changes")?, drift: read("resource_drift")? })
}

/// Whether a change line tells what a plan would do or what an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tense {
    Plan,
    Applied,
}

/// The one wording of change counts. A plan: "no changes", or "1 to add, 0 to change,
/// 2 to destroy, 1 to replace"; after an apply: "1 added, 0 changed, 2 destroyed, 1
/// replaced", always with the counts (an apply of changed outputs alone adds nothing).
/// `replace` is `None` for terraform's own summary, which counts a replacement as an
/// add and a destroy.
pub(crate) fn change_line(tense: Tense, add: u64, change: u64, destroy: u64, replace: Option<u64>) -> String {
    if tense == Tense::Plan && add + change + destroy + replace.unwrap_or(0) == 0 {
        return "no changes".into();
    }
    let words = match tense {
        Tense::Plan => ["to add", "to change", "to destroy", "to replace"],
        Tense::Applied => ["added", "changed", "destroyed", "replaced"],
    };
    let counts = [Some(add), Some(change), Some(destroy), replace];
    counts.iter().zip(words).filter_map(|(n, w)| n.map(|n| format!("{n} {w}"))).collect::<Vec<_>>().join(", ")
}
