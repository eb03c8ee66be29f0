//! The approved-plan file: `stamp plan --out FILE` records the fleet's plan, and
//! `stamp deploy --approved-plan FILE` applies only the destroys and replacements it
//! lists (the check of `stages::stack::approve`). One shape whatever the number of
//! customers:
//!
//! `{"schema_version": 2, "kind": "plan", "customers": [<run report>...], "summary": {...}}`
//!
//! the document `plan --json` prints (its stack stages carry `resources` and
//! `destroys`; docs/schema/plan.schema.json), so `stamp plan --json > FILE` writes
//! one too. Version 1 files (before every `--json` had one shape) have the same
//! keys and are still read.

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

pub(super) const KIND: &str = "plan";
/// The versions a deploy reads: the `--json` contract's, and 1, the same keys
/// written before it (by `plan --out` only). A deploy refuses any other.
const READS: [u32; 2] = [1, super::json_out::SCHEMA_VERSION];

/// The document `plan --out` writes: what `plan --json` prints.
pub(super) fn document(reports: &[RunReport], wall: Duration) -> Value {
    super::json_out::document(KIND, summary::fleet_json(reports, wall))
}

/// Before anything starts: `--out FILE` can be written where it is asked for.
pub(super) fn check_out(path: &Path) -> Result<(), Error> {
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
pub(super) fn write(path: &Path, reports: &[RunReport], wall: Duration) -> Result<(), Error> {
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
pub(super) fn read(path: &Path) -> Result<Reviewed, Error> {
    let what = format!("--approved-plan {}", path.display());
    let make = "a file written by `stamp plan CUSTOMERS --out FILE`";
    let text = std::fs::read_to_string(path).map_err(|e| Error::usage_hint(format!("{what}: cannot read it: {e}"), make))?;
    let bad = |m: String| Error::usage_hint(format!("{what}: {m}"), format!("give {make}, unchanged"));
    let header: Header = serde_json::from_str(&text).map_err(|e| bad(format!("not a plan file: {e}")))?;
    if header.kind.as_deref() != Some(KIND) {
        return Err(bad(format!("not a plan file: its \"kind\" is {:?}, not \"{KIND}\"", header.kind.unwrap_or_default())));
    }
    if !header.schema_version.is_some_and(|v| READS.contains(&v)) {
        return Err(bad(format!(
            "schema_version {} is not {}, the ones this stamp reads: plan again with this stamp",
            header.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into()),
            READS.map(|v| v.to_string()).join(" or ")
        )));
    }
    let body: Body = serde_json::from_str(&text).map_err(|e| bad(format!("its customers cannot be read: {e}")))?;
    if let Some(r) = body.customers.iter().find(|r| r.operation != Operation::Plan) {
        return Err(bad(format!("the report of {} is a {}, not a plan", r.customer, r.operation.as_str())));
    }
    Ok(Reviewed { destroys: planned_destroys(&body.customers), by: Reviewer::PlanFile(path.to_path_buf()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_file_of_version_1_or_2_is_read_and_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.json");
        for v in [1, 2] {
            std::fs::write(&file, format!(r#"{{"schema_version": {v}, "kind": "plan", "customers": [], "summary": {{}}}}"#)).unwrap();
            let reviewed = read(&file).unwrap_or_else(|e| panic!("version {v}: {e}"));
            assert!(reviewed.destroys.is_empty());
        }
        std::fs::write(&file, r#"{"schema_version": 3, "kind": "plan", "customers": []}"#).unwrap();
        let Err(refused) = read(&file) else { panic!("a version 3 plan file was read") };
        let refused = refused.to_string();
        assert!(refused.contains("schema_version 3 is not 1 or 2"), "{refused}");
    }

    #[test]
    fn the_plan_file_is_the_plan_json_document() {
        let doc = document(&[], Duration::from_secs(1));
        assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(2), Some(KIND)));
        assert_eq!(doc["customers"], serde_json::json!([]));
        assert_eq!(doc["summary"]["total"], 0);
    }
}
