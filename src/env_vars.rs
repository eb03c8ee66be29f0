//! Every environment variable stamp reads that takes a value, checked in one place
//! before anything else runs: a bad value is refused (exit 2) with the variable's
//! name and what it accepts, never replaced by a default without a word. README
//! "Environment variables" lists them all with their effect.
//!
//! The fleet-file overrides (`STAMP_AWS_ENDPOINT`, `STAMP_TERRAFORM`, ...) and
//! `AWS_CA_BUNDLE` are checked where the fleet file is read (`config`), the tools'
//! paths where they are found (`tools::find`); the rest are checked here.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Error;

pub const KILL_GRACE: &str = "STAMP_KILL_GRACE";
pub const RETRY_BASE_MS: &str = "STAMP_RETRY_BASE_MS";
pub const PLAN_JOBS: &str = "STAMP_PLAN_JOBS";
pub const LOCK_TIMEOUT: &str = "STAMP_LOCK_TIMEOUT";
pub const PROGRESS: &str = "STAMP_PROGRESS";
pub const CONFIG: &str = "STAMP_CONFIG";
pub const TOOL_MEMORY_MIB: &str = "STAMP_TOOL_MEMORY_MIB";
pub const ROLLOUT_HEARTBEAT: &str = "STAMP_ROLLOUT_HEARTBEAT";

pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(120);
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
pub const DEFAULT_ROLLOUT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The values of the variables stamp itself acts on (the command-line ones are
/// read by clap, after `check` has vetted them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `STAMP_KILL_GRACE`: how long a tool gets to stop before its group is killed.
    pub kill_grace: Duration,
    /// `STAMP_RETRY_BASE_MS`: the first pause of the retry backoff.
    pub retry_base: Duration,
    /// `STAMP_TOOL_MEMORY_MIB`: the memory one tool run holds, taken as it is (else
    /// measured in the run, at least `fleet::memory::DEFAULT_TOOL_MIB`).
    pub tool_memory_mib: Option<u64>,
    /// `STAMP_ROLLOUT_HEARTBEAT`: how often a rollout renews its hold on the record
    /// (and looks for a pause or cancel); a holder silent for six of them is stale.
    pub rollout_heartbeat: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kill_grace: DEFAULT_KILL_GRACE,
            retry_base: DEFAULT_RETRY_BASE,
            tool_memory_mib: None,
            rollout_heartbeat: DEFAULT_ROLLOUT_HEARTBEAT,
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Checks every variable of this module in `lookup` (the process environment in
/// `check`); the first bad one is the error.
pub(crate) fn check_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, Error> {
    let bad = |name: &str, value: &str, accepts: &str| {
        let shown = if value.is_empty() { "is set but empty".to_owned() } else { format!("= `{value}`") };
        Error::usage_hint(format!("the environment variable {name} {shown}: expected {accepts}"), format!("fix or unset {name}"))
    };
    let whole = |name: &str, accepts: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u64>, Error> {
        match lookup(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().ok().filter(|n| range.contains(n)).map(Some).ok_or_else(|| bad(name, &v, accepts)),
        }
    };
    let mut s = Settings::default();
    if let Some(n) = whole(KILL_GRACE, "a whole number of seconds from 1 to 3600 (default 120)", 1..=3600)? {
        s.kill_grace = Duration::from_secs(n);
    }
    if let Some(n) = whole(RETRY_BASE_MS, "a whole number of milliseconds from 1 to 60000 (default 500)", 1..=60_000)? {
        s.retry_base = Duration::from_millis(n);
    }
    whole(PLAN_JOBS, "a whole number from 1 to 256 (like --plan-jobs)", 1..=256)?;
    s.tool_memory_mib = whole(TOOL_MEMORY_MIB, "a whole number of MiB from 1 to 1048576 (default: measured, at least 400)", 1..=1_048_576)?;
    if let Some(n) = whole(ROLLOUT_HEARTBEAT, "a whole number of seconds from 1 to 600 (default 10)", 1..=600)? {
        s.rollout_heartbeat = Duration::from_secs(n);
    }
    if let Some(v) = lookup(LOCK_TIMEOUT) {
        parse_lock_timeout(&v).map_err(|m| bad(LOCK_TIMEOUT, &v, &format!("a duration like --lock-timeout ({m})")))?;
    }
    if let Some(v) = lookup(PROGRESS) {
        let modes = ["auto", "terminal", "plain", "github", "travis"];
        if !modes.contains(&v.as_str()) {
            return Err(bad(PROGRESS, &v, &format!("one of {} (like --progress)", modes.join(", "))));
        }
    }
    if let Some(v) = lookup(CONFIG).filter(|v| v.is_empty()) {
        return Err(bad(CONFIG, &v, "the path of the fleet file (like --config)"));
    }
    Ok(s)
}

/// Checks the process environment (once, at start, before the command line is
/// parsed: clap would name the flag, not the variable).
pub fn check() -> Result<(), Error> {
    let s = check_with(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))?;
    let _ = SETTINGS.set(s);
    Ok(())
}

/// The checked settings. Before `check` ran (the library's own tests), the
/// environment is read here, a bad value counting as unset.
pub(crate) fn settings() -> Settings {
    *SETTINGS.get_or_init(|| check_with(|k| std::env::var(k).ok()).unwrap_or_default())
}

/// `--lock-timeout` and `STAMP_LOCK_TIMEOUT`: whole seconds, at most 24h.
pub(crate) fn parse_lock_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e}); write one such as 30s, 10m or 1h"))?;
    if d.as_secs() > 24 * 3600 || d.subsec_nanos() != 0 {
        return Err(format!("`{s}`: give whole seconds, at most 24h (such as 30s, 10m or 1h)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_vars(vars: &[(&str, &str)]) -> Result<Settings, String> {
        check_with(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).map_err(|e| e.to_string())
    }

    #[test]
    fn unset_means_the_defaults_and_good_values_are_taken() {
        assert_eq!(check_vars(&[]).unwrap(), Settings::default());
        let s = check_vars(&[
            (KILL_GRACE, "3"),
            (RETRY_BASE_MS, " 10 "),
            (PLAN_JOBS, "2"),
            (LOCK_TIMEOUT, "5m"),
            (PROGRESS, "plain"),
            (TOOL_MEMORY_MIB, "512"),
            (ROLLOUT_HEARTBEAT, "2"),
        ])
        .unwrap();
        assert_eq!(
            s,
            Settings {
                kill_grace: Duration::from_secs(3),
                retry_base: Duration::from_millis(10),
                tool_memory_mib: Some(512),
                rollout_heartbeat: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_variable_and_what_it_accepts() {
        for (name, value, accepts) in [
            (KILL_GRACE, "soon", "whole number of seconds"),
            (KILL_GRACE, "0", "from 1 to 3600"),
            (KILL_GRACE, "", "is set but empty"),
            (RETRY_BASE_MS, "-1", "milliseconds"),
            (RETRY_BASE_MS, "1e3", "milliseconds"),
            (PLAN_JOBS, "0", "from 1 to 256"),
            (PLAN_JOBS, "many", "from 1 to 256"),
            (TOOL_MEMORY_MIB, "0", "MiB from 1 to 1048576"),
            (TOOL_MEMORY_MIB, "400M", "MiB from 1 to 1048576"),
            (LOCK_TIMEOUT, "forever", "a duration"),
            (PROGRESS, "fancy", "auto, terminal, plain, github, travis"),
            (CONFIG, "", "the path of the fleet file"),
            (ROLLOUT_HEARTBEAT, "0", "seconds from 1 to 600"),
        ] {
            let err = check_vars(&[(name, value)]).unwrap_err();
            assert!(err.contains(name) && err.contains(accepts), "{name}={value}: {err}");
        }
    }
}
