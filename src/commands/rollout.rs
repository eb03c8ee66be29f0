//! `stamp rollout`: start a rollout over a selection, or act on the fleet's current
//! one (`--resume`, `--pause`, `--cancel`, `--status`); prints its summary or its
//! JSON and exits with the code of `error.rs`'s table.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::cancel::Stop;
use crate::config::Fleet;
use crate::customer::plan::CustomerPlan;
use crate::error::{EXIT_INTERRUPTED, EXIT_STAGE_FAILED, EXIT_USAGE, Error};
use crate::fleet::rollout::{self, Ended, Run};
use crate::fleet::rollout_record::{self as record, Actor, Customer, Hold, Outcome, RECORD_VERSION, Record, State, Wave};
use crate::fleet::rollout_store::{self as store, Store};
use crate::fleet::scheduler::Policy;
use crate::fleet::selection::{self, Selector};
use crate::names::{CustomerName, EnvName};
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::Options;
use crate::tools::find;

use super::run::RunArgs;

/// What the invocation does with the fleet's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Start,
    Resume,
    Pause,
    Cancel,
    Status,
    Rollback,
}

pub(super) struct RolloutArgs {
    pub action: Action,
    pub selector: Selector,
    pub env: Option<EnvName>,
    pub policy: Policy,
    pub auto_approve: bool,
    pub allow_destroy: bool,
    pub json: bool,
    pub plain: bool,
    pub retry_failed: bool,
    pub waves: Option<usize>,
}

/// A holder silent for this many heartbeats is taken for dead.
const STALE_BEATS: u32 = 6;

fn stale_after() -> u64 {
    (crate::env_vars::settings().rollout_heartbeat * STALE_BEATS).as_secs()
}

pub(super) async fn rollout(fleet: Fleet, a: RolloutArgs) -> Result<(), Error> {
    let tools = find::find_tools(&fleet, Operation::Deploy)?;
    let ctx = Rc::new(FleetContext::new(fleet, Some(tools)).with_limits(a.policy.plan_jobs, a.policy.lock_timeout));
    match a.action {
        Action::Start => start(ctx, &a).await,
        Action::Resume => resume(ctx, &a).await,
        Action::Pause | Action::Cancel => stop_it(ctx, &a).await,
        Action::Rollback => rollback(ctx, &a).await,
        Action::Status => {
            let store = Store::open(&ctx, false).await?;
            let (r, _) = store.read().await?.ok_or_else(|| no_rollout(&store))?;
            print(&r, &a);
            Ok(())
        }
    }
}

fn no_rollout(store: &Store) -> Error {
    Error::usage_hint(
        format!("no rollout is running: {} does not exist", store.location()),
        "start one with `stamp rollout CUSTOMERS|--all|--tag T`",
    )
}

fn print(r: &Record, a: &RolloutArgs) {
    if a.json {
        super::json_out::print("rollout", crate::ui::rollout::json_body(r, a.retry_failed));
    } else {
        print!("{}", crate::ui::rollout::summary_text(r));
    }
}

/// Who runs this invocation (the history records' actor) and the CI run's page.
fn actor() -> Actor {
    Actor { name: crate::customer::release::actor(), host: store::host(), ci_url: crate::ui::ci_env::get().env.run_url.clone() }
}

/// The deploy's arguments for the approval (`run::approval`).
fn run_args(a: &RolloutArgs, names: Vec<CustomerName>) -> RunArgs {
    RunArgs {
        names,
        env: a.env.clone(),
        policy: a.policy.clone(),
        auto_approve: a.auto_approve,
        rebuild_ami: false,
        json: a.json,
        plain: a.plain,
        no_smoke: false,
        from: None,
        approved_plan: None,
        allow_destroy: a.allow_destroy,
        out: None,
        rollback: None,
    }
}

/// Refuses when another rollout is the fleet's current one, naming it; clears one
/// that is over (cancelled or done) and no longer held.
async fn check_free(store: &Store) -> Result<(), Error> {
    let Some((r, etag)) = store.read().await? else { return Ok(()) };
    let hold = r.hold(store::now(), stale_after(), &store::host(), store::alive);
    if r.state.is_over() && !matches!(hold, Hold::Live(_)) {
        return store.archive(&r, &etag).await;
    }
    let held = match hold {
        Hold::Live(who) => format!("; held by {who}"),
        Hold::Stale(why) => format!("; its holder is gone ({why})"),
        Hold::Free => String::new(),
    };
    Err(Error::Reported {
        message: format!(
            "another rollout is the fleet's current one: {}{held}\nhint: continue it with `stamp rollout --resume` (or `--status` to see it), or end it with `stamp rollout --cancel`",
            r.describe()
        ),
        code: EXIT_USAGE,
    })
}

async fn start(ctx: Rc<FleetContext>, a: &RolloutArgs) -> Result<(), Error> {
    let fleet = &ctx.fleet;
    let names = selection::select(fleet, &a.selector, selection::Use::Runs)?;
    // Canaries first ([fleet] canary), then the selection's order.
    let names = selection::canary_order(fleet, &names);
    let mut plans = super::run::resolve_all(&ctx, &names, a.env.as_ref())?;
    crate::fleet::revisions::resolve(&fleet.root, &mut plans, crate::ui::github::annotate).await?;
    super::run::check_journals(&ctx, &plans, None)?;
    let waves = crate::fleet::waves::plan(&names, &fleet.rollout.waves);
    let budget = fleet.rollout.budget(names.len());
    let store = Rc::new(Store::open(&ctx, true).await?);
    check_free(&store).await?;
    let sink = super::run::sink(a.plain, plans.len());
    let args = run_args(a, names.clone());
    let approval = super::run::approval(&ctx, &plans, Operation::Deploy, &args, None, &sink).await?;
    let token = format!("{:016x}", fastrand::u64(..));
    let t = store::now();
    let mut customers = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        for n in wave {
            let commit = plans.iter().find(|p| &p.customer.name == n).and_then(|p| p.revision.as_ref()).map(|r| r.commit.clone());
            customers.push(Customer {
                name: n.to_string(),
                commit,
                wave: w,
                outcome: Outcome::Pending,
                attempts: 0,
                error: None,
                rolled_back: false,
            });
        }
    }
    let r = Record {
        version: RECORD_VERSION,
        id: record::new_id(std::time::SystemTime::now(), fastrand::u32(..)),
        state: State::Running,
        reason: None,
        started_at: t,
        updated_at: t,
        started_by: actor(),
        fleet_commit: ctx.fleet_commit().await,
        budget,
        soak_secs: fleet.rollout.soak.as_secs(),
        waves: waves.iter().map(|w| Wave { customers: w.iter().map(|n| n.to_string()).collect(), done: false }).collect(),
        customers,
        holder: Some(rollout::holder(&token)),
    };
    if store.create(&r).await?.is_err() {
        // Another rollout was written between the check and now.
        check_free(&store).await?;
        return Err(Error::stage("another rollout started at the same moment; run again"));
    }
    eprintln!(
        "rollout {}: {} customers in {} wave(s), budget {} failure(s), soak {}; record {}",
        r.id,
        names.len(),
        r.waves.len(),
        budget,
        humantime::format_duration(fleet.rollout.soak),
        store.location()
    );
    let opts = Options { approval, rebuild_ami: false, no_smoke: false, from: None, turn: None };
    as_rollout(&mut plans, &r.id);
    go(ctx, store, plans, a, opts, token, sink).await
}

/// Each customer's history record names the deploy a rollout's, and which one.
fn as_rollout(plans: &mut [CustomerPlan], id: &str) {
    let ci_url = crate::ui::ci_env::get().env.run_url.clone();
    for p in plans {
        p.record.operation = crate::operation::HistoryOp::Rollout;
        p.record.rollout_id = Some(id.to_owned());
        p.record.ci_url = ci_url.clone();
    }
}

async fn resume(ctx: Rc<FleetContext>, a: &RolloutArgs) -> Result<(), Error> {
    let store = Rc::new(Store::open(&ctx, false).await?);
    let (r, _) = store.read().await?.ok_or_else(|| no_rollout(&store))?;
    match r.hold(store::now(), stale_after(), &store::host(), store::alive) {
        Hold::Live(who) => {
            return Err(Error::Reported {
                message: format!("{} is held by {who}: it is running; `stamp rollout --pause` stops it", r.describe()),
                code: EXIT_USAGE,
            });
        }
        Hold::Stale(why) => eprintln!("note: taking over {}: its holder is gone ({why})", r.id),
        Hold::Free => {}
    }
    if r.state.is_over() {
        return Err(Error::usage(format!("{} cannot be resumed", r.describe())));
    }
    if r.state == State::Halted && !a.retry_failed {
        return Err(Error::usage_hint(
            format!("{} is halted: {}", r.describe(), r.reason.as_deref().unwrap_or("")),
            "`stamp rollout --resume --retry-failed` deploys the failed customers again; `--cancel` ends it",
        ));
    }
    // The commit, whether or not either working tree had uncommitted changes.
    let here = ctx.fleet_commit().await;
    let commit = |c: &String| c.trim_end_matches("+dirty").to_owned();
    if let (Some(was), Some(now)) = (r.fleet_commit.as_ref().map(commit), here.as_ref().map(commit))
        && was != now
    {
        return Err(Error::usage_hint(
            format!("{} rolls out the fleet repository at {was}; it is at {now} here", r.describe()),
            format!("check out {was} to continue it, or `stamp rollout --cancel` and start a new rollout"),
        ));
    }
    // Every customer that may still deploy, with the commit the rollout rolls out.
    let names: Vec<CustomerName> = r
        .customers
        .iter()
        .filter(|c| c.outcome != Outcome::Succeeded)
        .map(|c| CustomerName::parse(&c.name).map_err(|m| Error::stage(format!("the rollout record names {m}"))))
        .collect::<Result<_, _>>()?;
    let mut plans = super::run::resolve_all(&ctx, &names, a.env.as_ref())?;
    crate::fleet::revisions::resolve(&ctx.fleet.root, &mut plans, crate::ui::github::annotate).await?;
    for p in &mut plans {
        if let (Some(c), Some(rev)) = (r.customer(p.customer.name.as_str()).and_then(|c| c.commit.clone()), p.revision.as_mut())
            && rev.commit != c
        {
            eprintln!(
                "note: {}: {} now names {}; the rollout deploys {c}, the commit it started with",
                p.customer.name, rev.git_id, rev.commit
            );
            rev.commit = c;
        }
    }
    super::run::check_journals(&ctx, &plans, None)?;
    let sink = super::run::sink(a.plain, plans.len().max(1));
    let args = run_args(a, names);
    let approval = super::run::approval(&ctx, &plans, Operation::Deploy, &args, None, &sink).await?;
    let token = format!("{:016x}", fastrand::u64(..));
    let stale = stale_after();
    let retry_failed = a.retry_failed;
    let (r, _) = store
        .update(|r| {
            match r.hold(store::now(), stale, &store::host(), store::alive) {
                Hold::Live(who) => {
                    return Err(Error::Reported { message: format!("{} was taken by {who} meanwhile", r.id), code: EXIT_USAGE });
                }
                Hold::Free | Hold::Stale(_) => {}
            }
            r.holder = Some(rollout::holder(&token));
            if retry_failed {
                // Deployed again in their wave's turn; a done wave is soaked again.
                for i in 0..r.customers.len() {
                    if r.customers[i].outcome == Outcome::Failed {
                        r.customers[i].outcome = Outcome::Pending;
                        let w = r.customers[i].wave;
                        r.waves[w].done = false;
                    }
                }
            }
            if matches!(r.state, State::Paused | State::Halted) {
                r.state = State::Running;
                r.reason = None;
            }
            Ok(())
        })
        .await?;
    eprintln!("rollout {}: resumed by pid {} on {}", r.id, std::process::id(), store::host());
    let opts = Options { approval, rebuild_ami: false, no_smoke: false, from: None, turn: None };
    as_rollout(&mut plans, &r.id);
    go(ctx, store, plans, a, opts, token, sink).await
}

/// Runs the held rollout, prints the result, and maps how it ended to an exit code.
async fn go(
    ctx: Rc<FleetContext>,
    store: Rc<Store>,
    plans: Vec<CustomerPlan>,
    a: &RolloutArgs,
    opts: Options,
    token: String,
    sink: Rc<dyn crate::events::EventSink>,
) -> Result<(), Error> {
    let plans: BTreeMap<String, CustomerPlan> = plans.into_iter().map(|p| (p.customer.name.to_string(), p)).collect();
    let run = Run { policy: a.policy.clone(), opts, waves: a.waves, token };
    let end = rollout::run(ctx, store, plans, run, sink.clone(), Stop::new()).await?;
    drop(sink);
    for (name, e) in &end.errors {
        if !matches!(e, Error::Stopped(_)) {
            eprintln!("error: {name}: {e}");
        }
    }
    print(&end.record, a);
    let id = &end.record.id;
    match end.ended {
        Ended::Done => Ok(()),
        Ended::WavesRun(n) => {
            eprintln!("rollout {id}: ran {n} wave(s); `stamp rollout --resume` continues it");
            Ok(())
        }
        Ended::Halted(failed) => Err(Error::Reported {
            message: format!(
                "rollout {id} halted: {} customer(s) failed, more than the budget of {}: {}\nhint: `stamp rollout --resume --retry-failed` deploys them again once fixed; `stamp rollout --cancel` ends the rollout",
                failed.len(),
                end.record.budget,
                failed.join(", ")
            ),
            code: EXIT_STAGE_FAILED,
        }),
        Ended::Paused(why) => Err(Error::Reported {
            message: format!("rollout {id} paused ({why}): nothing more was started; `stamp rollout --resume` continues it"),
            code: EXIT_STAGE_FAILED,
        }),
        Ended::Cancelled(why) => {
            Err(Error::Reported { message: format!("rollout {id} cancelled ({why}): nothing more was started"), code: EXIT_STAGE_FAILED })
        }
        Ended::Interrupted => Err(Error::Reported {
            message: format!("rollout {id} interrupted; `stamp rollout --resume` continues it"),
            code: EXIT_INTERRUPTED,
        }),
        Ended::Unchecked(why) => Err(Error::Reported {
            message: format!("rollout {id} stopped: {why}\nhint: `stamp rollout --resume` soaks the wave again"),
            code: EXIT_STAGE_FAILED,
        }),
        Ended::Lost(why) => Err(Error::Reported { message: format!("rollout {id}: stopped: {why}"), code: EXIT_STAGE_FAILED }),
    }
}

/// `--pause` and `--cancel`: the state is set in the record; the holder stops at its
/// next safe point. A cancelled rollout nobody holds is archived at once.
async fn stop_it(ctx: Rc<FleetContext>, a: &RolloutArgs) -> Result<(), Error> {
    let store = Store::open(&ctx, false).await?;
    if store.read().await?.is_none() {
        return Err(no_rollout(&store));
    }
    let by = actor().describe();
    let (to, verb) = if a.action == Action::Pause { (State::Paused, "paused") } else { (State::Cancelled, "cancelled") };
    let (r, etag) = store
        .update(|r| {
            if a.action == Action::Pause && r.state != State::Running {
                return Err(Error::usage(format!("{} is not running: only a running rollout can be paused", r.describe())));
            }
            r.state = to;
            r.reason = Some(format!("{verb} by {by}"));
            Ok(())
        })
        .await?;
    match r.hold(store::now(), stale_after(), &store::host(), store::alive) {
        Hold::Live(who) => eprintln!("rollout {}: {verb}; its holder ({who}) stops before its next customer or wave", r.id),
        _ if to == State::Cancelled => {
            store.archive(&r, &etag).await?;
            eprintln!("rollout {}: cancelled and archived ({})", r.id, store::archive_key(&r.id));
        }
        _ => eprintln!("rollout {}: {verb}", r.id),
    }
    print(&r, a);
    Ok(())
}

/// `--rollback`: every customer the rollout deployed back to the release it ran
/// before; then the rollout ends (cancelled, archived). Refused while it runs.
async fn rollback(ctx: Rc<FleetContext>, a: &RolloutArgs) -> Result<(), Error> {
    let store = Store::open(&ctx, false).await?;
    let (r, _) = store.read().await?.ok_or_else(|| no_rollout(&store))?;
    if let Hold::Live(who) = r.hold(store::now(), stale_after(), &store::host(), store::alive) {
        return Err(Error::Reported {
            message: format!("{} is held by {who}: `stamp rollout --pause` it first, then --rollback", r.describe()),
            code: EXIT_USAGE,
        });
    }
    let names: Vec<CustomerName> = r
        .deployed()
        .iter()
        .map(|n| CustomerName::parse(n).map_err(|m| Error::stage(format!("the rollout record names {m}"))))
        .collect::<Result<_, _>>()?;
    let mut plans = super::run::resolve_all(&ctx, &names, a.env.as_ref())?;
    as_rollout(&mut plans, &r.id);
    let sink = super::run::sink(a.plain, plans.len().max(1));
    let (pinned, unpinned) = crate::fleet::rollback::pin_all(&ctx, plans, &r.id, &sink).await;
    let args = run_args(a, names);
    let approval = super::run::approval(&ctx, &pinned, Operation::Deploy, &args, None, &sink).await?;
    let token = format!("{:016x}", fastrand::u64(..));
    let stale = stale_after();
    store
        .update(|r| {
            if let Hold::Live(who) = r.hold(store::now(), stale, &store::host(), store::alive) {
                return Err(Error::Reported { message: format!("{} was taken by {who} meanwhile", r.id), code: EXIT_USAGE });
            }
            r.holder = Some(rollout::holder(&token));
            Ok(())
        })
        .await?;
    eprintln!("rollout {}: rolling back {} customer(s)", r.id, pinned.len() + unpinned.len());
    let opts = Options { approval, rebuild_ami: false, no_smoke: false, from: None, turn: None };
    let failed = crate::fleet::rollback::roll_back(&ctx, &store, &token, pinned, unpinned, &opts, &a.policy, &sink, &Stop::new()).await?;
    drop(sink);
    let by = actor().describe();
    let (r, etag) = store
        .update(|r| {
            crate::fleet::rollout_record::check_holder(r, &token)?;
            r.holder = None;
            if failed.is_empty() {
                r.state = State::Cancelled;
                r.reason = Some(format!("rolled back by {by}"));
            }
            Ok(())
        })
        .await?;
    if r.state.is_over() {
        store.archive(&r, &etag).await?;
    }
    print(&r, a);
    if failed.is_empty() {
        return Ok(());
    }
    for (n, why) in &failed {
        eprintln!("error: {n}: {why}");
    }
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    Err(Error::Reported {
        message: format!(
            "rollout {}: {} customer(s) could not be rolled back: {}; `stamp rollout --rollback` tries them again",
            r.id,
            names.len(),
            names.join(", ")
        ),
        code: EXIT_STAGE_FAILED,
    })
}
