//! `stamp rollout`'s run: wave after wave from the record, each wave a normal fleet
//! deploy through the scheduler (strict concurrency under the budget left, no new
//! customer once the budget is exceeded), then the soak, during which the wave's
//! customers are checked again. The record in S3 is the truth: each customer's end
//! is written as it happens, the holder renews its heartbeat, and a pause, cancel
//! or lost hold seen there stops the run at the next safe point (before a customer
//! or a wave starts; a running apply always finishes).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::cancel::Stop;
use crate::customer::plan::CustomerPlan;
use crate::customer::report::RunReport;
use crate::error::Error;
use crate::events::{Emitter, EventSink, Status};
use crate::fleet::rollback;
use crate::fleet::rollout_record::{Holder, Outcome, Record, State, check_holder};
use crate::fleet::rollout_store::{Store, now};
use crate::fleet::scheduler::{self, Policy};
use crate::fleet::soak::{self, Soak, SoakTarget};
use crate::fleet::waves;
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::Options;
use crate::tools::process::StageLog;

/// How a run of the rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Every wave deployed and soaked (the record is archived).
    Done,
    /// `--waves N` ran its N waves; the record waits for the next `--resume`.
    WavesRun(usize),
    /// More failures than the budget: these customers failed.
    Halted(Vec<String>),
    /// Another invocation paused or cancelled it (its reason).
    Paused(String),
    Cancelled(String),
    /// Ctrl-C or SIGTERM: the record is released for a `--resume`.
    Interrupted,
    /// Another process took the record over (a stale-heartbeat takeover).
    Lost(String),
    /// The soak could not check the wave (the alarms could not be read): why.
    Unchecked(String),
}

/// What the run did: how it ended, the record as last written, and the errors of
/// the customers that failed.
pub(crate) struct RunEnd {
    pub ended: Ended,
    pub record: Record,
    pub errors: Vec<(String, Error)>,
}

/// The run's settings.
pub(crate) struct Run {
    /// `--parallel`, `--plan-jobs`, `--lock-timeout`; the rest is the rollout's.
    pub policy: Policy,
    pub opts: Options,
    /// `--waves N`: stop after N waves.
    pub waves: Option<usize>,
    /// This holding's token (in the record's holder).
    pub token: String,
}

/// Why the holder must stop starting customers, from the record: paused, cancelled.
fn stop_reason(r: &Record) -> Option<String> {
    match r.state {
        State::Paused | State::Cancelled => {
            Some(format!("rollout {} {}", r.state.as_str(), r.reason.as_deref().map(|w| format!("({w})")).unwrap_or_default()))
        }
        _ => None,
    }
}

/// The holder as this process: `token`, now.
pub(crate) fn holder(token: &str) -> Holder {
    let t = now();
    Holder { host: crate::fleet::rollout_store::host(), pid: std::process::id(), token: token.to_owned(), since: t, heartbeat: t }
}

/// Runs the rollout held (with `run.token`) in `store` over `plans` (every customer
/// of the record that may still deploy, by name). Must run inside a `LocalSet`.
pub(crate) async fn run(
    ctx: Rc<FleetContext>,
    store: Rc<Store>,
    mut plans: BTreeMap<String, CustomerPlan>,
    run: Run,
    sink: Rc<dyn EventSink>,
    stop: Stop,
) -> Result<RunEnd, Error> {
    let say = Emitter::new("", sink.clone());
    let hold = Stop::new();
    let lost = Rc::new(std::cell::RefCell::new(None::<String>));
    let beat = heartbeat(store.clone(), run.token.clone(), hold.clone(), lost.clone());
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut waves_run = 0;
    let rolls_back = ctx.fleet.rollout.on_failure == crate::config::OnFailure::Rollback;
    let ended = loop {
        // A safe point: nothing of this process deploys now.
        let (mut r, _) = match store.update(|r| check_holder(r, &run.token)).await {
            Ok(r) => r,
            Err(e) => break Ended::Lost(e.to_string()),
        };
        if let Some(why) = lost.borrow().clone() {
            break Ended::Lost(why);
        }
        match r.state {
            State::Paused => break Ended::Paused(r.reason.clone().unwrap_or_default()),
            State::Cancelled => break Ended::Cancelled(r.reason.clone().unwrap_or_default()),
            _ => {}
        }
        if stop.interrupted() {
            break Ended::Interrupted;
        }
        if r.over_budget() {
            break Ended::Halted(r.failed().iter().map(|s| s.to_string()).collect());
        }
        let Some(w) = r.next_wave() else { break Ended::Done };
        if run.waves.is_some_and(|n| waves_run >= n) {
            break Ended::WavesRun(waves_run);
        }
        let total = r.waves.len();
        let names = r.to_deploy(w, false);
        let left = r.budget_left();
        let at_once = waves::concurrency(run.policy.parallel, left);
        say.note(&format!(
            "rollout {}: wave {}/{}: {} customer(s) to deploy ({}), budget left {left} of {}, {at_once} at once",
            r.id,
            w + 1,
            total,
            names.len(),
            names.join(", "),
            r.budget
        ));
        if !names.is_empty() {
            let (wave_reports, wave_errors) =
                deploy_wave(&ctx, &store, &mut plans, &names, &run, left, at_once, &hold, &sink, &stop).await?;
            // on_failure = "rollback": a customer whose frontends applied and then failed goes back.
            let broken: Vec<String> =
                wave_reports.iter().filter(|r| rollback::applied_then_failed(r)).map(|r| r.customer.clone()).collect();
            reports.extend(wave_reports);
            errors.extend(wave_errors);
            if rolls_back && !broken.is_empty() && !stop.interrupted() {
                back_out(&ctx, &store, &run, &r.id, &plans, &broken, &sink, &stop).await?;
            }
            r = store.read().await?.map(|(r, _)| r).ok_or_else(|| Error::stage("the rollout record disappeared during a wave"))?;
            if stop.interrupted() {
                break Ended::Interrupted;
            }
            if hold.draining().is_some() {
                // Paused, cancelled or lost: the loop's safe point says which.
                continue;
            }
            if r.over_budget() {
                break Ended::Halted(r.failed().iter().map(|s| s.to_string()).collect());
            }
        }
        // The soak: the wave's customers that deployed, checked again.
        let soaked: Vec<String> =
            r.waves[w].customers.iter().filter(|n| r.customer(n).is_some_and(|c| c.outcome == Outcome::Succeeded)).cloned().collect();
        let unhealthy = match soak(&ctx, &soaked, &reports, Duration::from_secs(r.soak_secs), w, total, &sink, &hold).await {
            Ok(Some(u)) => u,
            // Stopped during the soak: the wave is soaked again when resumed.
            Ok(None) => continue,
            Err(e) => break Ended::Unchecked(e.to_string()),
        };
        let (after, _) = store
            .update(|r| {
                check_holder(r, &run.token)?;
                for (name, why) in &unhealthy {
                    if let Some(c) = r.customer_mut(name) {
                        c.outcome = Outcome::Failed;
                        c.error = Some(format!("soak: {why}"));
                    }
                }
                if !r.over_budget() {
                    r.waves[w].done = true;
                }
                Ok(())
            })
            .await?;
        if rolls_back && !unhealthy.is_empty() && !stop.interrupted() {
            let names: Vec<String> = unhealthy.iter().map(|(n, _)| n.clone()).collect();
            back_out(&ctx, &store, &run, &after.id, &plans, &names, &sink, &stop).await?;
        }
        if after.waves[w].done {
            say.note(&format!(
                "rollout {}: wave {}/{total} done; {} failure(s), budget left {} of {}",
                after.id,
                w + 1,
                after.failed().len(),
                after.budget_left(),
                after.budget
            ));
        }
        waves_run += 1;
    };
    beat.abort();
    let record = finish(&store, &run.token, &ended).await?;
    Ok(RunEnd { ended, record, errors })
}

/// `on_failure = "rollback"`: `names` back to their release before the rollout.
#[allow(clippy::too_many_arguments)]
async fn back_out(
    ctx: &Rc<FleetContext>,
    store: &Store,
    run: &Run,
    id: &str,
    plans: &BTreeMap<String, CustomerPlan>,
    names: &[String],
    sink: &Rc<dyn EventSink>,
    stop: &Stop,
) -> Result<(), Error> {
    let chosen: Vec<CustomerPlan> = names.iter().filter_map(|n| plans.get(n).cloned()).collect();
    let (pinned, unpinned) = rollback::pin_all(ctx, chosen, id, sink).await;
    let failed = rollback::roll_back(ctx, store, &run.token, pinned, unpinned, &run.opts, &run.policy, sink, stop).await?;
    for (name, why) in failed {
        Emitter::new(&name, sink.clone()).note(&format!("could not be rolled back: {}", why.lines().next().unwrap_or_default()));
    }
    Ok(())
}

/// One wave's customers through the scheduler; each one's end written to the record
/// as it happens.
#[allow(clippy::too_many_arguments)]
async fn deploy_wave(
    ctx: &Rc<FleetContext>,
    store: &Rc<Store>,
    plans: &mut BTreeMap<String, CustomerPlan>,
    names: &[String],
    run: &Run,
    left: usize,
    at_once: usize,
    hold: &Stop,
    sink: &Rc<dyn EventSink>,
    stop: &Stop,
) -> Result<(Vec<RunReport>, Vec<(String, Error)>), Error> {
    let mut wave_plans = Vec::new();
    for n in names {
        wave_plans.push(plans.get(n).cloned().ok_or_else(|| Error::stage(format!("rollout customer {n} has no plan")))?);
    }
    // Each start and end into the record at once: a kill later loses none of them,
    // and a pause written meanwhile is read before the next customer starts.
    let hook = {
        let (store, token, hold) = (store.clone(), run.token.clone(), hold.clone());
        scheduler::Hook(Rc::new(move |name: String, status: Option<Status>| {
            let (store, token, hold) = (store.clone(), token.clone(), hold.clone());
            Box::pin(async move { record_customer(&store, &token, &hold, &name, status).await })
        }))
    };
    let policy = Policy {
        parallel: at_once,
        max_failures: Some(left),
        strict: true,
        fail_fast: false,
        canary: 0,
        hold: Some(hold.clone()),
        hook: Some(hook),
        ..run.policy.clone()
    };
    let outcomes = scheduler::run(ctx.clone(), wave_plans, Operation::Deploy, run.opts.clone(), &policy, sink.clone(), stop.clone()).await;
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        if let Some(e) = o.error {
            if o.report.status == Status::Failed {
                failed.push((o.report.customer.clone(), e.to_string()));
            }
            errors.push((o.report.customer.clone(), e));
        }
        reports.push(o.report);
    }
    if !failed.is_empty() {
        store
            .update(|r| {
                for (n, why) in &failed {
                    if let Some(c) = r.customer_mut(n) {
                        c.error = Some(why.clone());
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok((reports, errors))
}

/// A customer's start (`None`) or end written to the record. At its start, a pause
/// or cancel found there holds it (and every later one) back.
async fn record_customer(store: &Store, token: &str, hold: &Stop, name: &str, status: Option<Status>) {
    let (token, name) = (token.to_owned(), name.to_owned());
    let written = store
        .update_queued(Box::new(move |r| {
            check_holder(r, &token)?;
            if status.is_none() && stop_reason(r).is_some() {
                return Ok(());
            }
            if let Some(c) = r.customer_mut(&name) {
                c.outcome = match status {
                    None => {
                        c.attempts += 1;
                        c.error = None;
                        Outcome::Deploying
                    }
                    Some(s) if s.succeeded() => Outcome::Succeeded,
                    Some(Status::Failed) => Outcome::Failed,
                    // Interrupted or never started: deployed again on resume.
                    Some(_) => Outcome::Pending,
                };
            }
            Ok(())
        }))
        .await;
    match written {
        Ok((r, _)) => {
            if let Some(why) = stop_reason(&r) {
                hold.drain(why);
            }
        }
        Err(e) => hold.drain(format!("the rollout record could not be written: {e}")),
    }
}

/// The soak after wave `w` (`fleet::soak`): for `soak`, the wave's deployed
/// customers are checked again (the smoke test's GET, the `[rollout] alarms`); the
/// unhealthy ones with why. `Ok(None)` when the run was stopped (pause, cancel,
/// interrupt) during it: the wave is soaked again when resumed. `reports` are this
/// run's deploys; a customer deployed by an earlier process is found by its last
/// run here, else only its alarms are watched.
#[allow(clippy::too_many_arguments)]
async fn soak(
    ctx: &FleetContext,
    customers: &[String],
    reports: &[RunReport],
    soak: Duration,
    w: usize,
    total: usize,
    sink: &Rc<dyn EventSink>,
    hold: &Stop,
) -> Result<Option<Vec<(String, String)>>, Error> {
    if customers.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let fleet = &ctx.fleet;
    let mut targets = Vec::new();
    for name in customers {
        let c = fleet.load_customer(&crate::names::CustomerName::parse(name).map_err(Error::stage)?)?;
        let report = match reports.iter().rev().find(|r| &r.customer == name) {
            Some(r) => Some(r.clone()),
            None => RunReport::read(&fleet.paths.work.join(name).join("last-run.json")).ok().flatten(),
        };
        let url = match report.as_ref().and_then(|r| r.public_url()) {
            Some(u) if c.smoke.enabled => {
                Some(crate::stages::smoke::target_url(u, &c.smoke.path).map_err(|m| Error::stage(format!("{name}: {m}")))?)
            }
            _ => None,
        };
        if url.is_none() && c.smoke.enabled {
            Emitter::new(name, sink.clone()).note("no public_url of its deploy here: the soak watches its alarms only");
        }
        targets.push(SoakTarget { customer: name.clone(), region: c.region.to_string(), url, alarms: fleet.rollout.alarms_for(name) });
    }
    let env = ctx.tool_env(&fleet.region)?;
    let api = ctx.aws_api(&env);
    let mut log = StageLog::append(fleet.paths.work.join("rollout.log"))?;
    let label = format!("wave {}/{total}", w + 1);
    let checker = Soak { api: &api, log: &mut log, sink: sink.clone(), label, duration: soak, every: soak::CHECK_EVERY };
    let watched = checker.run(&targets);
    tokio::pin!(watched);
    // A pause or cancel during the soak ends it at once.
    let held = async {
        while hold.draining().is_none() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        done = &mut watched => match done {
            Ok(failed) => Ok(Some(failed.into_iter().map(|f| (f.customer, f.reason)).collect())),
            Err(Error::Interrupted(_)) => Ok(None),
            Err(e) => Err(e),
        },
        () = held => Ok(None),
    }
}

/// Renews the holder's heartbeat; a pause or cancel seen in the record, or a lost
/// hold, stops new customers from starting (`hold`).
fn heartbeat(store: Rc<Store>, token: String, hold: Stop, lost: Rc<std::cell::RefCell<Option<String>>>) -> tokio::task::JoinHandle<()> {
    let every = crate::env_vars::settings().rollout_heartbeat;
    tokio::task::spawn_local(async move {
        loop {
            tokio::time::sleep(every).await;
            match store
                .update(|r| {
                    check_holder(r, &token)?;
                    if let Some(h) = r.holder.as_mut() {
                        h.heartbeat = now();
                    }
                    Ok(())
                })
                .await
            {
                Ok((r, _)) => {
                    if let Some(why) = stop_reason(&r) {
                        hold.drain(why);
                    }
                }
                Err(e) => {
                    hold.drain(format!("lost the rollout record: {e}"));
                    *lost.borrow_mut() = Some(e.to_string());
                    return;
                }
            }
        }
    })
}

/// The record's last write of this run: the state the run ended in, the holder
/// released; a done or cancelled rollout archived.
async fn finish(store: &Store, token: &str, ended: &Ended) -> Result<Record, Error> {
    if let Ended::Lost(_) = ended {
        return store.read().await?.map(|(r, _)| r).ok_or_else(|| Error::stage(format!("the rollout record {} is gone", store.location())));
    }
    let (r, etag) = store
        .update(|r| {
            check_holder(r, token)?;
            match ended {
                Ended::Done => {
                    r.state = State::Done;
                    r.reason = None;
                }
                Ended::Halted(failed) => {
                    r.state = State::Halted;
                    r.reason = Some(format!("{} failure(s) exceed the budget of {}: {}", failed.len(), r.budget, failed.join(", ")));
                }
                _ => {}
            }
            r.holder = None;
            Ok(())
        })
        .await?;
    if r.state.is_over() {
        store.archive(&r, &etag).await?;
    }
    Ok(r)
}
