//! Summaries printed on stdout when a run ends: one customer's stages and outputs
//! (as stamp always printed), and for several customers the fleet table; `--json`
//! prints the same as data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::customer::report::{Operation, RunReport};
use crate::ui::events::{Status, format_elapsed};

/// The human summary of a run: each stage's status and duration, then the outputs.
pub fn summary_text(r: &RunReport) -> String {
    let verb = match (r.operation, r.status) {
        (_, Status::Failed) => "FAILED",
        (_, Status::Interrupted) => "INTERRUPTED",
        (_, Status::NotStarted) => "NOT STARTED",
        (Operation::Deploy, _) => "deployed",
        (Operation::Plan, _) => "planned",
        (Operation::Destroy, _) => "destroyed",
        (Operation::Render, _) => "rendered",
    };
    let mut s = format!(
        "\n{} {verb}: env {}, region {}, {}\n",
        r.customer,
        r.env,
        r.region,
        format_elapsed(std::time::Duration::from_secs_f64(r.duration_s))
    );
    for st in &r.stages {
        s.push_str(&format!(
            "  {:<10} {:<12} {:>7}  {}\n",
            st.name,
            st.status.word(),
            format_elapsed(std::time::Duration::from_secs_f64(st.duration_s)),
            st.detail
        ));
    }
    let mut flat: Vec<(String, String)> = Vec::new();
    // In pipeline order, not alphabetical.
    let sections = ["vpc", "ami_id", "frontends"].into_iter().filter_map(|k| r.outputs.get(k).map(|v| (k, v)));
    for (section, v) in sections {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    flat.push((format!("{section}.{k}"), value_text(v)));
                }
            }
            other => flat.push((section.to_owned(), value_text(other))),
        }
    }
    if !flat.is_empty() {
        s.push_str("outputs:\n");
        for (k, v) in flat {
            s.push_str(&format!("  {k} = {v}\n"));
        }
    }
    if let Some(url) = r.outputs.get("frontends").and_then(|f| f.get("public_url")).and_then(Value::as_str) {
        s.push_str(&format!("public URL: {url}\n"));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str(&format!("logs: {}\n", r.log_dir.display()));
    s
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The fleet table: customer, env, region, result, duration, changes, public URL;
/// then each customer that did not succeed, with its failed stage and log.
pub fn fleet_text(reports: &[RunReport], wall: Duration) -> String {
    let mut s =
        format!("\n{:<24} {:<12} {:<12} {:<12} {:>8}  {:<18} PUBLIC URL\n", "CUSTOMER", "ENV", "REGION", "RESULT", "TIME", "CHANGES");
    for r in reports {
        let c = r.changes();
        let changes =
            if r.stages.iter().any(|st| st.changes.is_some()) { format!("+{} ~{} -{}", c.add, c.change, c.destroy) } else { "-".into() };
        s.push_str(&format!(
            "{:<24} {:<12} {:<12} {:<12} {:>8}  {:<18} {}\n",
            r.customer,
            r.env,
            r.region,
            r.status.word(),
            format_elapsed(Duration::from_secs_f64(r.duration_s)),
            changes,
            r.public_url().unwrap_or("-")
        ));
    }
    let count = |st: &[Status]| reports.iter().filter(|r| st.contains(&r.status)).count();
    s.push_str(&format!(
        "\n{} customers in {}: {} ok, {} failed, {} interrupted, {} not started\n",
        reports.len(),
        format_elapsed(wall),
        count(&[Status::Ok, Status::Unchanged, Status::Skipped]),
        count(&[Status::Failed]),
        count(&[Status::Interrupted]),
        count(&[Status::NotStarted]),
    ));
    for r in reports.iter().filter(|r| !r.status.succeeded()) {
        match (r.status, r.failed_stage) {
            (Status::NotStarted, _) => {
                s.push_str(&format!("  {}: not started ({})\n", r.customer, r.error.as_deref().unwrap_or("the run stopped")))
            }
            (_, Some(stage)) => s.push_str(&format!(
                "  {}: {} at stage {stage}; log {}\n",
                r.customer,
                r.status.word(),
                r.log_dir.join(format!("{stage}.log")).display()
            )),
            _ => s.push_str(&format!(
                "  {}: {}: {}\n",
                r.customer,
                r.status.word(),
                r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default()
            )),
        }
    }
    s
}

/// `--json` with several customers: `{"customers": [...], "summary": {...}}`, each
/// element of `customers` the single-customer report.
pub fn fleet_json(reports: &[RunReport], wall: Duration) -> Value {
    let count = |st: &[Status]| reports.iter().filter(|r| st.contains(&r.status)).count();
    json!({
        "customers": reports,
        "summary": {
            "total": reports.len(),
            "ok": count(&[Status::Ok, Status::Unchanged, Status::Skipped]),
            "failed": count(&[Status::Failed]),
            "interrupted": count(&[Status::Interrupted]),
            "not_started": count(&[Status::NotStarted]),
            "wall_time_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
        }
    })
}
