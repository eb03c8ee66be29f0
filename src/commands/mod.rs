//! The command layer: parsed arguments -> options -> an operation, results printed
//! (data on stdout, everything else on stderr), errors mapped to the exit-code table.
//! Nothing below this layer imports clap.

mod doctor;
mod drift;
mod gc;
mod history;
mod json_out;
mod list;
mod matrix;
mod outputs;
mod plan_file;
mod rollout;
mod run;
mod status;
mod validate;

use std::io::IsTerminal;

use crate::cli::{Cli, Command, Target};
use crate::config::{EnvOverrides, Fleet};
use crate::error::{EXIT_OK, Error};
use crate::fleet::selection::{self, Selector};
use crate::names::CustomerName;

pub use run::RunArgs;

pub fn main(cli: Cli) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    // Customers' pipelines are local tasks on this one thread.
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        if let Err(e) = crate::signals::install(crate::interrupt::announce) {
            eprintln!("error: {e}");
            return e.exit_code();
        }
        let code = match run(cli).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                crate::ui::github::annotate(&e, None);
                e.exit_code()
            }
        };
        crate::ui::github::notice_held_back();
        code
    })
}

async fn run(cli: Cli) -> Result<(), Error> {
    crate::ui::ci_env::init(cli.progress().into());
    crate::ui::colour::init(cli.color.into());
    // These need no fleet file.
    match &cli.command {
        // Runs without a (valid) fleet file: it says what it could not check.
        Command::Doctor { json } => {
            return doctor::doctor(&cli.config, Fleet::load(&cli.config, &EnvOverrides::from_process()), *json).await;
        }
        Command::Completions { shell } => {
            crate::cli::completions(*shell, &mut std::io::stdout().lock());
            return Ok(());
        }
        Command::Man { command } => return crate::cli::man(command.as_deref(), &mut std::io::stdout().lock()).map_err(Error::usage),
        _ => {}
    }
    let fleet = Fleet::load(&cli.config, &EnvOverrides::from_process())?;
    let plain = !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some();
    match &cli.command {
        Command::Deploy { target, fleet: f, auto_approve, rebuild_ami, json, no_smoke, from, approved_plan, allow_destroy } => {
            let mut args = RunArgs::new(&fleet, target, f, *auto_approve, *rebuild_ami, *json, plain)?;
            args.no_smoke = *no_smoke;
            args.from = from.map(Into::into);
            args.approved_plan = approved_plan.clone();
            args.allow_destroy = *allow_destroy;
            run::run(fleet, crate::operation::Operation::Deploy, args).await
        }
        Command::Rollout {
            target,
            parallel,
            plan_jobs,
            lock_timeout,
            auto_approve,
            allow_destroy,
            json,
            resume,
            retry_failed,
            pause,
            cancel,
            status,
            waves,
            rollback,
        } => {
            use rollout::Action;
            let action = match (*resume, *pause, *cancel, *status) {
                _ if *rollback => Action::Rollback,
                (true, ..) => Action::Resume,
                (_, true, ..) => Action::Pause,
                (_, _, true, _) => Action::Cancel,
                (.., true) => Action::Status,
                _ => Action::Start,
            };
            let policy = crate::fleet::scheduler::Policy {
                parallel: *parallel as usize,
                plan_jobs: plan_jobs.map(usize::from).unwrap_or_else(crate::shared::context::default_plan_jobs),
                lock_timeout: *lock_timeout,
                ..Default::default()
            };
            let args = rollout::RolloutArgs {
                action,
                selector: Selector { names: target.customers.clone(), all: target.all, tags: target.tag.clone() },
                env: target.env.clone(),
                policy,
                auto_approve: *auto_approve,
                allow_destroy: *allow_destroy,
                json: *json,
                plain,
                retry_failed: *retry_failed,
                waves: waves.map(usize::from),
            };
            rollout::rollout(fleet, args).await
        }
        Command::Rollback { target, fleet: f, to, auto_approve, json, no_smoke, approved_plan, allow_destroy } => {
            let mut args = RunArgs::new(&fleet, target, f, *auto_approve, false, *json, plain)?;
            args.no_smoke = *no_smoke;
            args.approved_plan = approved_plan.clone();
            args.allow_destroy = *allow_destroy;
            args.rollback = Some(to.clone());
            run::run(fleet, crate::operation::Operation::Deploy, args).await
        }
        Command::History { customer, limit, json } => history::history(fleet, customer, limit.map(|n| n as usize), *json).await,
        Command::Gc { dry_run, auto_approve } => gc::gc(fleet, *dry_run, *auto_approve).await,
        Command::Plan { target, fleet: f, json, out } => {
            let mut args = RunArgs::new(&fleet, target, f, false, false, *json, plain)?;
            args.out = out.clone();
            run::run(fleet, crate::operation::Operation::Plan, args).await
        }
        Command::Drift { target, fleet: f, json } => {
            let args = RunArgs::new(&fleet, target, f, false, false, *json, plain)?;
            drift::drift(fleet, args).await
        }
        Command::Destroy { target, fleet: f, auto_approve, json } => {
            let args = RunArgs::new(&fleet, target, f, *auto_approve, false, *json, plain)?;
            run::run(fleet, crate::operation::Operation::Destroy, args).await
        }
        Command::Render { target } => {
            let names = select(&fleet, target)?;
            run::render(fleet, &names, target).await
        }
        Command::Validate { target, json } => {
            let names = select(&fleet, target)?;
            validate::validate(fleet, &names, target, *json)
        }
        Command::Outputs { target, json, show_sensitive } => {
            outputs::outputs(&fleet, &select(&fleet, target)?, target, *json, *show_sensitive).await
        }
        Command::Status { target, json } => status::status(&fleet, &select(&fleet, target)?, target.env.as_ref(), *json).await,
        Command::List { json } => list::list(&fleet, *json),
        Command::Doctor { .. } | Command::Completions { .. } | Command::Man { .. } => unreachable!("handled before the fleet file"),
        Command::Matrix { customers, all, tag, changed_since, canary, max_jobs } => {
            let selector = Selector { names: customers.clone(), all: *all, tags: tag.clone() };
            let max_jobs = max_jobs.map(usize::from);
            matrix::matrix(&fleet, &matrix::MatrixArgs { selector, changed_since: changed_since.clone(), canary: *canary, max_jobs })
        }
    }
}

/// The customers of a command that only reads (`selection::Use::Reads`).
fn select(fleet: &Fleet, t: &Target) -> Result<Vec<CustomerName>, Error> {
    selection::select(fleet, &Selector { names: t.customers.clone(), all: t.all, tags: t.tag.clone() }, selection::Use::Reads)
}
