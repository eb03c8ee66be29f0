//! deploy, plan, destroy (one customer or a fleet) and render.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cancel::Stop;
use crate::cli::{FleetArgs, Target};
use crate::config::Fleet;
use crate::customer::pipeline::Pipeline;
use crate::customer::plan::CustomerPlan;
use crate::customer::report::RunReport;
use crate::error::{EXIT_INTERRUPTED, EXIT_STAGE_FAILED, EXIT_USAGE, Error};
use crate::events::{Discard, EventSink, Status};
use crate::fleet::scheduler::{self, Outcome, Policy};
use crate::fleet::selection::{self, Selector};
use crate::names::{CustomerName, EnvName};
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::{Approval, Options, Reviewed, Reviewer, planned_destroys};
use crate::tools::find;
use crate::ui::plain::PlainSink;
use crate::ui::prompt::{self, TerminalApprover};
use crate::ui::summary;
use crate::ui::terminal::TerminalSink;

/// A deploy, plan or destroy, as the command line asked for it.
pub(crate) struct RunArgs {
    /// In run order: canaries first.
    pub names: Vec<CustomerName>,
    pub env: Option<EnvName>,
    pub policy: Policy,
    pub auto_approve: bool,
    pub rebuild_ami: bool,
    pub json: bool,
    pub plain: bool,
    /// `deploy --no-smoke`.
    pub no_smoke: bool,
    /// `deploy --from STAGE`.
    pub from: Option<crate::events::Stage>,
    /// `deploy --approved-plan FILE`.
    pub approved_plan: Option<PathBuf>,
    /// `deploy --allow-destroy`.
    pub allow_destroy: bool,
    /// `plan --out FILE`.
    pub out: Option<PathBuf>,
    /// `rollback [--to RELEASE]`: each plan is pinned to that release (`None`: the
    /// previous one) before anything starts.
    pub rollback: Option<Option<String>>,
}

impl RunArgs {
    pub(crate) fn new(
        fleet: &Fleet,
        t: &Target,
        f: &FleetArgs,
        auto_approve: bool,
        rebuild_ami: bool,
        json: bool,
        plain: bool,
    ) -> Result<Self, Error> {
        let mut names =
            selection::select(fleet, &Selector { names: t.customers.clone(), all: t.all, tags: t.tag.clone() }, selection::Use::Runs)?;
        if t.customers.is_empty() && f.canary > 0 {
            // Not given by name: [fleet] canary first, in its order, then by name.
            names = selection::canary_order(fleet, &names);
        }
        Ok(Self {
            names,
            env: t.env.clone(),
            policy: Policy {
                parallel: f.parallel as usize,
                fail_fast: f.fail_fast,
                max_failures: f.max_failures,
                canary: f.canary,
                plan_jobs: f.plan_jobs.map(usize::from).unwrap_or_else(crate::shared::context::default_plan_jobs),
                lock_timeout: f.lock_timeout,
                ..Policy::default()
            },
            auto_approve,
            rebuild_ami,
            json,
            plain,
            no_smoke: false,
            from: None,
            approved_plan: None,
            allow_destroy: false,
            out: None,
            rollback: None,
        })
    }
}

/// Resolves every customer; all problems of all customers are printed, then exit 2.
pub(super) fn resolve_all(ctx: &FleetContext, names: &[CustomerName], env: Option<&EnvName>) -> Result<Vec<CustomerPlan>, Error> {
    let mut plans = Vec::new();
    let mut problems = 0;
    for n in names {
        match CustomerPlan::resolve(ctx, n, env) {
            Ok(p) => plans.push(p),
            Err(errors) => {
                for e in errors {
                    problems += 1;
                    if names.len() > 1 {
                        eprintln!("error: {n}: {e}");
                    } else {
                        eprintln!("error: {e}");
                    }
                    crate::ui::github::annotate(&e, Some(&ctx.fleet.customer_file(n)));
                }
            }
        }
    }
    if problems > 0 {
        return Err(Error::Reported {
            message: format!("{problems} problem(s) in the configuration; nothing was started"),
            code: EXIT_USAGE,
        });
    }
    Ok(plans)
}

pub(super) async fn run(fleet: Fleet, op: Operation, args: RunArgs) -> Result<(), Error> {
    // Read and checked before anything starts: a bad file is exit 2.
    let approved_plan = match &args.approved_plan {
        Some(f) => Some(Rc::new(super::plan_file::read(f)?)),
        None => None,
    };
    if let Some(out) = &args.out {
        super::plan_file::check_out(out)?;
    }
    let tools = find::find_tools(&fleet, op)?;
    let ctx = Rc::new(FleetContext::new(fleet, Some(tools)).with_limits(args.policy.plan_jobs, args.policy.lock_timeout));
    let mut plans = resolve_all(&ctx, &args.names, args.env.as_ref())?;
    if let Some(to) = &args.rollback {
        plans = pin_all(&ctx, plans, to.as_deref()).await?;
    }
    let ci_url = crate::ui::ci_env::get().env.run_url.clone();
    for p in &mut plans {
        p.record.ci_url = ci_url.clone();
    }
    // Deploy bakes the commit; plan says which one a deploy would bake.
    if matches!(op, Operation::Deploy | Operation::Plan) {
        crate::fleet::revisions::resolve(&ctx.fleet.root, &mut plans, crate::ui::github::annotate).await?;
    }
    if op == Operation::Deploy {
        check_journals(&ctx, &plans, args.from)?;
    }
    let sink = sink(args.plain, plans.len());
    let approval = approval(&ctx, &plans, op, &args, approved_plan, &sink).await?;
    let opts = Options { approval, rebuild_ami: args.rebuild_ami, no_smoke: args.no_smoke, from: args.from, turn: None };
    let started = Instant::now();
    let outcomes = scheduler::run(ctx.clone(), plans, op, opts, &args.policy, sink.clone(), Stop::new()).await;
    drop(sink);
    let wall = started.elapsed();
    let reports: Vec<RunReport> = outcomes.iter().map(|o| o.report.clone()).collect();
    // Written whatever the plans' results: a customer whose plan failed is listed
    // without stacks, so a deploy of that file destroys nothing of it.
    let written = match &args.out {
        Some(out) => super::plan_file::write(out, &reports, wall),
        None => Ok(()),
    };
    let ci = crate::ui::github::after_run(op, &reports, wall).and(written);
    // A rollback that did not finish is resumed by running it again (`deploy` would
    // deploy the customers' own git_id).
    let verb = if args.rollback.is_some() { "rollback" } else { op.as_str() };
    match (finish(op, verb, outcomes, wall, args.json), ci) {
        (Ok(()), Err(e)) => Err(e),
        (result, _) => result,
    }
}

/// How the run's applies are approved: a reviewed plan file, `--auto-approve`
/// (destroys only when allowed), the prompt for one customer, or the fleet's plan
/// shown and confirmed once. Refused without a terminal and without either flag.
pub(super) async fn approval(
    ctx: &Rc<FleetContext>,
    plans: &[CustomerPlan],
    op: Operation,
    args: &RunArgs,
    approved_plan: Option<Rc<Reviewed>>,
    sink: &Rc<dyn EventSink>,
) -> Result<Approval, Error> {
    let several = plans.len() > 1;
    Ok(match op {
        Operation::Plan | Operation::Render => Approval::Auto,
        // The reviewed plan is the approval: no terminal or --auto-approve needed.
        Operation::Deploy if let Some(reviewed) = approved_plan => Approval::Approved(reviewed),
        // Unattended: destroys and replacements only when allowed.
        Operation::Deploy if args.auto_approve => {
            if args.allow_destroy {
                Approval::Auto
            } else if let Some(at) = &ctx.fleet.allow_destroy {
                eprintln!("note: destroys and replacements are allowed without an approved plan: [fleet] allow_destroy = true ({at})");
                Approval::Auto
            } else {
                Approval::Approved(Rc::new(Reviewed::nothing()))
            }
        }
        _ if args.auto_approve => Approval::Auto,
        _ if !prompt::interactive() => {
            let (verb, how) = if op == Operation::Destroy {
                ("destroy", "pass --auto-approve (CI) or run it in a terminal")
            } else {
                (
                    "apply",
                    "deploy a reviewed plan with --approved-plan FILE (written by `stamp plan --out FILE`), pass --auto-approve \
                     (CI; it applies no destroy or replacement without --allow-destroy), or run it in a terminal",
                )
            };
            return Err(Error::usage_hint(format!("refusing to {verb} without a terminal to confirm"), how));
        }
        _ if !several => Approval::Ask(Rc::new(TerminalApprover { sink: sink.clone() })),
        Operation::Deploy => approve_fleet_plan(ctx, plans, args).await?,
        _ => approve_fleet_destroy(plans).await?,
    })
}

/// `rollback`: every plan pinned to its release (`customer::release::pin_rollback`);
/// a customer without one is a problem, all printed, then exit 2 (nothing started).
async fn pin_all(ctx: &FleetContext, plans: Vec<CustomerPlan>, to: Option<&str>) -> Result<Vec<CustomerPlan>, Error> {
    let several = plans.len() > 1;
    let mut pinned = Vec::new();
    let mut problems = Vec::new();
    for p in plans {
        let name = p.customer.name.to_string();
        match crate::customer::release::pin_rollback(ctx, p, to).await {
            Ok(p) => {
                let pin = p.pin.as_ref().expect("pinned");
                eprintln!(
                    "{name}: rolling back to release {} ({} at {}, {})",
                    pin.release_id,
                    pin.git_id,
                    &pin.commit[..12.min(pin.commit.len())],
                    pin.ami.as_ref().map(|a| a.to_string()).unwrap_or_else(|| "no AMI recorded".into())
                );
                pinned.push(p);
            }
            Err(e) => problems.push(e),
        }
    }
    match problems.len() {
        0 => Ok(pinned),
        1 if !several => Err(problems.pop().expect("one")),
        n => {
            for e in &problems {
                eprintln!("error: {e}");
            }
            Err(Error::Reported { message: format!("{n} customer(s) cannot be rolled back; nothing was started"), code: EXIT_USAGE })
        }
    }
}

/// Before anything starts: every customer's run journal can be read, and with
/// `--from STAGE` each one has the stages before it done. All problems are
/// printed, then exit 2. (Each pipeline checks again under its customer's lock.)
pub(super) fn check_journals(ctx: &FleetContext, plans: &[CustomerPlan], from: Option<crate::events::Stage>) -> Result<(), Error> {
    use crate::customer::journal::Journal;
    use crate::events::Stage;
    if from == Some(Stage::Bucket) {
        return Ok(());
    }
    let mut problems = Vec::new();
    for p in plans {
        let name = p.customer.name.as_str();
        let path = Journal::path(&ctx.fleet.paths.work.join(name));
        let checked = Journal::read(&path, name).and_then(|j| match from {
            Some(from) => crate::customer::resume::from_stages(&path, name, from, j.as_ref()).map(|_| ()),
            None => Ok(()),
        });
        if let Err(e) = checked {
            problems.push((name.to_owned(), e));
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 if plans.len() == 1 => Err(problems.pop().expect("one").1),
        n => {
            for (name, e) in &problems {
                eprintln!("error: {name}: {e}");
            }
            Err(Error::Reported { message: format!("{n} customer(s) cannot deploy as asked; nothing was started"), code: EXIT_USAGE })
        }
    }
}

/// Prints the result and turns it into the exit code.
fn finish(op: Operation, verb: &str, mut outcomes: Vec<Outcome>, wall: Duration, json: bool) -> Result<(), Error> {
    if outcomes.len() == 1 {
        let Outcome { report, error } = outcomes.pop().expect("one");
        if json {
            // The fleet's shape for one customer too (the JSON contract).
            super::json_out::print(op.as_str(), summary::fleet_json(std::slice::from_ref(&report), wall));
        } else {
            print!("{}", summary::summary_text(&report));
        }
        return match error {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    for o in &outcomes {
        if let Some(e) = &o.error
            && !matches!(e, Error::Stopped(_))
        {
            eprintln!("error: {}: {e}", o.report.customer);
        }
    }
    let interrupted = crate::signals::interrupted() || outcomes.iter().any(|o| matches!(o.error, Some(Error::Interrupted(_))));
    let reports: Vec<RunReport> = outcomes.into_iter().map(|o| o.report).collect();
    if json {
        super::json_out::print(op.as_str(), summary::fleet_json(&reports, wall));
    } else {
        print!("{}", summary::fleet_text(&reports, wall));
    }
    let unfinished: Vec<&str> = reports.iter().filter(|r| !r.status.succeeded()).map(|r| r.customer.as_str()).collect();
    if !unfinished.is_empty() {
        eprintln!("to resume: stamp {verb} {}", unfinished.join(" "));
    }
    if interrupted {
        return Err(Error::Reported { message: "interrupted".into(), code: EXIT_INTERRUPTED });
    }
    if !unfinished.is_empty() {
        return Err(Error::Reported {
            message: format!("{} of {} customers did not succeed: {}", unfinished.len(), reports.len(), unfinished.join(", ")),
            code: EXIT_STAGE_FAILED,
        });
    }
    Ok(())
}

/// Several customers in a terminal: plan them all, show the fleet's plan, ask once.
/// The deploy then applies a stack only if it destroys or replaces nothing that
/// this plan did not show.
async fn approve_fleet_plan(ctx: &Rc<FleetContext>, plans: &[CustomerPlan], args: &RunArgs) -> Result<Approval, Error> {
    eprintln!("planning {} customers before asking...", plans.len());
    let quiet: Rc<dyn crate::events::EventSink> = Rc::new(Discard);
    let opts = Options { approval: Approval::Auto, rebuild_ami: false, no_smoke: true, from: None, turn: None };
    let outcomes = scheduler::run(ctx.clone(), plans.to_vec(), Operation::Plan, opts, &args.policy, quiet, Stop::new()).await;
    let mut text = String::from("\nThe fleet's plan:\n");
    let mut failed = Vec::new();
    for o in &outcomes {
        let r = &o.report;
        if let Some(e) = &o.error {
            failed.push(format!("{}: {e}", r.customer));
            continue;
        }
        for st in &r.stages {
            if let Some(c) = st.changes {
                text.push_str(&format!("  {:<24} {:<10} {}\n", r.customer, st.name, c.short()));
            } else if st.status == Status::Skipped && st.name != crate::events::Stage::Ami {
                text.push_str(&format!("  {:<24} {:<10} {}\n", r.customer, st.name, st.detail));
            }
            for d in st.plan.resources.iter().filter(|d| d.destroys()) {
                text.push_str(&format!("  !! {:<21} {:<10} {:>3} {} {}\n", r.customer, st.name, d.action.marker(), d.action, d.address));
            }
            if st.plan.placeholder {
                text.push_str(&format!(
                    "  *  {:<21} {:<10} {}\n",
                    r.customer,
                    st.name,
                    crate::customer::report::Placeholder::label(&st.plan.placeholders)
                ));
            }
        }
    }
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("error: {f}");
        }
        return Err(Error::Reported {
            message: format!("{} customer plan(s) failed; nothing was applied", failed.len()),
            code: EXIT_STAGE_FAILED,
        });
    }
    text.push_str(&format!("Apply these changes to {} customers? Only 'yes' will be accepted: ", plans.len()));
    match prompt::ask(&text).await {
        Ok(a) if a == "yes" => {
            let destroys = planned_destroys(outcomes.iter().map(|o| &o.report));
            Ok(Approval::Approved(Rc::new(Reviewed { destroys, by: Reviewer::Prompt })))
        }
        Ok(_) => Err(Error::stage("apply cancelled; nothing was changed")),
        Err(()) => Err(Error::Interrupted(None)),
    }
}

async fn approve_fleet_destroy(plans: &[CustomerPlan]) -> Result<Approval, Error> {
    let names: Vec<String> = plans.iter().map(|p| format!("{} ({})", p.customer.name, p.customer.env)).collect();
    let q = format!("\nDestroy {} customers: {}?\nOnly 'yes' will be accepted: ", plans.len(), names.join(", "));
    match prompt::ask(&q).await {
        Ok(a) if a == "yes" => Ok(Approval::Auto),
        Ok(_) => Err(Error::stage("destroy cancelled; nothing was changed")),
        Err(()) => Err(Error::Interrupted(None)),
    }
}

/// `render`: every generated file for each customer; runs no tool.
pub(super) async fn render(fleet: Fleet, names: &[CustomerName], t: &Target) -> Result<(), Error> {
    let tools = find::find_tools(&fleet, Operation::Render)?;
    let ctx = Rc::new(FleetContext::new(fleet, Some(tools)));
    let mut plans = resolve_all(&ctx, names, t.env.as_ref())?;
    // vars/<customer>.json names the commit packer is given.
    crate::fleet::revisions::resolve(&ctx.fleet.root, &mut plans, crate::ui::github::annotate).await?;
    let sink = sink(true, plans.len());
    for plan in plans {
        let opts = Options { approval: Approval::Auto, rebuild_ami: false, no_smoke: true, from: None, turn: None };
        let p = Pipeline::open(ctx.clone(), plan, opts, sink.clone(), Stop::new(), Operation::Render).await?;
        let (_, result) = p.run().await;
        result?;
    }
    Ok(())
}

/// The renderer: GitHub Actions groups or Travis folds in those CIs, plain lines
/// without a terminal (or in another CI), else the terminal's; `--progress` chooses.
pub(super) fn sink(plain: bool, customers: usize) -> Rc<dyn EventSink> {
    let renderer = crate::ui::ci_env::get().renderer(plain);
    crate::ui::ci::sink_for(renderer, |r| match r {
        crate::ui::ci_env::Renderer::Terminal => Rc::new(TerminalSink::new(customers)),
        _ => Rc::new(PlainSink::new()),
    })
}
