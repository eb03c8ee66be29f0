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
pub(crate) async fn run(p: &mut StageContext, create: bool, named: &mut Option<String>) -> Result<StageDone<Option<BucketName>>, Error> {
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
pub(crate) async fn name(p: &StageContext, log: &mut StageLog) -> Result<BucketName, Error> {
    bucket_of(&p.ctx, &p.plan.customer, &p.aws, log).await
}

/// A customer's state bucket name, the account id asked once per run.
pub(crate) async fn bucket_of(ctx: &FleetContext, c: &Customer, aws: &Aws, log: &mut StageLog) -> Result<BucketName, Error> {
    let fleet = &ctx.fleet;
    let account =
        if render::bucket_template_uses_account_id(&fleet.state_bucket) { ctx.account_id(aws, log).await? } else { String::new() };
    name_for_account(fleet, c, &account)
}

/// The customer's state bucket name (asks STS for the account id only when the
/// template needs it and `[aws] account_id` is not set).
pub(crate) async fn state_bucket(fleet: &Fleet, c: &Customer, aws: &Aws, log: &mut StageLog) -> Result<BucketName, Error> {
    let account = account_for_bucket(fleet, aws, "bucket", log).await?;
    name_for_account(fleet, c, &account)
}

/// The account id the state bucket's name needs, outside a run (no cache): `[aws]
/// account_id`, else asked of STS when the template names `{{account_id}}`, else none.
pub(crate) async fn account_for_bucket(fleet: &Fleet, aws: &Aws, stage: &str, log: &mut StageLog) -> Result<String, Error> {
    match &fleet.aws.account_id {
        Some(a) => Ok(a.clone()),
        None if render::bucket_template_uses_account_id(&fleet.state_bucket) => aws.account_id(stage, log).await,
        None => Ok(String::new()),
    }
}

/// The state bucket's name for an account id already known ("" when the template does
/// not name one): the one place the `[fleet] state_bucket` template is rendered.
pub(crate) fn name_for_account(fleet: &Fleet, c: &Customer, account: &str) -> Result<BucketName, Error> {
    render_name(fleet, c, account).map_err(|m| Error::usage_hint(m, "shorten the template or the customer name"))
}

/// [`name_for_account`]'s failure as a line of text, for a report that goes on with
/// the other customers (status).
pub(crate) fn render_name(fleet: &Fleet, c: &Customer, account: &str) -> Result<BucketName, String> {
    render::render_bucket(&fleet.state_bucket, &c.name, &c.region, account).map_err(|m| format!("[fleet] state_bucket: {m}"))
}

/// The account id inside `bucket`, a name the template rendered for `c` (to render
/// offline from the last run's report); `None` when the template names no account
/// id or `bucket` does not fit it.
pub(crate) fn account_in(fleet: &Fleet, c: &Customer, bucket: &str) -> Option<String> {
    const PROBE: &str = "000000000000";
    let probe = render_name(fleet, c, PROBE).ok()?;
    let (pre, post) = probe.as_str().split_once(PROBE)?;
    bucket.strip_prefix(pre)?.strip_suffix(post).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;

    fn acme(template: &str) -> (tempfile::TempDir, Fleet, Customer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stamp.toml"), format!("[fleet]\nstate_bucket = \"{template}\"\n")).unwrap();
        std::fs::create_dir(dir.path().join("customers")).unwrap();
        std::fs::write(dir.path().join("customers/acme.toml"), "git_id = \"main\"\n").unwrap();
        let fleet = Fleet::load(&dir.path().join("stamp.toml"), &EnvOverrides::default()).unwrap();
        let c = fleet.load_customer(&crate::names::CustomerName::parse("acme").unwrap()).unwrap();
        (dir, fleet, c)
    }

    #[test]
    fn the_account_id_is_read_back_from_a_name_the_template_rendered() {
        let (_dir, fleet, c) = acme("tfstate-{{account_id}}-{{customer}}");
        let name = name_for_account(&fleet, &c, "123456789012").unwrap();
        assert_eq!(name.as_str(), "tfstate-123456789012-acme");
        assert_eq!(account_in(&fleet, &c, name.as_str()).as_deref(), Some("123456789012"));
        assert_eq!(account_in(&fleet, &c, "tfstate-123456789012-other"), None);
        let (_dir, fleet, c) = acme("state-{{customer}}");
        assert_eq!(account_in(&fleet, &c, "state-acme"), None);
    }

    #[test]
    fn a_name_that_does_not_render_names_the_key() {
        let (_dir, fleet, c) = acme("s-{{customer}}-{{account_id}}");
        let long = "x".repeat(60);
        let m = render_name(&fleet, &c, &long).unwrap_err();
        assert!(m.starts_with("[fleet] state_bucket: "), "{m}");
        let e = name_for_account(&fleet, &c, &long).unwrap_err().to_string();
        assert!(e.starts_with(&m) && e.contains("hint: shorten the template"), "{e}");
    }
}
