//! Command-line types (clap). Nothing else in stamp imports clap: `main` turns these
//! into settings and calls the engine.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::names::{CustomerName, EnvName};

#[derive(Debug, Parser)]
#[command(
    name = "stamp",
    version,
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

    /// Plain timestamped lines instead of progress bars (the default without a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,

    #[command(subcommand)]
    pub command: Command,
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
    Doctor,
}

#[derive(Debug, Args)]
pub struct Target {
    /// Customers (files customers/<CUSTOMER>.toml), in this order.
    #[arg(value_parser = parse_customer, required_unless_present_any = ["all", "tag"], conflicts_with_all = ["all", "tag"])]
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
    /// Customers side by side (each customer's own stages keep their order).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub parallel: u16,
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

fn parse_customer(s: &str) -> Result<CustomerName, String> {
    CustomerName::parse(s)
}

fn parse_env(s: &str) -> Result<EnvName, String> {
    EnvName::parse(s)
}
