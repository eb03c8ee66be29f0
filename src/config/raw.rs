//! The fleet file and customer files as written: the TOML shapes serde reads, with
//! their spans for errors that point at the line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleetFile {
    #[serde(default)]
    pub(super) fleet: RawFleet,
    #[serde(default)]
    pub(super) paths: RawPaths,
    #[serde(default)]
    pub(super) aws: RawAws,
    #[serde(default)]
    pub(super) tools: RawTools,
    #[serde(default)]
    pub(super) packer: RawPacker,
    #[serde(default)]
    pub(super) vpc: RawStage,
    #[serde(default)]
    pub(super) frontends: RawStage,
    #[serde(default)]
    pub(super) app: RawApp,
    #[serde(default)]
    pub(super) smoke: RawSmoke,
    #[serde(default)]
    pub(super) rollout: RawRollout,
    /// `[secrets]`: variable name -> where its value comes from at run time.
    pub(super) secrets: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) region: Option<Spanned<String>>,
    pub(super) state_bucket: Option<Spanned<String>>,
    pub(super) default_env: Option<Spanned<String>>,
    pub(super) envs: Option<Spanned<Vec<String>>>,
    pub(super) app_repo: Option<Spanned<String>>,
    pub(super) git_id: Option<Spanned<String>>,
    /// Customers deployed first by `--canary K` (in this order).
    pub(super) canary: Option<Spanned<Vec<String>>>,
    /// A non-interactive deploy may destroy and replace without an approved plan.
    pub(super) allow_destroy: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaths {
    pub(super) terraform: Option<String>,
    pub(super) packer: Option<String>,
    pub(super) customers: Option<String>,
    pub(super) work: Option<String>,
    pub(super) vars: Option<String>,
    pub(super) app_templates: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAws {
    pub(super) endpoint: Option<Spanned<String>>,
    pub(super) profile: Option<String>,
    pub(super) account_id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTools {
    pub(super) terraform: Option<String>,
    pub(super) packer: Option<String>,
    pub(super) aws: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPacker {
    #[serde(default)]
    pub(super) only: Vec<String>,
    pub(super) vars: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    pub(super) vars: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) dir: Option<Spanned<String>>,
    pub(super) server_name: Option<Spanned<String>>,
    pub(super) puma_workers: Option<Spanned<i64>>,
    pub(super) puma_threads: Option<Spanned<i64>>,
}

/// `[rollout]`: how `stamp rollout` goes through the fleet (fleet file only).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollout {
    /// Counts ("1", 3) or percentages ("25%") of the selection, cumulative.
    pub(super) waves: Option<Spanned<Vec<toml::Value>>>,
    /// A duration ("10m") or a number of seconds; 0 for none.
    pub(super) soak: Option<Spanned<toml::Value>>,
    /// A count ("2", 2) or a percentage ("5%") of the selection.
    pub(super) max_failures: Option<Spanned<toml::Value>>,
    /// "halt" or "rollback".
    pub(super) on_failure: Option<Spanned<String>>,
    pub(super) keep_releases: Option<Spanned<i64>>,
    /// CloudWatch alarm names; `{{customer}}` makes one per customer.
    pub(super) alarms: Option<Spanned<Vec<String>>>,
    /// The bucket of the rollout record: `{{account_id}}` and `{{region}}` (the fleet's).
    pub(super) bucket: Option<Spanned<String>>,
}

/// `[smoke]`: the check after a deploy that the public URL answers.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmoke {
    pub(super) enabled: Option<Spanned<bool>>,
    pub(super) path: Option<Spanned<String>>,
    /// A duration ("5m", "90s") or a number of seconds.
    pub(super) timeout: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCustomerFile {
    pub(super) region: Option<Spanned<String>>,
    pub(super) env: Option<Spanned<String>>,
    pub(super) git_id: Option<Spanned<String>>,
    pub(super) app_repo: Option<Spanned<String>>,
    /// Labels for `--tag`.
    pub(super) tags: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) vpc: RawStage,
    #[serde(default)]
    pub(super) packer: RawStage,
    #[serde(default)]
    pub(super) frontends: RawStage,
    #[serde(default)]
    pub(super) app: RawApp,
    #[serde(default)]
    pub(super) smoke: RawSmoke,
    pub(super) secrets: Option<Spanned<toml::Table>>,
}

// ---------------------------------------------------------------- resolved settings
