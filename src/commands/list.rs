//! `list`: the fleet's customers, one line each, and the last run here.

use std::io::Write;

use serde_json::json;

use crate::config::Fleet;
use crate::customer::report::RunReport;
use crate::error::Error;

pub(super) fn list(fleet: &Fleet, as_json: bool) -> Result<(), Error> {
    let mut rows = Vec::new();
    for entry in fleet.customer_names()? {
        let row = match entry {
            Ok(name) => match fleet.load_customer(&name) {
                Ok(c) => {
                    let last = match RunReport::read(&fleet.paths.work.join(name.as_str()).join("last-run.json")) {
                        Ok(Some(l)) => format!("{} {}", l.operation.as_str(), l.status.word()),
                        Ok(None) => "never run here".into(),
                        Err(e) => format!("unreadable: {e}"),
                    };
                    json!({"customer": name.as_str(), "env": c.env.as_str(), "region": c.region.as_str(), "git_id": c.git_id, "tags": c.tags, "last_run": last})
                }
                Err(e) => json!({"customer": name.as_str(), "error": e.to_string()}),
            },
            Err((path, m)) => {
                json!({"customer": path.file_stem().map(|s| s.to_string_lossy().to_string()), "error": format!("{}: {m}", path.display())})
            }
        };
        rows.push(row);
    }
    // Invalid files fail the command whichever way it prints (exit 2).
    let bad = rows.iter().filter(|r| r.get("error").is_some()).count();
    let invalid = || Err(Error::usage(format!("{bad} customer file(s) are invalid")));
    // One buffered writer: ten thousand lines are one write, not ten thousand.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if as_json {
        let summary = json!({"total": rows.len(), "invalid": bad});
        let doc = super::json_out::document("list", json!({"customers": rows, "summary": summary}));
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        let _ = out.flush();
        return if bad > 0 { invalid() } else { Ok(()) };
    }
    if rows.is_empty() {
        eprintln!("no customers in {}", fleet.paths.customers.display());
    }
    let _ = writeln!(out, "{:<24} {:<12} {:<14} {:<16} LAST RUN", "CUSTOMER", "ENV", "REGION", "GIT_ID");
    for r in &rows {
        if let Some(e) = r.get("error") {
            let _ = writeln!(out, "{:<24} invalid: {}", r["customer"].as_str().unwrap_or("?"), e.as_str().unwrap_or(""));
        } else {
            let _ = writeln!(
                out,
                "{:<24} {:<12} {:<14} {:<16} {}",
                r["customer"].as_str().unwrap_or(""),
                r["env"].as_str().unwrap_or(""),
                r["region"].as_str().unwrap_or(""),
                r["git_id"].as_str().unwrap_or(""),
                r["last_run"].as_str().unwrap_or("")
            );
        }
    }
    let _ = out.flush();
    if bad > 0 {
        return invalid();
    }
    Ok(())
}
