//! `history CUSTOMER`: the customer's deploys, newest first, read from the history
//! records in its state bucket (`customer::release`): when, which operation, how it
//! ended, the release, the commit and git_id, the AMI, who ran it and the CI run.

use serde_json::{Value, json};

use crate::config::Fleet;
use crate::customer::release::{HistoryRecord, current_and_previous, open_bucket, read_history};
use crate::error::Error;
use crate::names::CustomerName;
use crate::shared::context::FleetContext;
use crate::tools::find::{self, Tools};
use crate::tools::process::StageLog;

pub(super) async fn history(fleet: Fleet, name: &CustomerName, limit: Option<usize>, as_json: bool) -> Result<(), Error> {
    let c = fleet.load_customer(name)?;
    let ctx = reading_context(fleet)?;
    let mut log = StageLog::discard_with_notes();
    let (aws, bucket) = open_bucket(&ctx, &c, &mut log).await?;
    let mut records = read_history(&aws, &mut log, &bucket, name.as_str(), None).await?;
    // The current and previous releases of the whole history, whatever `--limit` shows.
    let (current, previous) = current_and_previous(&records);
    let (current, previous) = (current.map(|r| r.release_id.clone()), previous.map(|r| r.release_id.clone()));
    records.truncate(limit.unwrap_or(usize::MAX));
    if as_json {
        let deploys: Vec<Value> = records.iter().map(record_json).collect();
        let customer = json!({
            "customer": name.as_str(),
            "env": c.env.as_str(),
            "region": c.region.as_str(),
            "state_bucket": bucket.as_str(),
            "current_release": current,
            "previous_release": previous,
            "deploys": deploys,
        });
        let summary = json!({
            "deploys": records.len(),
            "ok": records.iter().filter(|r| r.outcome.is_ok()).count(),
        });
        super::json_out::print("history", json!({"customers": [customer], "summary": summary}));
        return Ok(());
    }
    if records.is_empty() {
        eprintln!("{name}: no deploy recorded in s3://{bucket}/stamp/history/{name}/");
        return Ok(());
    }
    print!("{}", table(&records, current.as_deref()));
    eprintln!(
        "{} deploy(s) of {name} (s3://{bucket}/stamp/history/{name}/); current release {}, previous {}",
        records.len(),
        current.as_deref().unwrap_or("none"),
        previous.as_deref().unwrap_or("none")
    );
    Ok(())
}

/// A context for the commands that only read from AWS (the AWS CLI is the one tool).
pub(super) fn reading_context(fleet: Fleet) -> Result<FleetContext, Error> {
    let aws = find::find_aws(&fleet)?;
    Ok(FleetContext::new(fleet, Some(Tools { terraform: "terraform".into(), packer: "packer".into(), aws })))
}

/// A record as `--json` shows it: its fields, its object's key; the record's own
/// `schema_version` is the document's business, not repeated per record.
fn record_json(r: &HistoryRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("schema_version");
        m.insert("key".into(), json!(r.key));
    }
    v
}

const HEADER: [&str; 8] = ["TIME", "OPERATION", "RELEASE", "REVISION", "AMI", "BY", "CI", "OUTCOME"];

/// The history table (stdout): one line per deploy, the current release marked.
pub(super) fn table(records: &[HistoryRecord], current: Option<&str>) -> String {
    let mut lines: Vec<Vec<String>> = vec![HEADER.iter().map(|s| s.to_string()).collect()];
    let mut marked = false;
    for r in records {
        let short = &r.release.commit[..12.min(r.release.commit.len())];
        let revision = if r.release.git_id.eq_ignore_ascii_case(&r.release.commit) || short.is_empty() {
            if short.is_empty() { r.release.git_id.clone() } else { short.to_owned() }
        } else {
            format!("{}@{short}", r.release.git_id)
        };
        // The newest ok record of the current release is what runs.
        let release = if !marked && r.outcome.is_ok() && Some(r.release_id.as_str()) == current {
            marked = true;
            format!("{} (current)", r.release_id)
        } else {
            r.release_id.clone()
        };
        let outcome = r.outcome.describe();
        lines.push(vec![
            r.finished_at.clone(),
            r.operation.as_str().to_owned(),
            release,
            revision,
            r.release.ami.clone().unwrap_or_else(|| "-".into()),
            r.actor.clone(),
            r.ci_url.clone().unwrap_or_else(|| "-".into()),
            outcome.lines().next().unwrap_or_default().to_owned(),
        ]);
    }
    crate::ui::summary::columns(&lines)
}
