//! `status`: what is deployed, per customer, read from the states in S3 (no
//! terraform run): env, region, the revision and AMI the frontends run, the public
//! URL, when each stack was last applied, whether a state lock is held right now,
//! and the last local run's result. Customers are read side by side.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::config::{Customer, Fleet};
use crate::customer::plan::state_keys;
use crate::customer::report::RunReport;
use crate::error::{EXIT_STAGE_FAILED, Error};
use crate::names::{BucketName, CustomerName, EnvName};
use crate::tools::aws::{Aws, api_error};
use crate::tools::find;
use crate::tools::process::StageLog;
use crate::tools::terraform::{self, LockInfo};

/// State objects read at once (each customer has two, plus their locks).
const READ_PARALLEL: usize = 32;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct StackStatus {
    /// `<name>/vpc` or `<name>/frontends/<env>`.
    pub key: String,
    pub deployed: bool,
    /// When the state object was last written: the stack's last apply.
    pub applied_at: Option<String>,
    pub serial: Option<u64>,
    pub resources: usize,
    /// A state lock held right now (`<key>.tflock`): who, what, since when.
    pub lock: Option<LockInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct LastRun {
    pub operation: String,
    pub status: String,
    pub started_at: String,
    /// The deploy journal's unfinished run: the stage the next deploy resumes at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumes_at: Option<String>,
    /// The deploy journal cannot be read (the next deploy refuses, saying why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct CustomerStatus {
    pub customer: String,
    pub env: String,
    pub region: String,
    pub state_bucket: Option<String>,
    pub deployed: bool,
    /// The app revision of the AMI the frontends run, from its tags: the git_id it
    /// was baked for (`stamp:git_id`) and the commit that named (`stamp:commit`).
    pub revision: Option<String>,
    pub commit: Option<String>,
    pub ami_id: Option<String>,
    pub public_url: Option<String>,
    pub stacks: BTreeMap<String, StackStatus>,
    pub last_run: Option<LastRun>,
    /// The current release (the newest deploy that ended ok, from the history in the
    /// state bucket) and the one before it (the newest ok one of another release).
    pub release: Option<ReleaseRef>,
    pub previous_release: Option<ReleaseRef>,
    pub error: Option<String>,
}

/// A release as `status` names it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct ReleaseRef {
    pub id: String,
    pub git_id: String,
    pub commit: String,
    pub ami_id: Option<String>,
    pub operation: String,
    pub finished_at: String,
}

impl ReleaseRef {
    fn of(r: &crate::customer::release::HistoryRecord) -> Self {
        Self {
            id: r.release_id.clone(),
            git_id: r.release.git_id.clone(),
            commit: r.release.commit.clone(),
            ami_id: r.release.ami.clone(),
            operation: r.operation.as_str().to_owned(),
            finished_at: r.finished_at.clone(),
        }
    }
}

pub(super) async fn status(fleet: &Fleet, names: &[CustomerName], env: Option<&EnvName>, as_json: bool) -> Result<(), Error> {
    let started = Instant::now();
    if let Some(e) = env {
        fleet.check_env(e)?;
    }
    let mut customers = Vec::new();
    for n in names {
        let mut c = fleet.load_customer(n)?;
        if let Some(e) = env {
            c.env = e.clone();
        }
        customers.push(c);
    }
    let aws_path = find::find_aws(fleet)?;
    let region = customers.first().map(|c| c.region.clone()).unwrap_or_else(|| fleet.region.clone());
    let tool_env = find::tool_env(fleet, &region, &fleet.paths.work)?;
    let base = Aws::new(fleet, aws_path.clone(), tool_env);
    let mut log = StageLog::discard_with_notes();
    let account = crate::stages::bucket::account_for_bucket(fleet, &base, "status", &mut log).await?;

    // Every customer's states, side by side on this thread.
    let sem = Rc::new(tokio::sync::Semaphore::new(READ_PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in customers.iter().enumerate() {
        let (c, sem, aws, account) = (c.clone(), sem.clone(), base.clone(), account.clone());
        let fleet_bucket = crate::stages::bucket::render_name(fleet, &c, &account);
        let work = fleet.paths.work.join(c.name.as_str());
        set.spawn_local(async move {
            let _permit = sem.acquire().await;
            let aws = Aws { region: c.region.to_string(), ..aws };
            (i, one(&aws, &c, fleet_bucket, &work).await)
        });
    }
    let mut rows: Vec<Option<CustomerStatus>> = vec![None; customers.len()];
    while let Some(done) = set.join_next().await {
        let (i, row) = done.map_err(|e| Error::stage(format!("status task: {e}")))?;
        rows[i] = Some(row);
    }
    let mut rows: Vec<CustomerStatus> = rows.into_iter().flatten().collect();

    // The revision of each AMI, from stamp's tags: one describe-images per region.
    let mut by_region: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r.ami_id.is_some() {
            by_region.entry(r.region.clone()).or_default().push(i);
        }
    }
    for (region, idx) in by_region {
        let env = find::tool_env(fleet, &crate::names::Region::parse(&region).map_err(Error::usage)?, &fleet.paths.work)?;
        let aws = Aws::with_api(fleet, aws_path.clone(), env, base.api.clone());
        match aws.image_revisions("status", &mut log).await {
            Ok(revs) => {
                for i in idx {
                    let ami = rows[i].ami_id.clone().unwrap_or_default();
                    let rev = revs.get(&ami).cloned().unwrap_or_default();
                    rows[i].revision = rev.git_id;
                    rows[i].commit = rev.commit;
                }
            }
            Err(e) => {
                for i in idx {
                    rows[i].error.get_or_insert_with(|| format!("reading the AMIs' tags: {e}"));
                }
            }
        }
    }

    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let locks = held_locks(fleet, &rows);
    // Under GitHub Actions (a step after a cancelled or failed deploy): the table in
    // the job summary, with each held lock and the commands to check and release it.
    if let Some(path) = &crate::ui::ci_env::get().env.step_summary
        && let Err(e) = crate::ui::github::append(path, &summary_markdown(&rows, &locks, SystemTime::now()))
    {
        eprintln!("warning: cannot append the status to $GITHUB_STEP_SUMMARY: {e}");
    }
    if as_json {
        let summary = serde_json::json!({
            "total": rows.len(),
            "deployed": rows.iter().filter(|r| r.deployed).count(),
            "locked": rows.iter().filter(|r| r.stacks.values().any(|s| s.lock.is_some())).count(),
            "errors": failed,
            "wall_time_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        });
        super::json_out::print("status", serde_json::json!({"customers": rows, "summary": summary}));
    } else {
        print!("{}", table(&rows, SystemTime::now()));
        eprintln!(
            "{} customers, {} deployed, {} with a state lock held, read in {:.2}s",
            rows.len(),
            rows.iter().filter(|r| r.deployed).count(),
            rows.iter().filter(|r| r.stacks.values().any(|s| s.lock.is_some())).count(),
            started.elapsed().as_secs_f64()
        );
        for h in &locks {
            eprintln!(
                "{}: the {} state is locked by {} ({}, since {}). If no run is active any more, check and release it with:\n    {}\n    {}",
                h.customer,
                h.stack,
                h.info.who,
                h.info.operation,
                h.info.created,
                h.lock.aws_command(),
                h.lock.unlock_command(&h.info.id)
            );
        }
        for r in rows.iter() {
            if let Some(e) = &r.error {
                eprintln!("error: {}: {e}", r.customer);
            }
        }
    }
    if failed > 0 {
        return Err(Error::Reported { message: format!("the status of {failed} customer(s) could not be read"), code: EXIT_STAGE_FAILED });
    }
    Ok(())
}

async fn one(aws: &Aws, c: &Customer, bucket: Result<BucketName, String>, work: &std::path::Path) -> CustomerStatus {
    let mut row = CustomerStatus {
        customer: c.name.to_string(),
        env: c.env.to_string(),
        region: c.region.to_string(),
        state_bucket: None,
        deployed: false,
        revision: None,
        commit: None,
        ami_id: None,
        public_url: None,
        stacks: BTreeMap::new(),
        last_run: last_run(work),
        release: None,
        previous_release: None,
        error: None,
    };
    let bucket = match bucket {
        Ok(b) => b,
        Err(m) => {
            row.error = Some(m);
            return row;
        }
    };
    row.state_bucket = Some(bucket.to_string());
    let mut log = StageLog::discard_with_notes();
    for (stack, key) in state_keys(c) {
        match stack_status(aws, &mut log, &bucket, &key).await {
            Ok((s, outputs)) => {
                if stack != "vpc" {
                    let get = |k: &str| outputs.get(k).and_then(|v| v.value.as_str()).map(String::from);
                    row.ami_id = get("ami_id");
                    row.public_url = get("public_url");
                }
                row.stacks.insert(stack, s);
            }
            Err(e) => {
                row.error = Some(e.to_string());
                break;
            }
        }
    }
    row.deployed = row.stacks.values().any(|s| s.deployed && s.resources > 0);
    if row.error.is_none() {
        match crate::customer::release::read_recent(aws, &mut log, &bucket, c.name.as_str()).await {
            Ok(records) => {
                let (current, previous) = crate::customer::release::current_and_previous(&records);
                row.release = current.map(ReleaseRef::of);
                row.previous_release = previous.map(ReleaseRef::of);
            }
            Err(e) => row.error = Some(format!("reading its history: {e}")),
        }
    }
    row
}

async fn stack_status(aws: &Aws, log: &mut StageLog, bucket: &BucketName, key: &str) -> Result<(StackStatus, terraform::Outputs), Error> {
    let mut lock_log = StageLog::discard_with_notes();
    let (state, lock) = tokio::join!(
        aws.api.get_object(log, &aws.region, bucket, key),
        terraform::read_lock(&aws.api, &mut lock_log, &aws.region, bucket, key)
    );
    let state = state.map_err(|e| api_error(format!("reading s3://{bucket}/{key}"), e))?;
    let lock = lock.map_err(|e| api_error(format!("reading s3://{bucket}/{key}.tflock"), e))?;
    let Some(state) = state else {
        return Ok((
            StackStatus { key: key.to_owned(), deployed: false, applied_at: None, serial: None, resources: 0, lock },
            Default::default(),
        ));
    };
    let v: Value = serde_json::from_str(&state.text).map_err(|e| Error::stage(format!("s3://{bucket}/{key} is not a state: {e}")))?;
    let outputs = terraform::outputs_from_state(&state.text).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?;
    let resources = terraform::state_resource_count(&state.text).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?;
    Ok((
        StackStatus {
            key: key.to_owned(),
            deployed: true,
            applied_at: state.last_modified.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            serial: v.get("serial").and_then(Value::as_u64),
            resources,
            lock,
        },
        outputs,
    ))
}

fn last_run(work: &std::path::Path) -> Option<LastRun> {
    let r = RunReport::read(&work.join("last-run.json")).ok()??;
    let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    use crate::customer::journal::{Journal, RunState};
    let name = work.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let (resumes_at, journal_error) = match Journal::read(&Journal::path(work), &name) {
        Ok(Some(j)) if j.status != RunState::Complete => (j.first_not_done().map(|s| s.to_string()), None),
        Ok(_) => (None, None),
        Err(e) => (None, Some(e.to_string().lines().next().unwrap_or_default().to_owned())),
    };
    Some(LastRun { operation: r.operation.as_str().to_owned(), status, started_at: r.started_at, resumes_at, journal_error })
}

/// A state lock held right now, and where it is (for the commands that check and
/// release it).
pub(super) struct HeldLock {
    pub customer: String,
    pub stack: String,
    pub info: LockInfo,
    pub lock: crate::running::StateLock,
}

/// Every lock the rows show, customer by customer.
fn held_locks(fleet: &Fleet, rows: &[CustomerStatus]) -> Vec<HeldLock> {
    let mut out = Vec::new();
    for r in rows {
        let Some(bucket) = &r.state_bucket else { continue };
        for (stack, s) in &r.stacks {
            if let Some(info) = &s.lock {
                let lock = crate::running::StateLock::of_stack(fleet, &r.customer, &r.region, bucket, &s.key, std::path::Path::new(stack));
                out.push(HeldLock { customer: r.customer.clone(), stack: stack.clone(), info: info.clone(), lock });
            }
        }
    }
    out
}

/// A Markdown table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The status as a job summary section: the table, then each held lock with its
/// holder and the exact commands to check it and (once no run is active) release it.
pub(super) fn summary_markdown(rows: &[CustomerStatus], locks: &[HeldLock], now: SystemTime) -> String {
    let mut s = format!(
        "### `stamp status`: {} customer{}, {} with a state lock held\n\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rows.iter().filter(|r| r.stacks.values().any(|s| s.lock.is_some())).count()
    );
    s.push_str(&format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len())));
    for r in rows {
        s.push_str(&format!("| {} |\n", table_cells(r, now).iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    for h in locks {
        s.push_str(&format!(
            "\n> [!WARNING]\n> **{}** {}: the state lock is held by {}. A run is applying this stack, or one was \
             cancelled or killed before terraform released it.\n\nCheck it (the lock object; `stamp status` shows it too):\n\n\
             ```sh\n{}\n{}\n```\n\nOnce no run is active any more, release it (stamp never does):\n\n```sh\n{}\n```\n",
            cell(&h.customer),
            cell(&h.stack),
            cell(&h.info.describe()),
            h.lock.status_command(),
            h.lock.aws_command(),
            h.lock.unlock_command(&h.info.id)
        ));
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        s.push_str(&format!("\n- ❌ **{}**: {}\n", cell(&r.customer), cell(r.error.as_deref().unwrap_or_default())));
    }
    s.push('\n');
    s
}

/// "deploy failed (resumes at frontends)".
fn last_run_text(l: &LastRun) -> String {
    let mut s = format!("{} {}", l.operation, l.status);
    if let Some(at) = &l.resumes_at {
        s.push_str(&format!(" (resumes at {at})"));
    } else if l.journal_error.is_some() {
        s.push_str(" (journal unreadable)");
    }
    s
}

/// "master@0123456789ab", the git_id or the commit alone, or "-".
fn revision_text(git_id: Option<&str>, commit: Option<&str>) -> String {
    let short = commit.map(|c| &c[..12.min(c.len())]);
    match (git_id, short) {
        (Some(g), Some(c)) if !commit.is_some_and(|full| full.eq_ignore_ascii_case(g)) => format!("{g}@{c}"),
        (_, Some(c)) => c.to_owned(),
        (Some(g), None) => g.to_owned(),
        (None, None) => "-".into(),
    }
}

/// The status table's columns.
const HEADER: [&str; 12] =
    ["CUSTOMER", "ENV", "REGION", "REVISION", "AMI", "RELEASE", "PREVIOUS", "VPC", "FRONTENDS", "LOCK", "LAST RUN", "URL"];

/// One row of the status table: its cells, in the header's order.
fn table_cells(r: &CustomerStatus, now: SystemTime) -> Vec<String> {
    let age = |s: &Option<String>| -> String {
        let Some(t) = s.as_deref().and_then(|t| humantime::parse_rfc3339(t).ok()) else { return "-".into() };
        let secs = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
        match secs {
            0..60 => format!("{secs}s ago"),
            60..3600 => format!("{}m ago", secs / 60),
            3600..86400 => format!("{}h ago", secs / 3600),
            _ => format!("{}d ago", secs / 86400),
        }
    };
    let stack = |name: &str| -> String {
        match r.stacks.iter().find(|(k, _)| k.as_str() == name || (name == "frontends" && k.starts_with("frontends"))) {
            Some((_, s)) if s.deployed => age(&s.applied_at),
            _ => "not deployed".into(),
        }
    };
    let locks: Vec<String> = r.stacks.iter().filter(|(_, s)| s.lock.is_some()).map(|(k, _)| format!("LOCKED {k}")).collect();
    vec![
        r.customer.clone(),
        r.env.clone(),
        r.region.clone(),
        revision_text(r.revision.as_deref(), r.commit.as_deref()),
        r.ami_id.clone().unwrap_or_else(|| "-".into()),
        r.release.as_ref().map(|x| x.id.clone()).unwrap_or_else(|| "-".into()),
        r.previous_release
            .as_ref()
            .map(|x| format!("{} ({})", x.id, revision_text(Some(&x.git_id), Some(&x.commit))))
            .unwrap_or_else(|| "-".into()),
        stack("vpc"),
        stack("frontends"),
        if locks.is_empty() { "-".into() } else { locks.join(", ") },
        r.last_run.as_ref().map(last_run_text).unwrap_or_else(|| "-".into()),
        if r.error.is_some() { "ERROR (below)".into() } else { r.public_url.clone().unwrap_or_else(|| "-".into()) },
    ]
}

/// The status table (stdout).
pub(super) fn table(rows: &[CustomerStatus], now: SystemTime) -> String {
    let mut lines: Vec<Vec<String>> = vec![HEADER.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        lines.push(table_cells(r, now));
    }
    crate::ui::summary::columns(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_ages_locks_and_not_deployed() {
        let now = humantime::parse_rfc3339("2026-11-25T12:00:00Z").unwrap();
        let stack = |at: Option<&str>, lock: bool| StackStatus {
            key: "k".into(),
            deployed: at.is_some(),
            applied_at: at.map(String::from),
            serial: Some(3),
            resources: 2,
            lock: lock.then(|| LockInfo {
                who: "ci@host".into(),
                operation: "OperationTypeApply".into(),
                created: "x".into(),
                id: "1".into(),
            }),
        };
        let row = |name: &str, vpc: Option<&str>, fe: Option<&str>, lock: bool| CustomerStatus {
            customer: name.into(),
            env: "production".into(),
            region: "eu-west-1".into(),
            state_bucket: None,
            deployed: vpc.is_some(),
            revision: fe.map(|_| "v7".into()),
            commit: fe.map(|_| "0123456789abcdef0123456789abcdef01234567".into()),
            ami_id: fe.map(|_| "ami-1".into()),
            public_url: fe.map(|_| "http://lb".into()),
            stacks: BTreeMap::from([("vpc".into(), stack(vpc, false)), ("frontends/production".into(), stack(fe, lock))]),
            last_run: None,
            release: None,
            previous_release: None,
            error: None,
        };
        let t =
            table(&[row("acme", Some("2026-11-25T11:58:00Z"), Some("2026-11-25T09:00:00Z"), true), row("globex", None, None, false)], now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CUSTOMER  ENV"), "{t}");
        assert!(lines[1].contains("v7@0123456789ab") && lines[1].contains("2m ago") && lines[1].contains("3h ago"), "{t}");
        assert!(lines[1].contains("LOCKED frontends/production") && lines[1].ends_with("http://lb"), "{t}");
        assert!(lines[2].contains("not deployed"), "{t}");
    }
}
