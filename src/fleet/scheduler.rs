//! Runs many customers' pipelines side by side on one thread (each customer's own
//! stages keep their order): at most `parallel` at once and no more than memory
//! holds (`memory`), canaries first, and the failure policy. A failed customer never
//! touches another's state, logs or working copy; what the policy stops is only what
//! starts next.

use std::rc::Rc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::cancel::Stop;
use crate::customer::pipeline::Pipeline;
use crate::customer::plan::CustomerPlan;
use crate::customer::report::RunReport;
use crate::error::Error;
use crate::events::{Emitter, EventKind, EventSink, Status};
use crate::fleet::memory::{self, Lanes, Memory};
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::{Options, Turn};

#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// With `max_failures`: StackSets' strict mode, never more customers at once than
    /// the failures still tolerated plus one (a rollout's wave).
    pub strict: bool,
    /// Start no new customer once this says so; the running ones finish (a rollout
    /// paused or cancelled by another invocation, or its record lost).
    pub hold: Option<Stop>,
    /// Awaited just before a customer starts (`None`; `hold` is checked after it) and
    /// as it ends (its status, once its failure is counted and its slot given up): a
    /// rollout writes them to its record, and reads a pause there before the next
    /// customer starts.
    pub hook: Option<Hook>,
    /// Customers side by side (at least 1).
    pub parallel: usize,
    /// Start no new customer after the first failure.
    pub fail_fast: bool,
    /// Start no new customer after more than this many failures.
    pub max_failures: Option<usize>,
    /// The first K customers deploy completely first; the rest only if all succeeded.
    pub canary: usize,
    /// Terraform init/plan steps at once, fleet-wide (`--plan-jobs`; at least 1).
    pub plan_jobs: usize,
    /// terraform's -lock-timeout (`--lock-timeout`).
    pub lock_timeout: Duration,
}

/// A customer's start or end, awaited by the run (`Policy::hook`).
#[derive(Clone)]
pub(crate) struct Hook(pub Rc<dyn Fn(String, Option<Status>) -> HookFuture>);

pub(crate) type HookFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// One customer's end: its report and, on failure, the error.
pub(crate) struct Outcome {
    pub report: RunReport,
    pub error: Option<Error>,
}

/// Runs `op` for every plan, in order, under `policy`; returns one outcome per plan,
/// in the same order. Must run inside a `LocalSet`.
pub(crate) async fn run(
    ctx: Rc<FleetContext>,
    plans: Vec<CustomerPlan>,
    op: Operation,
    opts: Options,
    policy: &Policy,
    sink: Rc<dyn EventSink>,
    stop: Stop,
) -> Vec<Outcome> {
    let n = plans.len();
    let canary = policy.canary.min(n);
    let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    let mut plans: Vec<Option<CustomerPlan>> = plans.into_iter().map(Some).collect();
    let waves: Vec<std::ops::Range<usize>> =
        if canary > 0 && canary < n { vec![0..canary, canary..n] } else { std::iter::once(0..n).collect() };
    let failures = Rc::new(std::cell::Cell::new(0usize));
    let parallel = policy.parallel.max(1);
    // The memory available before any tool starts; the size of one tool, measured
    // as the run goes (twice a second: a walk of this process's children in /proc).
    let memory = Rc::new(Memory::of_this_machine(crate::env_vars::settings().tool_memory_mib));
    let sampler = (parallel > 1 && n > 1 && memory.measures()).then(|| {
        let memory = memory.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                for bytes in memory::tool_trees() {
                    memory.observe(bytes);
                }
            }
        })
    });
    for (w, wave) in waves.into_iter().enumerate() {
        // An apply lends its customer's lane while it waits on AWS, but for
        // `--parallel 1` (one customer at a time). Strict mode bounds the customers
        // in flight on its own: its turn is held to the customer's end, never lent.
        let slots = Lanes::new(parallel, memory.clone(), parallel > 1);
        let strict = policy.max_failures.filter(|_| policy.strict).map(|k| Strict::new(k, failures.clone()));
        let mut running = JoinSet::new();
        for i in wave {
            let plan = plans[i].take().expect("each plan runs once");
            let (ctx, opts, sink, stop, slots, failures) =
                (ctx.clone(), opts.clone(), sink.clone(), stop.clone(), slots.clone(), failures.clone());
            let (fail_fast, max_failures) = (policy.fail_fast, policy.max_failures);
            let (strict, hold, hook) = (strict.clone(), policy.hold.clone(), policy.hook.clone());
            running.spawn_local(async move {
                // The strict turn first: a customer holding a lane then always holds
                // its strict turn too, so a lender coming back for a lane never
                // waits on customers that wait on it.
                let _strict = match &strict {
                    Some(s) => Some(s.enter().await),
                    None => None,
                };
                let _slot = Rc::new(slots.enter(|note| Emitter::new("", sink.clone()).note(note)).await);
                let mut opts = opts;
                opts.turn = Some(Turn(_slot.clone()));
                if let Some(h) = &hook
                    && stop.draining().is_none()
                    && hold.as_ref().and_then(Stop::draining).is_none()
                {
                    (h.0)(plan.customer.name.to_string(), None).await;
                }
                let outcome = match hold.as_ref().and_then(Stop::draining) {
                    Some(why) => not_started(&ctx, &plan, op, &sink, why),
                    None => run_one(ctx, plan, op, opts, sink, stop.clone()).await,
                };
                if matches!(outcome.report.status, Status::Failed) {
                    failures.set(failures.get() + 1);
                    let name = &outcome.report.customer;
                    if fail_fast {
                        stop.drain(format!("{name} failed (--fail-fast)"));
                    } else if let Some(k) = max_failures
                        && failures.get() > k
                    {
                        stop.drain(format!("more than {k} customers failed (--max-failures {k})"));
                    }
                }
                // The failure is counted: the next customer may take the turn while
                // the end is written (the hook's writes keep their order).
                drop(_strict);
                drop(_slot);
                if let Some(h) = &hook {
                    (h.0)(outcome.report.customer.clone(), Some(outcome.report.status)).await;
                }
                (i, outcome)
            });
        }
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((i, outcome)) => outcomes[i] = Some(outcome),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        if w == 0 && canary > 0 && canary < n {
            let bad: Vec<&str> =
                outcomes[..canary].iter().flatten().filter(|o| !o.report.status.succeeded()).map(|o| o.report.customer.as_str()).collect();
            if !bad.is_empty() {
                stop.drain(format!("canary {} did not succeed", bad.join(", ")));
            }
        }
    }
    if let Some(s) = sampler {
        s.abort();
    }
    outcomes.into_iter().map(|o| o.expect("every customer has an outcome")).collect()
}

/// A customer the run did not start, and why.
fn not_started(ctx: &FleetContext, plan: &CustomerPlan, op: Operation, sink: &Rc<dyn EventSink>, why: String) -> Outcome {
    let c = &plan.customer;
    let log_dir = ctx.fleet.paths.work.join(c.name.as_str()).join("logs");
    let report = RunReport::not_started(c.name.as_str(), op, c.env.as_str(), c.region.as_str(), log_dir, &why);
    Emitter::new(&report.customer, sink.clone())
        .emit(None, EventKind::CustomerFinished { status: Status::NotStarted, elapsed: Duration::ZERO });
    Outcome { report, error: None }
}

/// StackSets' strict mode: a customer starts only while fewer run than the failures
/// still tolerated plus one; each failure narrows it (the failures are counted by
/// the run, before the failed customer's turn ends).
#[derive(Clone)]
struct Strict {
    tolerance: usize,
    failures: Rc<std::cell::Cell<usize>>,
    running: Rc<std::cell::Cell<usize>>,
    changed: Rc<tokio::sync::Notify>,
}

struct StrictTurn(Strict);

impl Strict {
    fn new(tolerance: usize, failures: Rc<std::cell::Cell<usize>>) -> Self {
        Self { tolerance, failures, running: Rc::default(), changed: Rc::default() }
    }

    async fn enter(&self) -> StrictTurn {
        loop {
            let changed = self.changed.notified();
            let room = crate::fleet::waves::concurrency(usize::MAX, self.tolerance.saturating_sub(self.failures.get()));
            if self.running.get() < room {
                self.running.set(self.running.get() + 1);
                return StrictTurn(self.clone());
            }
            changed.await;
        }
    }
}

impl Drop for StrictTurn {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
        self.0.changed.notify_waiters();
    }
}

/// One customer: not started when the run is stopping, else its pipeline.
async fn run_one(ctx: Rc<FleetContext>, plan: CustomerPlan, op: Operation, opts: Options, sink: Rc<dyn EventSink>, stop: Stop) -> Outcome {
    let c = &plan.customer;
    let log_dir = ctx.fleet.paths.work.join(c.name.as_str()).join("logs");
    if let Some(why) = stop.draining() {
        return not_started(&ctx, &plan, op, &sink, why);
    }
    let (name, env, region) = (c.name.to_string(), c.env.to_string(), c.region.to_string());
    match Pipeline::open(ctx, plan, opts, sink.clone(), stop, op).await {
        Ok(p) => {
            let (report, result) = p.run().await;
            Outcome { report, error: result.err() }
        }
        Err(e) => {
            let mut report = RunReport::not_started(&name, op, &env, &region, log_dir, &e.to_string());
            report.status = Status::Failed;
            Emitter::new(&name, sink).emit(None, EventKind::CustomerFinished { status: Status::Failed, elapsed: Duration::ZERO });
            Outcome { report, error: Some(e) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strict mode: tolerance 1 lets two customers in at once; one failure narrows it
    /// to one, and the third waits for a turn to end.
    #[test]
    fn strict_turns_are_the_failures_still_tolerated_plus_one() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let failures = Rc::new(std::cell::Cell::new(0));
            let s = Strict::new(1, failures.clone());
            let a = s.enter().await;
            let b = s.enter().await;
            let third = s.enter();
            tokio::pin!(third);
            let waited = tokio::time::timeout(Duration::from_millis(20), &mut third).await;
            assert!(waited.is_err(), "two at once at most with one failure tolerated");
            failures.set(1);
            drop(a);
            let waited = tokio::time::timeout(Duration::from_millis(20), &mut third).await;
            assert!(waited.is_err(), "one failure: one at a time, and b still runs");
            drop(b);
            let c = tokio::time::timeout(Duration::from_millis(20), &mut third).await;
            assert!(c.is_ok(), "b's turn ended: the third goes in");
        });
    }
}
