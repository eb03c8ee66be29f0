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
use crate::fleet::rollout_record::{Holder, Outcome, Record, State};
use crate::fleet::rollout_store::{Store, now};
use crate::fleet::scheduler::{self, Policy};
use crate::fleet::waves;
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::Options;

/// How a run of the rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
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
}

/// What the run did: how it ended, the record as last written, and the report of
/// every customer it ran (in run order).
pub struct RunEnd {
    pub ended: Ended,
    pub record: Record,
    pub reports: Vec<RunReport>,
    pub errors: Vec<(String, Error)>,
}

/// The run's settings.
pub struct Run {
    /// `--parallel`, `--plan-jobs`, `--lock-timeout`; the rest is the rollout's.
    pub policy: Policy,
    pub opts: Options,
    pub retry_failed: bool,
    /// `--waves N`: stop after N waves.
    pub waves: Option<usize>,
    /// This holding's token (in the record's holder).
    pub token: String,
}

/// Holder is this process (by its token), or the change is refused.
pub fn check_holder(r: &Record, token: &str) -> Result<(), Error> {
    match &r.holder {
        Some(h) if h.token == token => Ok(()),
        Some(h) => Err(Error::stage(format!("rollout {} was taken over by pid {} on {}", r.id, h.pid, h.host))),
        None => Err(Error::stage(format!("rollout {} was released meanwhile", r.id))),
    }
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
pub fn holder(token: &str) -> Holder {
    let t = now();
    Holder { host: crate::fleet::rollout_store::host(), pid: std::process::id(), token: token.to_owned(), since: t, heartbeat: t }
}

/// Runs the rollout held (with `run.token`) in `store` over `plans` (every customer
/// of the record that may still deploy, by name). Must run inside a `LocalSet`.
pub async fn run(
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
        let names = r.to_deploy(w, run.retry_failed);
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
            reports.extend(wave_reports);
            errors.extend(wave_errors);
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
        let Some(unhealthy) = soak(&ctx, &soaked, Duration::from_secs(r.soak_secs), w, total, &say, &hold, &stop).await else {
            // Stopped during the soak: the wave is soaked again when resumed.
            continue;
        };
        store
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
        waves_run += 1;
    };
    beat.abort();
    let record = finish(&store, &run.token, &ended).await?;
    Ok(RunEnd { ended, record, reports, errors })
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
    store
        .update(|r| {
            check_holder(r, &run.token)?;
            for n in names {
                if let Some(c) = r.customer_mut(n) {
                    c.outcome = Outcome::Deploying;
                    c.error = None;
                }
            }
            Ok(())
        })
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Status)>();
    let policy = Policy {
        parallel: at_once,
        max_failures: Some(left),
        strict: true,
        fail_fast: false,
        canary: 0,
        hold: Some(hold.clone()),
        finished: Some(tx),
        ..run.policy.clone()
    };
    // Each end into the record at once: a kill later loses none of them.
    let writer = {
        let (store, token, hold) = (store.clone(), run.token.clone(), hold.clone());
        tokio::task::spawn_local(async move {
            while let Some((name, status)) = rx.recv().await {
                let written = store
                    .update(|r| {
                        check_holder(r, &token)?;
                        if let Some(c) = r.customer_mut(&name) {
                            c.outcome = match status {
                                s if s.succeeded() => Outcome::Succeeded,
                                Status::Failed => Outcome::Failed,
                                // Interrupted or never started: deployed again on resume.
                                _ => Outcome::Pending,
                            };
                            if !matches!(status, Status::NotStarted) {
                                c.attempts += 1;
                            }
                        }
                        Ok(())
                    })
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
        })
    };
    let outcomes = scheduler::run(ctx.clone(), wave_plans, Operation::Deploy, run.opts.clone(), &policy, sink.clone(), stop.clone()).await;
    drop(policy);
    let _ = writer.await;
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

/// The soak after wave `w`: a wait of `soak` with a countdown, then the wave's
/// deployed customers checked again; the unhealthy ones with why. `None` when the
/// run was stopped (pause, cancel, interrupt) during it.
#[allow(clippy::too_many_arguments)]
async fn soak(
    _ctx: &FleetContext,
    customers: &[String],
    soak: Duration,
    w: usize,
    total: usize,
    say: &Emitter,
    hold: &Stop,
    stop: &Stop,
) -> Option<Vec<(String, String)>> {
    if soak.is_zero() || customers.is_empty() {
        return Some(Vec::new());
    }
    let step = (soak / 6).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let end = tokio::time::Instant::now() + soak;
    loop {
        if stop.interrupted() || hold.draining().is_some() {
            return None;
        }
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        say.note(&format!(
            "soak after wave {}/{}: {} left, watching {} customer(s)",
            w + 1,
            total,
            humantime::format_duration(Duration::from_secs(left.as_secs_f64().ceil() as u64)),
            customers.len()
        ));
        tokio::time::sleep(left.min(step)).await;
    }
    // The checker (smoke test again, the CloudWatch alarms) comes here: until it
    // does, a soak is the wait alone and finds nobody unhealthy.
    Some(Vec::new())
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
