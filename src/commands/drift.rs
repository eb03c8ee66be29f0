//! `stamp drift`: for each deployed stack a refresh-only plan (has the real
//! infrastructure changed behind its state?) and a normal plan (configuration not
//! yet applied), reported apart. Exit codes: 0 nothing drifted, 3 a customer
//! drifted, 1 a check failed (it wins over 3: a fleet that could not be checked
//! whole is not reported as merely drifted), 130 interrupted.

use std::rc::Rc;
use std::time::Instant;

use crate::cancel::Stop;
use crate::config::Fleet;
use crate::customer::report::RunReport;
use crate::error::{EXIT_DRIFT, EXIT_INTERRUPTED, EXIT_STAGE_FAILED, Error};
use crate::fleet::scheduler;
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::{Approval, Options};
use crate::tools::find;
use crate::ui::summary::{self, DriftState};

use super::run::{RunArgs, resolve_all, sink};

pub(super) async fn drift(fleet: Fleet, args: RunArgs) -> Result<(), Error> {
    let tools = find::find_tools(&fleet, Operation::Drift)?;
    let ctx = Rc::new(FleetContext::new(fleet, Some(tools)).with_limits(args.policy.plan_jobs, args.policy.lock_timeout));
    let plans = resolve_all(&ctx, &args.names, args.env.as_ref())?;
    let single = plans.len() == 1;
    let sink = sink(args.plain, plans.len());
    let opts = Options { approval: Approval::Auto, rebuild_ami: false, no_smoke: true, from: None, turn: None };
    let started = Instant::now();
    let outcomes = scheduler::run(ctx.clone(), plans, Operation::Drift, opts, &args.policy, sink.clone(), Stop::new()).await;
    drop(sink);
    let wall = started.elapsed();
    let interrupted = crate::signals::interrupted() || outcomes.iter().any(|o| matches!(o.error, Some(Error::Interrupted(_))));
    let mut errors = Vec::new();
    for o in &outcomes {
        if let Some(e) = &o.error
            && !matches!(e, Error::Stopped(_))
        {
            if single {
                errors.push(e.to_string());
            } else {
                eprintln!("error: {}: {e}", o.report.customer);
            }
        }
    }
    let reports: Vec<RunReport> = outcomes.into_iter().map(|o| o.report).collect();
    // Under GitHub Actions: the drift table in the job summary.
    crate::ui::github::after_run(crate::operation::Operation::Drift, &reports, wall)?;
    if args.json {
        super::json_out::print("drift", summary::drift_json(&reports, wall));
    } else {
        print!("{}", summary::drift_text(&reports, wall, summary::stdout_colour()));
    }
    let failed: Vec<&str> = reports.iter().filter(|r| DriftState::of(r) == DriftState::Unknown).map(|r| r.customer.as_str()).collect();
    let drifted: Vec<&str> = reports.iter().filter(|r| DriftState::of(r) == DriftState::Drifted).map(|r| r.customer.as_str()).collect();
    if interrupted {
        return Err(Error::Reported { message: "interrupted".into(), code: EXIT_INTERRUPTED });
    }
    if !failed.is_empty() {
        let first = errors.first().map(|e| format!("\n{e}")).unwrap_or_default();
        return Err(Error::Reported {
            message: format!("drift could not be checked for {}{first}", failed.join(", ")),
            code: EXIT_STAGE_FAILED,
        });
    }
    if !drifted.is_empty() {
        return Err(Error::Reported {
            message: format!("drift found: {} (run `stamp plan` to see what a deploy would put back)", drifted.join(", ")),
            code: EXIT_DRIFT,
        });
    }
    Ok(())
}
