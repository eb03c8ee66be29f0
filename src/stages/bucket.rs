//! Stage 1: the customer's state bucket. Deploy creates and hardens it (under a
//! per-bucket lock: customers may share one); plan and destroy only look for it.

use crate::config::{Customer, Fleet};
use crate::error::Error;
use crate::events::{Stage, Status};
use crate::names::BucketName;
use crate::render;
use crate::shared::context::FleetContext;
use crate::stages::contract::{StageContext, StageDone};
use crate::tools::aws::Aws;
use crate::tools::process::StageLog;

/// The bucket, or `None` when it does not exist and `create` is off (never deployed).
/// `named` gets the bucket's name as soon as it is known: the run report names the
/// bucket even when creating it fails.
pub async fn run(p: &mut StageContext, create: bool, named: &mut Option<String>) -> Result<StageDone<Option<BucketName>>, Error> {
    let mut log = p.log(Stage::Bucket)?;
    let bucket = name(p, &mut log).await?;
    *named = Some(bucket.to_string());
    if create {
        let lock = p.ctx.lock(&format!("bucket:{bucket}"));
        let _held = lock.lock().await;
        let ui = p.ui.clone();
        let (created, fixed) =
            p.aws.ensure_state_bucket("bucket", &mut log, &bucket, &p.plan.customer.region, &mut |m| ui.step(Stage::Bucket, m)).await?;
        let fixed: Vec<&str> = fixed.iter().map(|h| h.describe()).collect();
        let (status, detail) = match (created, fixed.is_empty()) {
            (true, _) => (Status::Ok, format!("created {bucket}")),
            (false, true) => (Status::Unchanged, format!("reused {bucket}")),
            // Someone turned a setting off since: it is back on, and the operator should know.
            (false, false) => (Status::Ok, format!("reused {bucket}; re-applied {}", fixed.join(", "))),
        };
        if !created && !fixed.is_empty() {
            p.ui.note(&format!("state bucket {bucket}: {} had been changed or removed; re-applied", fixed.join(", ")));
        }
        return Ok(StageDone::new(Some(bucket.clone()), status, detail));
    }
    match p.aws.bucket_status("bucket", &mut log, &bucket).await? {
        0 => Ok(StageDone::new(Some(bucket.clone()), Status::Ok, format!("found {bucket}"))),
        404 => Ok(StageDone::new(None, Status::Skipped, format!("{bucket} does not exist: {} was never deployed", p.name()))),
        _ => Err(Error::stage_hint(
            format!("state bucket {bucket} exists but this account cannot read it (403)"),
            "check the credentials, or [fleet] state_bucket if the name is someone else's",
        )),
    }
}

/// The customer's state bucket name (asks STS for the account id when needed,
/// once per run).
pub async fn name(p: &StageContext, log: &mut StageLog) -> Result<BucketName, Error> {
    bucket_of(&p.ctx, &p.plan.customer, &p.aws, log).await
}

/// A customer's state bucket name, the account id asked once per run.
pub async fn bucket_of(ctx: &FleetContext, c: &Customer, aws: &Aws, log: &mut StageLog) -> Result<BucketName, Error> {
    let fleet = &ctx.fleet;
    let account =
        if render::bucket_template_uses_account_id(&fleet.state_bucket) { ctx.account_id(aws, log).await? } else { String::new() };
    render_name(fleet, c, &account)
}

/// The customer's state bucket name (asks STS for the account id only when the
/// template needs it and `[aws] account_id` is not set).
pub async fn state_bucket(fleet: &Fleet, c: &Customer, aws: &Aws, log: &mut StageLog) -> Result<BucketName, Error> {
    let account = account_for_bucket(fleet, aws, "bucket", log).await?;
    render_name(fleet, c, &account)
}

/// The account id the state bucket's name needs, outside a run (no cache): `[aws]
/// account_id`, else asked of STS when the template names `{{account_id}}`, else none.
pub async fn account_for_bucket(fleet: &Fleet, aws: &Aws, stage: &str, log: &mut StageLog) -> Result<String, Error> {
    match &fleet.aws.account_id {
        Some(a) => Ok(a.clone()),
        None if render::bucket_template_uses_account_id(&fleet.state_bucket) => aws.account_id(stage, log).await,
        None => Ok(String::new()),
    }
}

fn render_name(fleet: &Fleet, c: &Customer, account: &str) -> Result<BucketName, Error> {
    render::render_bucket(&fleet.state_bucket, &c.name, &c.region, account)
        .map_err(|m| Error::usage_hint(format!("[fleet] state_bucket: {m}"), "shorten the template or the customer name"))
}
