//! What stamp reads from a stack's state: its outputs, its lock, its resources
//! and their deletion protection.

use serde_json::Value;
use std::collections::BTreeMap;

/// One output value of `terraform output -json` or of a state file's `outputs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct OutputValue {
    pub value: Value,
    pub sensitive: bool,
}

pub(crate) type Outputs = BTreeMap<String, OutputValue>;

/// Parses `{"name": {"value": ..., "sensitive": bool, "type": ...}}`.
pub(crate) fn parse_outputs(json: &str) -> Result<Outputs, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("outputs are not JSON: {e}"))?;
    let obj = v.as_object().ok_or("outputs are not a JSON object")?;
    Ok(obj
        .iter()
        .map(|(k, o)| {
            let value = o.get("value").cloned().unwrap_or(Value::Null);
            let sensitive = o.get("sensitive").and_then(Value::as_bool).unwrap_or(false);
            (k.clone(), OutputValue { value, sensitive })
        })
        .collect())
}

/// The root outputs held in a state file (format version 4).
pub(crate) fn outputs_from_state(state: &str) -> Result<Outputs, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    match v.get("outputs") {
        Some(o) => parse_outputs(&o.to_string()),
        None => Ok(Outputs::new()),
    }
}

/// How many managed resources a state file holds (data sources do not count:
/// there is nothing to destroy behind them).
/// What terraform says when it gave up waiting for a state lock (`-lock-timeout`).
pub(crate) const LOCK_HELD: &str = "Error acquiring the state lock";

/// A state lock held right now: the object `<state key>.tflock` the S3 backend
/// writes with `use_lockfile = true` (who, what, since when, and the ID that
/// `terraform force-unlock` takes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub(crate) struct LockInfo {
    pub who: String,
    pub operation: String,
    pub created: String,
    pub id: String,
}

impl LockInfo {
    /// "runner@ci-7 (OperationTypeApply, since 2026-11-25T10:00:00Z, lock ID 5e1d...)".
    pub(crate) fn describe(&self) -> String {
        format!("{} ({}, since {}, lock ID {})", self.who, self.operation, self.created, self.id)
    }
}

/// The lock object of the state at `key`, parsed; `None` when no lock is held.
pub(crate) async fn read_lock(
    api: &crate::tools::s3::AwsApi,
    log: &mut crate::tools::process::StageLog,
    region: &str,
    bucket: &crate::names::BucketName,
    key: &str,
) -> Result<Option<LockInfo>, crate::tools::s3::ApiError> {
    let lock = api.get_object(log, region, bucket, &format!("{key}.tflock")).await?;
    Ok(lock.map(|o| parse_lock(&o.text)))
}

/// A lock object's fields ("?" for a field it lacks).
pub(crate) fn parse_lock(text: &str) -> LockInfo {
    let v: Value = serde_json::from_str(text).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    LockInfo { who: s("Who"), operation: s("Operation"), created: s("Created"), id: s("ID") }
}

pub(crate) fn state_resource_count(state: &str) -> Result<usize, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    Ok(v.get("resources")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|r| r.get("mode").and_then(Value::as_str) == Some("managed")).count())
        .unwrap_or(0))
}

/// A resource in a state that refuses deletion while its protection is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Protected {
    /// An RDS instance (`deletion_protection`), by identifier.
    Database { identifier: String },
    /// A load balancer (`enable_deletion_protection`), by ARN.
    LoadBalancer { arn: String },
}

/// The resources of a state file that AWS can protect from deletion (RDS instances,
/// load balancers), whatever the state says of their protection: it may have been
/// switched on by hand after the apply, and only AWS knows (`Aws::still_protected`).
pub(crate) fn protectable_resources(state: &str) -> Result<Vec<Protected>, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    let mut found = Vec::new();
    for r in v.get("resources").and_then(Value::as_array).into_iter().flatten() {
        if r.get("mode").and_then(Value::as_str) != Some("managed") {
            continue;
        }
        let ty = r.get("type").and_then(Value::as_str).unwrap_or_default();
        for i in r.get("instances").and_then(Value::as_array).into_iter().flatten() {
            let a = &i["attributes"];
            let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            match ty {
                "aws_db_instance" if !text("identifier").is_empty() => found.push(Protected::Database { identifier: text("identifier") }),
                "aws_lb" | "aws_alb" if !text("arn").is_empty() => found.push(Protected::LoadBalancer { arn: text("arn") }),
                _ => {}
            }
        }
    }
    Ok(found)
}
