//! The approved-plan file: `stamp plan --out FILE` records the fleet's plan, and
//! `stamp deploy --approved-plan FILE` applies only the destroys and replacements it
//! lists (the check of `stages::stack::approve`). One shape whatever the number of
//! customers:
//!
//! `{"schema_version": 1, "kind": "plan", "customers": [<run report>...], "summary": {...}}`
//!
//! where each run report is what `plan --json` prints for one customer (its stack
//! stages carry `resources` and `destroys`) and `summary` is the fleet summary.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::customer::report::RunReport;
use crate::error::Error;
use crate::files::write_atomic;
use crate::operation::Operation;
use crate::stages::contract::{Reviewed, Reviewer, planned_destroys};
use crate::ui::summary;

/// Bumped when the file's shape changes; a deploy refuses any other.
pub const SCHEMA_VERSION: u32 = 1;
pub const KIND: &str = "plan";

/// The document `plan --out` writes.
pub fn document(reports: &[RunReport], wall: Duration) -> Value {
    let mut doc = summary::fleet_json(reports, wall);
    let mut out = serde_json::Map::new();
    out.insert("schema_version".into(), SCHEMA_VERSION.into());
    out.insert("kind".into(), KIND.into());
    if let Value::Object(m) = &mut doc {
        out.extend(std::mem::take(m));
    }
    Value::Object(out)
}

/// Before anything starts: `--out FILE` can be written where it is asked for.
pub fn check_out(path: &Path) -> Result<(), Error> {
    let hint = "give a file in an existing directory, e.g. --out plan.json";
    if path.is_dir() {
        return Err(Error::usage_hint(format!("--out {}: is a directory", path.display()), hint));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::usage_hint(format!("--out {}: the directory {} does not exist", path.display(), dir.display()), hint));
    }
    Ok(())
}

/// Writes the plan file atomically (a reader never sees half of it).
pub fn write(path: &Path, reports: &[RunReport], wall: Duration) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(&document(reports, wall)).map_err(|e| Error::stage(format!("the plan file: {e}")))?;
    write_atomic(path, &(text + "\n"))
}

#[derive(Deserialize)]
struct Header {
    schema_version: Option<u32>,
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    customers: Vec<RunReport>,
}

/// Reads an approved plan: the destroys and replacements it lists per customer and
/// stack. A file that cannot be read, is not such a plan, or comes from another
/// schema is a usage error (exit 2), before anything starts.
pub fn read(path: &Path) -> Result<Reviewed, Error> {
    let what = format!("--approved-plan {}", path.display());
    let make = "a file written by `stamp plan CUSTOMERS --out FILE`";
    let text = std::fs::read_to_string(path).map_err(|e| Error::usage_hint(format!("{what}: cannot read it: {e}"), make))?;
    let bad = |m: String| Error::usage_hint(format!("{what}: {m}"), format!("give {make}, unchanged"));
    let header: Header = serde_json::from_str(&text).map_err(|e| bad(format!("not a plan file: {e}")))?;
    if header.kind.as_deref() != Some(KIND) {
        return Err(bad(format!("not a plan file: its \"kind\" is {:?}, not \"{KIND}\"", header.kind.unwrap_or_default())));
    }
    if header.schema_version != Some(SCHEMA_VERSION) {
        return Err(bad(format!(
            "schema_version {} is not {SCHEMA_VERSION}, the one this stamp reads: plan again with this stamp",
            header.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())
        )));
    }
    let body: Body = serde_json::from_str(&text).map_err(|e| bad(format!("its customers cannot be read: {e}")))?;
    if let Some(r) = body.customers.iter().find(|r| r.operation != Operation::Plan) {
        return Err(bad(format!("the report of {} is a {}, not a plan", r.customer, r.operation.as_str())));
    }
    Ok(Reviewed { destroys: planned_destroys(&body.customers), by: Reviewer::PlanFile(path.to_path_buf()) })
}
