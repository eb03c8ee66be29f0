//! Taking a rollout's customers back: each to the release it ran before the rollout
//! (the newest deploy of its history that ended ok and was not this rollout's),
//! pinned by `customer::release::pin_rollback` and deployed like any plan through
//! the scheduler. `on_failure = "rollback"` does it for a customer that failed
//! after its frontends applied (its smoke test, or the soak); `stamp rollout
//! --rollback` for every customer a halted rollout deployed.

use std::rc::Rc;

use crate::cancel::Stop;
use crate::customer::plan::CustomerPlan;
use crate::customer::release;
use crate::error::Error;
use crate::events::{Emitter, EventSink, Stage, Status};
use crate::fleet::rollout_record::check_holder;
use crate::fleet::rollout_store::Store;
use crate::fleet::scheduler::{self, Policy};
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::Options;
use crate::tools::process::StageLog;

/// Whether a failed deploy got as far as applying its frontends (so the customer
/// runs the new release, broken): it failed at the smoke test.
pub fn applied_then_failed(report: &crate::customer::report::RunReport) -> bool {
    report.status == Status::Failed && report.stages.iter().any(|s| s.name == Stage::Frontends && s.status.succeeded())
}

/// `plan` pinned to the release it ran before rollout `id`.
async fn pin_before(ctx: &FleetContext, plan: CustomerPlan, id: &str) -> Result<CustomerPlan, Error> {
    let name = plan.customer.name.to_string();
    let mut log = StageLog::discard();
    let (aws, bucket) = release::open_bucket(ctx, &plan.customer, &mut log).await?;
    let history = release::read_history(&aws, &mut log, &bucket, &name, None).await?;
    let before = history.iter().find(|h| h.outcome.is_ok() && h.rollout_id.as_deref() != Some(id)).ok_or_else(|| {
        Error::stage(format!(
            "{name}: no deploy before rollout {id} ended ok (s3://{bucket}/{}): nothing to go back to",
            release::history_prefix(&name)
        ))
    })?;
    release::pin_rollback(ctx, plan, Some(&before.release_id)).await
}

/// Each plan pinned to its release before rollout `id`; those that cannot be, with why.
pub async fn pin_all(
    ctx: &FleetContext,
    plans: Vec<CustomerPlan>,
    id: &str,
    sink: &Rc<dyn EventSink>,
) -> (Vec<CustomerPlan>, Vec<(String, String)>) {
    let mut failed = Vec::new();
    let mut pinned = Vec::new();
    for p in plans {
        let name = p.customer.name.to_string();
        match pin_before(ctx, p, id).await {
            Ok(p) => {
                let pin = p.pin.as_ref().expect("pinned");
                Emitter::new(&name, sink.clone()).note(&format!(
                    "rolling back to release {} ({} at {})",
                    pin.release_id,
                    pin.git_id,
                    &pin.commit[..12.min(pin.commit.len())]
                ));
                pinned.push(p);
            }
            Err(e) => failed.push((name, e.to_string())),
        }
    }
    (pinned, failed)
}

/// Deploys `pinned` (from `pin_all`, whose failures are `failed`) at most
/// `policy.parallel` at once; writes each one that went back (`rolled_back`) or why
/// it did not to the record held with `token`. Returns the customers that could not
/// be rolled back, with why.
#[allow(clippy::too_many_arguments)]
pub async fn roll_back(
    ctx: &Rc<FleetContext>,
    store: &Store,
    token: &str,
    pinned: Vec<CustomerPlan>,
    mut failed: Vec<(String, String)>,
    opts: &Options,
    policy: &Policy,
    sink: &Rc<dyn EventSink>,
    stop: &Stop,
) -> Result<Vec<(String, String)>, Error> {
    let policy = Policy { hold: None, hook: None, strict: false, max_failures: None, fail_fast: false, canary: 0, ..policy.clone() };
    let outcomes = if pinned.is_empty() {
        Vec::new()
    } else {
        scheduler::run(ctx.clone(), pinned, Operation::Deploy, opts.clone(), &policy, sink.clone(), stop.clone()).await
    };
    let mut back = Vec::new();
    for o in outcomes {
        if o.report.status.succeeded() {
            back.push(o.report.customer);
        } else {
            let why = o.error.map(|e| e.to_string()).unwrap_or_else(|| o.report.status.word().to_owned());
            failed.push((o.report.customer, why));
        }
    }
    store
        .update(|r| {
            check_holder(r, token)?;
            for n in &back {
                if let Some(c) = r.customer_mut(n) {
                    c.rolled_back = true;
                }
            }
            for (n, why) in &failed {
                if let Some(c) = r.customer_mut(n) {
                    let first = why.lines().next().unwrap_or_default();
                    c.error = Some(match &c.error {
                        Some(e) => format!("{e}; rollback failed: {first}"),
                        None => format!("rollback failed: {first}"),
                    });
                }
            }
            Ok(())
        })
        .await?;
    Ok(failed)
}
