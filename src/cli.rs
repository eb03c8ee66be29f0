//! Command-line types (clap). Nothing else in stamp imports clap: `main` turns these
//! into settings and calls the engine.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::env_vars::parse_lock_timeout;
use crate::names::{CustomerName, EnvName};

/// `stamp --version`: the version and the commit it was built from (build.rs).
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STAMP_BUILD_COMMIT_INFO"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "stamp",
    version = VERSION,
    about = "Stamp out one isolated copy of the service's AWS infrastructure per customer",
    long_about = "Stamp out one isolated copy of the service's AWS infrastructure per customer:\n\
                  state bucket -> terraform/vpc -> packer AMI -> terraform/frontends/<env>.",
    after_help = "Exit codes: 0 success, 1 a stage (or a customer) failed or was not started because of a failure, \
                  2 bad usage or configuration (nothing started), 3 `stamp drift` found drift, 130 interrupted."
)]
pub struct Cli {
    /// The fleet file.
    #[arg(long, global = true, env = "STAMP_CONFIG", default_value = "stamp.toml", value_name = "FILE")]
    pub config: PathBuf,

    /// The same as --progress plain (kept for existing scripts).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// How progress is shown: auto (GitHub Actions groups under GITHUB_ACTIONS=true,
    /// Travis folds under TRAVIS=true, else bars in a terminal and plain lines
    /// without one), terminal, plain, github, travis.
    #[arg(long, global = true, env = "STAMP_PROGRESS", value_enum, default_value_t = ProgressArg::Auto, value_name = "MODE")]
    pub progress: ProgressArg,

    /// Colour in the summaries on stdout: auto (when stdout is a terminal, unless
    /// NO_COLOR is set to a non-empty value; CLICOLOR_FORCE set to one other than 0
    /// forces it), always, never. Every coloured marker also reads without colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The progress mode asked for: `--no-progress` is `--progress plain`.
    pub fn progress(&self) -> ProgressArg {
        if self.no_progress { ProgressArg::Plain } else { self.progress }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy customers: state bucket, vpc, AMI, frontends.
    Deploy {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Apply without asking (required without a terminal, e.g. in CI).
        #[arg(long)]
        auto_approve: bool,
        /// Bake a new AMI even if one of this image exists.
        #[arg(long)]
        rebuild_ami: bool,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Skip the smoke test (GET public_url until it answers) after the frontends.
        #[arg(long)]
        no_smoke: bool,
        /// Restart at this stage, taking the earlier stages' results from the run
        /// journal (.stamp/<customer>/journal.json). Without it, a deploy after a
        /// failed or interrupted one resumes at the stage that did not finish.
        #[arg(long, value_enum, value_name = "STAGE")]
        from: Option<StageArg>,
        /// Apply only what this plan file (written by `stamp plan --out FILE`) shows:
        /// a stack whose plan now destroys or replaces a resource the file does not
        /// list for that customer and stack is not applied. Counts as approval (no
        /// --auto-approve needed).
        #[arg(long, value_name = "FILE")]
        approved_plan: Option<PathBuf>,
        /// With --auto-approve: also apply destroys and replacements that no
        /// approved plan lists (refused by default; `[fleet] allow_destroy = true`
        /// allows them for the fleet).
        #[arg(long, conflicts_with = "approved_plan")]
        allow_destroy: bool,
    },
    /// Deploy customers in waves ([rollout] in stamp.toml): canaries first, a soak
    /// between waves, a failure budget that halts the rollout. Its record lives in
    /// S3, so another process or CI job can --resume, --pause or --cancel it.
    #[command(after_help = "Exit codes: 0 the rollout finished (or ran its --waves); 1 it halted (the failed customers are \
                            named), was paused or cancelled, or a stage failed; 2 bad usage, or another rollout holds \
                            the fleet; 130 interrupted (then `stamp rollout --resume`).")]
    Rollout {
        #[command(flatten)]
        target: Target,
        /// Customers side by side within a wave; never more than the failures the
        /// budget still tolerates plus one.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
        parallel: u16,
        /// At most N terraform init/plan steps at once (as deploy's --plan-jobs).
        #[arg(long, env = "STAMP_PLAN_JOBS", value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
        plan_jobs: Option<u16>,
        /// terraform's -lock-timeout (as deploy's --lock-timeout).
        #[arg(long, env = "STAMP_LOCK_TIMEOUT", default_value = "60s", value_parser = parse_lock_timeout, value_name = "DURATION")]
        lock_timeout: std::time::Duration,
        /// Apply without asking (required without a terminal, e.g. in CI).
        #[arg(long)]
        auto_approve: bool,
        /// With --auto-approve: also apply destroys and replacements (as deploy's).
        #[arg(long)]
        allow_destroy: bool,
        /// Print the rollout (state, customers, the next wave as a GitHub matrix) as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Continue the fleet's current rollout (after a kill, a pause, or in the next
        /// CI job); its customers come from its record.
        #[arg(long, conflicts_with_all = ["customers", "all", "tag", "pause", "cancel", "status"])]
        resume: bool,
        /// With --resume: deploy the customers that failed again.
        #[arg(long, requires = "resume")]
        retry_failed: bool,
        /// Stop the current rollout at its next safe point (before a customer or a
        /// wave starts); --resume continues it.
        #[arg(long, conflicts_with_all = ["customers", "all", "tag", "cancel", "status"])]
        pause: bool,
        /// End the current rollout at its next safe point; it cannot be resumed.
        #[arg(long, conflicts_with_all = ["customers", "all", "tag", "status"])]
        cancel: bool,
        /// Print the current rollout and change nothing.
        #[arg(long, conflicts_with_all = ["customers", "all", "tag"])]
        status: bool,
        /// Roll every customer a halted (or paused) rollout deployed back to the
        /// release it ran before, then end the rollout.
        #[arg(long, conflicts_with_all = ["customers", "all", "tag", "resume", "pause", "cancel", "status", "waves"])]
        rollback: bool,
        /// Run at most N waves, then stop (the record waits for `--resume`): a CI job per wave.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        waves: Option<u16>,
    },
    /// Deploy customers' previous release again (or the one --to names): its recorded
    /// commit and AMI (no bake while the AMI is registered), through a normal deploy
    /// whose plan is shown and approved as a deploy's. Recorded as a rollback.
    Rollback {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: FleetArgs,
        /// The release to deploy (an id `stamp history` lists) instead of the previous one.
        #[arg(long, value_name = "RELEASE")]
        to: Option<String>,
        /// Apply without asking (required without a terminal, e.g. in CI).
        #[arg(long)]
        auto_approve: bool,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Skip the smoke test after the frontends.
        #[arg(long)]
        no_smoke: bool,
        /// Apply only what this plan file (written by `stamp plan --out FILE`) shows, as
        /// `deploy --approved-plan` does.
        #[arg(long, value_name = "FILE")]
        approved_plan: Option<PathBuf>,
        /// With --auto-approve: also apply destroys and replacements no approved plan lists.
        #[arg(long, conflicts_with = "approved_plan")]
        allow_destroy: bool,
    },
    /// A customer's deploys, newest first, from its state bucket: when, what
    /// (deploy, rollback, rollout), how it ended, the release, commit, AMI, who ran it.
    History {
        #[arg(value_parser = parse_customer)]
        customer: CustomerName,
        /// Only the newest N deploys.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deregister the AMIs stamp baked that no customer runs and no release among each
    /// customer's last `[rollout] keep_releases` deploys names, with their snapshots.
    Gc {
        /// List what would be deleted and kept; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete without asking (required without a terminal, e.g. in CI).
        #[arg(long, conflicts_with = "dry_run")]
        auto_approve: bool,
    },
    /// Show what a deploy would change, building nothing.
    Plan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Also write the plan as JSON to FILE, for `stamp deploy --approved-plan FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Compare each deployed stack with the real infrastructure (refresh-only plan:
    /// "drifted") and with the configuration (normal plan: "pending"); changes nothing.
    /// Exit 3 when a customer drifted.
    Drift {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Destroy customers' stacks (frontends first, then vpc) and their AMIs.
    Destroy {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Destroy without asking (required without a terminal).
        #[arg(long)]
        auto_approve: bool,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check customers without AWS and without running a tool: files, keys, types,
    /// names, the stacks' variables, the template's variables, the app templates.
    Validate {
        #[command(flatten)]
        target: Target,
        /// Print the result as JSON on stdout (the problems stay on stderr too).
        #[arg(long)]
        json: bool,
    },
    /// Print customers' outputs, read from their states in S3.
    Outputs {
        #[command(flatten)]
        target: Target,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
        /// Show sensitive values instead of "(sensitive)".
        #[arg(long)]
        show_sensitive: bool,
    },
    /// What is deployed, per customer, read from the states in S3 (no terraform
    /// run): revision, AMI, URL, when each stack was applied, held state locks,
    /// the last local run.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every generated file for customers; run nothing.
    Render {
        #[command(flatten)]
        target: Target,
    },
    /// List the customers of the fleet.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the tools, their versions, and that AWS (or the emulator) answers.
    Doctor {
        /// Print the checks as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `stamp completions bash > /etc/bash_completion.d/stamp`,
    /// `stamp completions zsh > "${fpath[1]}/_stamp"`,
    /// `stamp completions fish > ~/.config/fish/completions/stamp.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `stamp man > stamp.1`, or a
    /// command's own page (`stamp man deploy > stamp-deploy.1`).
    Man {
        /// A command whose page to print instead of stamp's.
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
    /// Print the customers as a GitHub Actions matrix: {"include":[{"customer","env","region"}]}.
    /// Runs git only (no AWS, no tool).
    #[command(after_help = "With --changed-since REF, only the customers whose deployment the files changed in \
                            `git diff REF...HEAD` could alter (committed changes only): their customer file; \
                            terraform/frontends/<env>/ (the customers of that env); the fleet file, anything else \
                            under terraform/ (vpc/, modules/), the packer template's directory or the app \
                            templates (all). Paths are those stamp.toml configures. Sorted by name; an empty \
                            include list means nothing to deploy.")]
    Matrix {
        /// Customers (default: every customer of the fleet).
        #[arg(value_parser = parse_customer, conflicts_with_all = ["all", "tag"])]
        customers: Vec<CustomerName>,
        /// Every customer of the fleet (the default).
        #[arg(long)]
        all: bool,
        /// The customers carrying this tag (repeatable: any of them).
        #[arg(long, value_name = "TAG", conflicts_with = "all")]
        tag: Vec<String>,
        /// Only the customers the changes REF...HEAD could deploy differently.
        #[arg(long, value_name = "REF")]
        changed_since: Option<String>,
        /// Add "canary": true to the first K customers (names in command-line order,
        /// else [fleet] canary, else name order), false to the others.
        #[arg(long, value_name = "K", default_value_t = 0)]
        canary: usize,
        /// At most N matrix entries (1-256; GitHub runs at most 256 jobs per matrix):
        /// each canary alone and first, the other customers by (region, name) in
        /// near-equal groups, each entry {"job","customers","count","region","env","canary"}
        /// for `stamp deploy $customers`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        max_jobs: Option<u16>,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// Customers (files customers/<CUSTOMER>.toml), in this order. None named: deploy,
    /// plan, drift and destroy refuse; the other commands take every customer.
    #[arg(value_parser = parse_customer, conflicts_with_all = ["all", "tag"])]
    pub customers: Vec<CustomerName>,
    /// Every customer of the fleet.
    #[arg(long)]
    pub all: bool,
    /// The customers carrying this tag (repeatable: any of them).
    #[arg(long, value_name = "TAG", conflicts_with = "all")]
    pub tag: Vec<String>,
    /// Use this env instead of the customers' own.
    #[arg(long, value_parser = parse_env)]
    pub env: Option<EnvName>,
}

#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    /// Customers at work side by side (each customer's own stages keep their order).
    /// A customer whose terraform apply waits on AWS lends its turn meanwhile, so up
    /// to twice N are in flight; with N = 1, one customer at a time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub parallel: u16,
    /// At most N terraform init/plan steps at once across the fleet [default: the
    /// CPUs of this machine]. They compute; applies and bakes mostly wait on AWS and
    /// are not limited by it.
    #[arg(long, env = "STAMP_PLAN_JOBS", value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub plan_jobs: Option<u16>,
    /// How long terraform waits for a state lock that another run holds before it
    /// gives up (terraform's -lock-timeout), e.g. 30s, 10m.
    #[arg(long, env = "STAMP_LOCK_TIMEOUT", default_value = "60s", value_parser = parse_lock_timeout, value_name = "DURATION")]
    pub lock_timeout: std::time::Duration,
    /// Start no new customer after the first failure.
    #[arg(long, conflicts_with = "max_failures")]
    pub fail_fast: bool,
    /// Start no new customer after more than K failures.
    #[arg(long, value_name = "K")]
    pub max_failures: Option<usize>,
    /// Deploy the first K customers completely first (command-line order, else
    /// [fleet] canary, else name order); the rest only if every canary succeeded.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub canary: usize,
}

/// `deploy --from` values: the deploy's stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageArg {
    Bucket,
    Vpc,
    Ami,
    Frontends,
    Smoke,
}

impl From<StageArg> for crate::events::Stage {
    fn from(s: StageArg) -> Self {
        use crate::events::Stage;
        match s {
            StageArg::Bucket => Stage::Bucket,
            StageArg::Vpc => Stage::Vpc,
            StageArg::Ami => Stage::Ami,
            StageArg::Frontends => Stage::Frontends,
            StageArg::Smoke => Stage::Smoke,
        }
    }
}

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for crate::ui::colour::When {
    fn from(c: ColorArg) -> Self {
        use crate::ui::colour::When;
        match c {
            ColorArg::Auto => When::Auto,
            ColorArg::Always => When::Always,
            ColorArg::Never => When::Never,
        }
    }
}

/// `stamp completions SHELL`: the script, generated from these types.
pub(crate) fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "stamp", out);
}

/// `stamp man [COMMAND]`: the man page in roff, generated from these types. A
/// command's page is named `stamp-<command>`, as git's and cargo's are.
pub(crate) fn man(command: Option<&str>, out: &mut dyn std::io::Write) -> Result<(), String> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => {
            let sub = cli.find_subcommand(name).ok_or_else(|| {
                let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help").collect();
                format!("`{name}` is not a stamp command; one of {}", names.join(", "))
            })?;
            // clap names are 'static; this runs once, just before the process exits.
            let full: &'static str = Box::leak(format!("stamp-{name}").into_boxed_str());
            sub.clone().name(full).bin_name(full).version(VERSION)
        }
    };
    match clap_mangen::Man::new(page).render(out) {
        // `stamp man | head`: the reader had enough.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing the man page: {e}")),
        _ => Ok(()),
    }
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Terminal,
    Plain,
    Github,
    Travis,
}

impl From<ProgressArg> for crate::ui::ci_env::Progress {
    fn from(p: ProgressArg) -> Self {
        use crate::ui::ci_env::Progress;
        match p {
            ProgressArg::Auto => Progress::Auto,
            ProgressArg::Terminal => Progress::Terminal,
            ProgressArg::Plain => Progress::Plain,
            ProgressArg::Github => Progress::Github,
            ProgressArg::Travis => Progress::Travis,
        }
    }
}

fn parse_customer(s: &str) -> Result<CustomerName, String> {
    CustomerName::parse(s)
}

fn parse_env(s: &str) -> Result<EnvName, String> {
    EnvName::parse(s)
}
