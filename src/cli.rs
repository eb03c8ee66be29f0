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
    after_help = "Exit codes: 0 success, 1 a stage failed, 2 bad usage or configuration, 130 interrupted."
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
    /// Deploy a customer: state bucket, vpc, AMI, frontends.
    Deploy {
        #[command(flatten)]
        target: Target,
        /// Apply without asking (required without a terminal, e.g. in CI).
        #[arg(long)]
        auto_approve: bool,
        /// Bake a new AMI even if one of this revision and template exists.
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
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Destroy a customer's stacks (frontends first, then vpc) and its AMIs.
    Destroy {
        #[command(flatten)]
        target: Target,
        /// Destroy without asking (required without a terminal).
        #[arg(long)]
        auto_approve: bool,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a customer's outputs, read from its state in S3.
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
    /// Write every generated file for a customer; run nothing.
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
    /// The customer (a file customers/<CUSTOMER>.toml).
    #[arg(value_parser = parse_customer)]
    pub customer: CustomerName,
    /// Use this env instead of the customer's.
    #[arg(long, value_parser = parse_env)]
    pub env: Option<EnvName>,
}

fn parse_customer(s: &str) -> Result<CustomerName, String> {
    CustomerName::parse(s)
}

fn parse_env(s: &str) -> Result<EnvName, String> {
    EnvName::parse(s)
}
