//! The `--json` contract. Every command's JSON on stdout is one document whose
//! top-level shape does not depend on what was selected (one customer or many):
//! `{"schema_version": 2, "kind": "<command>", "customers": [...], "summary": {...}}`
//! (`doctor`, which has no customers, has `checks` instead). Each kind is described
//! by docs/schema/<kind>.schema.json, and the tests validate real outputs against it.

use serde_json::{Map, Value};

/// Bumped when a document's shape changes incompatibly. 2: the first version with
/// one shape per kind (before it a single customer's report was printed bare).
pub(super) const SCHEMA_VERSION: u32 = 2;

/// `body` (an object) with `schema_version` and `kind` added.
pub(super) fn document(kind: &str, body: Value) -> Value {
    let mut out = Map::new();
    out.insert("schema_version".into(), SCHEMA_VERSION.into());
    out.insert("kind".into(), kind.into());
    match body {
        Value::Object(m) => out.extend(m),
        other => debug_assert!(false, "a --json body is an object, not {other}"),
    }
    Value::Object(out)
}

/// Prints the document on stdout (data only there).
pub(super) fn print(kind: &str, body: Value) {
    println!("{}", serde_json::to_string_pretty(&document(kind, body)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_the_body_with_version_and_kind() {
        let doc = document("list", serde_json::json!({"customers": [], "summary": {"total": 0}}));
        assert_eq!(doc.as_object().unwrap().len(), 4);
        assert_eq!(doc["schema_version"], SCHEMA_VERSION);
        assert_eq!(doc["kind"], "list");
        assert_eq!(doc["summary"]["total"], 0);
    }
}
