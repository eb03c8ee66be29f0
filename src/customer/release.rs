//! Releases and the deploy history. A release is what a customer runs: the app
//! commit, the image, the packer template's hash, the stacks' tree hash, a hash of
//! the settings that feed them, and the fleet repository's commit; its id is a short
//! hash of all that. Every deploy that got as far as its state bucket writes one
//! history record there (`stamp/history/<customer>/<UTC time>-<random>.json`,
//! created only if absent: the history is append-only). `status` reads the current
//! and previous releases from it, `history` lists it, `rollback` pins a plan to an
//! earlier release (`pin_rollback`), `gc` keeps the images the last records name.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Customer;
use crate::customer::plan::{CustomerPlan, Pin, app_context};
use crate::error::Error;
use crate::names::{AmiId, BucketName};
use crate::operation::HistoryOp;
use crate::shared::context::FleetContext;
use crate::tools::aws::{Aws, api_error};
use crate::tools::process::StageLog;
use crate::tools::s3::{ApiError, Put};

/// The version of a history record's shape.
pub const RECORD_SCHEMA: u32 = 1;

/// What a customer runs after a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The app commit the image holds, and the git_id that named it.
    pub commit: String,
    pub git_id: String,
    /// The AMI the frontends run (`None`: the deploy stopped before the AMI stage).
    pub ami: Option<String>,
    /// The image's key (`stamp:image_key`).
    pub image_key: Option<String>,
    /// `sha256` of the packer template's directory.
    pub template_hash: String,
    /// The stacks' tree hash: vpc and the env's frontends directory.
    pub stacks_hash: String,
    /// The settings that feed the stacks and the image: the resolved `[*.vars]`,
    /// env, region, the rendered app configuration, the secrets by name only.
    pub settings_hash: String,
    /// The fleet repository's HEAD ("+dirty" with uncommitted changes); `None`
    /// outside a git repository.
    pub fleet_commit: Option<String>,
}

impl Release {
    /// The short id: a hash of the release's content.
    pub fn id(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        crate::hash::short_hash(&bytes)[..12].to_owned()
    }
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed { stage: Option<String>, message: String },
    Interrupted { stage: Option<String> },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }

    /// "ok", "failed at ami: ...", "interrupted at vpc".
    pub fn describe(&self) -> String {
        let at = |s: &Option<String>| s.as_ref().map(|s| format!(" at {s}")).unwrap_or_default();
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed { stage, message } => format!("failed{}: {message}", at(stage)),
            Outcome::Interrupted { stage } => format!("interrupted{}", at(stage)),
        }
    }
}

/// One deploy, as its history record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub schema_version: u32,
    pub release_id: String,
    pub release: Release,
    pub customer: String,
    pub env: String,
    pub operation: HistoryOp,
    pub started_at: String,
    pub finished_at: String,
    pub outcome: Outcome,
    /// GITHUB_ACTOR, the Travis repository, else `$USER@host`.
    pub actor: String,
    pub ci_url: Option<String>,
    pub stamp_version: String,
    /// The rollout this deploy was part of.
    pub rollout_id: Option<String>,
    /// The object's key (not stored in it).
    #[serde(skip)]
    pub key: String,
}

/// Where a customer's history records are.
pub fn history_prefix(customer: &str) -> String {
    format!("stamp/history/{customer}/")
}

/// A new record's key: sortable UTC time (milliseconds), then random letters (two
/// deploys in the same millisecond do not meet).
pub fn record_key(customer: &str, at: SystemTime) -> String {
    let t: String = humantime::format_rfc3339_millis(at).to_string().chars().filter(|c| *c != '-' && *c != ':').collect();
    let random: String = (0..8).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect();
    format!("{}{t}-{random}.json", history_prefix(customer))
}

/// Who runs stamp: `GITHUB_ACTOR` under GitHub Actions, the repository under Travis
/// CI (it names no user), else `$USER@host`.
pub fn actor() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(a) = var("GITHUB_ACTOR") {
        return a;
    }
    if var("TRAVIS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return format!("travis:{}", var("TRAVIS_REPO_SLUG").unwrap_or_else(|| "?".into()));
    }
    let user = var("USER").or_else(|| var("LOGNAME")).or_else(login_name).unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", hostname())
}

/// The name of the user this process runs as, from the password database.
fn login_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: getpwuid_r(3) writes the entry into `pw` and its strings into `buf`
    // (of the length given); `found` points at `pw` on success, else is null.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(libc::geteuid(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) != 0 || found.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned())
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The stacks' tree hash of a plan: its vpc and frontends directories.
pub fn stacks_hash(ctx: &FleetContext, plan: &CustomerPlan) -> Result<String, Error> {
    let root = &ctx.fleet.paths.terraform;
    let mut parts = Vec::new();
    for rel in [&plan.vpc.rel, &plan.frontends.rel] {
        let dir = root.join(rel);
        let h = crate::customer::journal::hash_path(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        parts.push(format!("{rel}={h}"));
    }
    Ok(crate::customer::journal::hash_bytes(parts.join("\n").as_bytes()))
}

/// The packer template's hash, as the image key and the AMI's tag have it.
pub fn template_hash(ctx: &FleetContext) -> Result<String, Error> {
    crate::tools::packer::template_hash(&ctx.fleet.paths.packer_template).map_err(|e| Error::io("hashing the packer template", e))
}

/// A hash of the settings that feed the stacks and the image (secrets by name only).
pub fn settings_hash(plan: &CustomerPlan) -> String {
    let c = &plan.customer;
    let doc = serde_json::json!({
        "env": c.env.as_str(),
        "region": c.region.as_str(),
        "vpc_vars": c.vpc_vars.values,
        "frontends_vars": c.frontends_vars.values,
        "packer_vars": c.packer_vars.values,
        "secrets": c.secrets.keys().collect::<Vec<_>>(),
        "app_config": plan.app_config,
    });
    crate::customer::journal::hash_bytes(doc.to_string().as_bytes())
}

/// The release a deploy of `plan` makes, with the AMI it got (if it got that far).
pub async fn release_of(ctx: &FleetContext, plan: &CustomerPlan, ami: Option<&str>, image_key: Option<String>) -> Result<Release, Error> {
    let (git_id, commit) = match &plan.revision {
        Some(r) => (r.git_id.clone(), r.commit.clone()),
        None => (plan.customer.git_id.clone(), String::new()),
    };
    Ok(Release {
        commit,
        git_id,
        ami: ami.map(String::from),
        image_key,
        template_hash: template_hash(ctx)?,
        stacks_hash: stacks_hash(ctx, plan)?,
        settings_hash: settings_hash(plan),
        fleet_commit: ctx.fleet_commit().await,
    })
}

/// Writes a record (created only if absent; a key taken meanwhile gets new random
/// letters); returns its key.
pub async fn write_record(aws: &Aws, log: &mut StageLog, bucket: &BucketName, rec: &HistoryRecord) -> Result<String, Error> {
    let body = serde_json::to_string_pretty(rec).map_err(|e| Error::stage(format!("history record: {e}")))?;
    let mut last = None;
    for _ in 0..3 {
        let key = record_key(&rec.customer, SystemTime::now());
        match aws.api.put_object(log, &aws.region, bucket, &key, &body, Put::IfAbsent).await {
            Ok(_) => return Ok(key),
            Err(ApiError::Precondition { .. }) => last = Some(key),
            Err(e) => return Err(api_error(format!("cannot write the history record s3://{bucket}/{key}"), e)),
        }
    }
    Err(Error::stage(format!("cannot write the history record: s3://{bucket}/{} and two others were taken", last.unwrap_or_default())))
}

/// A customer's history records, newest first; `limit`: only the newest so many.
/// A record that cannot be read or parsed is an error naming its key.
pub async fn read_history(
    aws: &Aws,
    log: &mut StageLog,
    bucket: &BucketName,
    customer: &str,
    limit: Option<usize>,
) -> Result<Vec<HistoryRecord>, Error> {
    read_history_until(aws, log, bucket, customer, &|read: &[HistoryRecord]| limit.is_some_and(|n| read.len() >= n)).await
}

/// The newest records, up to the current and the previous release (what `status`
/// and a rollback to the previous release need): one listing, then a read per
/// record, newest first, stopping there.
pub async fn read_recent(aws: &Aws, log: &mut StageLog, bucket: &BucketName, customer: &str) -> Result<Vec<HistoryRecord>, Error> {
    read_history_until(aws, log, bucket, customer, &|read: &[HistoryRecord]| current_and_previous(read).1.is_some()).await
}

/// Records newest first, until `enough` says the ones read so far are enough.
async fn read_history_until(
    aws: &Aws,
    log: &mut StageLog,
    bucket: &BucketName,
    customer: &str,
    enough: &dyn Fn(&[HistoryRecord]) -> bool,
) -> Result<Vec<HistoryRecord>, Error> {
    let prefix = history_prefix(customer);
    let listed = aws
        .api
        .list_objects(log, &aws.region, bucket, &prefix)
        .await
        .map_err(|e| api_error(format!("cannot list s3://{bucket}/{prefix}"), e))?;
    let mut keys: Vec<String> = listed.into_iter().map(|l| l.key).filter(|k| k.ends_with(".json")).collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys.into_iter().rev() {
        if enough(&out) {
            break;
        }
        let Some(text) = aws.read_object("history", log, bucket, &key).await? else { continue };
        let mut rec: HistoryRecord = serde_json::from_str(&text).map_err(|e| {
            Error::stage_hint(
                format!("s3://{bucket}/{key} is not a history record stamp can read: {e}"),
                "stamp writes these itself; remove or fix the object if something else wrote it",
            )
        })?;
        rec.key = key;
        out.push(rec);
    }
    Ok(out)
}

/// The current release (the newest record that ended ok) and the one before (the
/// newest ok record of another release), from records newest first.
pub fn current_and_previous(records: &[HistoryRecord]) -> (Option<&HistoryRecord>, Option<&HistoryRecord>) {
    let mut ok = records.iter().filter(|r| r.outcome.is_ok());
    let current = ok.next();
    let previous = current.and_then(|c| ok.find(|r| r.release_id != c.release_id));
    (current, previous)
}

/// The AWS CLI and SDK of a customer's region, and its state bucket's name.
pub async fn open_bucket(ctx: &FleetContext, c: &Customer, log: &mut StageLog) -> Result<(Aws, BucketName), Error> {
    let env = ctx.tool_env(&c.region)?;
    let aws = Aws::with_api(&ctx.fleet, ctx.tools().aws.clone(), env.clone(), ctx.aws_api(&env));
    let bucket = crate::stages::bucket::bucket_of(ctx, c, &aws, log).await?;
    Ok((aws, bucket))
}

/// Pins `plan` to an earlier release: `to` (a release id from `stamp history`), or
/// the previous one (the newest ok release other than the current). The plan then
/// deploys that release's commit (no git_id lookup) and image (baked again from the
/// commit only when it is gone), and its history record says "rollback". A customer
/// with no such release, or an unknown `to`, is a usage error (nothing started).
pub async fn pin_rollback(ctx: &FleetContext, mut plan: CustomerPlan, to: Option<&str>) -> Result<CustomerPlan, Error> {
    let name = plan.customer.name.to_string();
    let mut log = StageLog::discard();
    let (aws, bucket) = open_bucket(ctx, &plan.customer, &mut log).await?;
    let records = match to {
        Some(_) => read_history(&aws, &mut log, &bucket, &name, None).await?,
        None => read_recent(&aws, &mut log, &bucket, &name).await?,
    };
    let (current, previous) = current_and_previous(&records);
    let target = match to {
        Some(id) => match records.iter().find(|r| r.outcome.is_ok() && r.release_id == id) {
            Some(r) => r,
            None => {
                let mut known: Vec<&str> = Vec::new();
                for r in records.iter().filter(|r| r.outcome.is_ok()) {
                    if !known.contains(&r.release_id.as_str()) {
                        known.push(&r.release_id);
                    }
                }
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                return Err(Error::usage_hint(
                    format!("{name}: --to {id}: no release of that id ended ok in its history (s3://{bucket}/{})", history_prefix(&name)),
                    format!("its releases, newest first: {known} (`stamp history {name}` lists them)"),
                ));
            }
        },
        None => match previous {
            Some(r) => r,
            None => {
                let why = match current {
                    None => "no deploy of it has ended ok".to_owned(),
                    Some(c) => format!("it has run only release {} (no earlier release ended ok)", c.release_id),
                };
                return Err(Error::usage_hint(
                    format!("{name}: nothing to roll back to: {why}; nothing was started"),
                    format!("`stamp history {name}` lists its deploys; `--to RELEASE` names one"),
                ));
            }
        },
    };
    let rel = &target.release;
    if rel.commit.is_empty() {
        return Err(Error::usage(format!("{name}: release {} records no commit; it cannot be deployed again", target.release_id)));
    }
    let ami = rel.ami.as_deref().and_then(|a| AmiId::parse(a).ok());
    // The stacks and the template come from the checkout, not from the release.
    let mut differ = Vec::new();
    if stacks_hash(ctx, &plan)? != rel.stacks_hash {
        differ.push("stacks");
    }
    if template_hash(ctx)? != rel.template_hash {
        differ.push("packer template");
    }
    let warning = (!differ.is_empty()).then(|| {
        format!(
            "release {}'s {} differ from the working tree's, which this rollback deploys; to roll those back too, check out the fleet \
             commit the release names ({})",
            target.release_id,
            differ.join(" and "),
            rel.fleet_commit.as_deref().unwrap_or("unknown: not a git repository then")
        )
    });
    plan.customer.git_id = rel.git_id.clone();
    plan.revision = Some(crate::tools::git::Revision { git_id: rel.git_id.clone(), commit: rel.commit.clone() });
    if plan.app_config.is_some() {
        // The app configuration names the git_id: rendered for the release's.
        let rendered = ctx.app_templates().as_ref().as_ref().map_err(Clone::clone).and_then(|t| t.render(&app_context(&plan.customer)));
        plan.app_config = Some(rendered.map_err(|m| Error::stage(format!("{}: {m}", ctx.fleet.paths.app_templates.display())))?);
    }
    plan.pin = Some(Pin {
        release_id: target.release_id.clone(),
        git_id: rel.git_id.clone(),
        commit: rel.commit.clone(),
        ami,
        image_key: rel.image_key.clone(),
        warning,
    });
    plan.record.operation = HistoryOp::Rollback;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, outcome: Outcome) -> HistoryRecord {
        let release = Release {
            commit: format!("{id:0<40}"),
            git_id: id.into(),
            ami: Some(format!("ami-{id}")),
            image_key: None,
            template_hash: "t".into(),
            stacks_hash: "s".into(),
            settings_hash: "x".into(),
            fleet_commit: None,
        };
        HistoryRecord {
            schema_version: RECORD_SCHEMA,
            release_id: id.into(),
            release,
            customer: "acme".into(),
            env: "production".into(),
            operation: HistoryOp::Deploy,
            started_at: String::new(),
            finished_at: String::new(),
            outcome,
            actor: "me@here".into(),
            ci_url: None,
            stamp_version: "0".into(),
            rollout_id: None,
            key: String::new(),
        }
    }

    #[test]
    fn current_is_the_newest_ok_and_previous_the_newest_ok_of_another_release() {
        let failed = Outcome::Failed { stage: Some("smoke".into()), message: "no".into() };
        let h = [rec("c", failed.clone()), rec("b", Outcome::Ok), rec("b", Outcome::Ok), rec("x", failed), rec("a", Outcome::Ok)];
        let (cur, prev) = current_and_previous(&h);
        assert_eq!(cur.map(|r| r.release_id.as_str()), Some("b"));
        assert_eq!(prev.map(|r| r.release_id.as_str()), Some("a"));
        assert_eq!(current_and_previous(&h[..3]).1, None);
        assert_eq!(current_and_previous(&[]).0, None);
    }

    #[test]
    fn keys_sort_by_time_and_the_id_follows_the_content() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let k = record_key("acme", t);
        assert!(k.starts_with("stamp/history/acme/20231114T221320.123Z-") && k.ends_with(".json"), "{k}");
        assert!(record_key("acme", t + std::time::Duration::from_millis(1)) > k);
        let a = rec("a", Outcome::Ok).release;
        let mut b = a.clone();
        assert_eq!(a.id(), b.id());
        b.ami = Some("ami-other".into());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 12);
        let json = serde_json::to_value(Outcome::Failed { stage: Some("ami".into()), message: "m".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"result": "failed", "stage": "ami", "message": "m"}));
    }
}
