//! `[app]` and `[smoke]`: the application's settings and the smoke test, resolved
//! from the fleet file and the customer's.

use super::checks::*;
use super::raw::*;
use crate::error::{ConfigError, line_of};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone)]
pub(crate) struct AppSettings {
    pub dir: String,
    pub server_name: String,
    pub puma_workers: u32,
    pub puma_threads: u32,
}

/// `[smoke]`, resolved: the customer's keys over the fleet's over the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmokeSettings {
    pub enabled: bool,
    /// Appended to `public_url`; starts with `/`.
    pub path: String,
    /// How long the smoke stage waits for a 2xx or 3xx answer.
    pub timeout: Duration,
    /// Where `enabled = false` was set ("file:line"), for the skipped stage's reason.
    pub disabled_at: Option<String>,
}

pub(crate) const DEFAULT_SMOKE_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) const MAX_SMOKE_TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) fn resolve_app(
    file: &Path,
    text: &str,
    own: &RawApp,
    fleet: &RawApp,
    fleet_file: &Path,
    fleet_text: &str,
) -> Result<AppSettings, ConfigError> {
    let count = |own: &Option<Spanned<i64>>, theirs: &Option<Spanned<i64>>, key: &str, default: u32| -> Result<u32, ConfigError> {
        let (v, f, t) = match (own, theirs) {
            (Some(v), _) => (v, file, text),
            (None, Some(v)) => (v, fleet_file, fleet_text),
            (None, None) => return Ok(default),
        };
        u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| ConfigError::at(f, t, v.span(), format!("[app] {key} = {}: expected a whole number from 1 to 64", v.get_ref())))
    };
    // A string key: the customer's value, else the fleet's, checked where it was written.
    let string = |own: &Option<Spanned<String>>,
                  theirs: &Option<Spanned<String>>,
                  key: &str,
                  default: &str,
                  check: fn(&str) -> Result<String, String>,
                  hint: &str|
     -> Result<String, ConfigError> {
        let (v, f, t) = match (own, theirs) {
            (Some(v), _) => (v, file, text),
            (None, Some(v)) => (v, fleet_file, fleet_text),
            (None, None) => return Ok(default.to_owned()),
        };
        check(v.get_ref()).map_err(|m| ConfigError::at(f, t, v.span(), format!("[app] {key}: {m}")).hint(hint))
    };
    Ok(AppSettings {
        dir: string(
            &own.dir,
            &fleet.dir,
            "dir",
            "/srv/app",
            check_app_dir,
            "it is written into the app's nginx, puma (Ruby) and YAML configuration as it is: only safe characters are accepted",
        )?,
        server_name: string(
            &own.server_name,
            &fleet.server_name,
            "server_name",
            "_",
            check_server_name,
            "it becomes nginx's `server_name` directive as it is: host names only",
        )?,
        puma_workers: count(&own.puma_workers, &fleet.puma_workers, "puma_workers", 2)?,
        puma_threads: count(&own.puma_threads, &fleet.puma_threads, "puma_threads", 5)?,
    })
}

/// `[smoke]`: each key from the customer file, else the fleet file, else the default.
pub(super) fn resolve_smoke(
    own: &RawSmoke,
    file: &Path,
    text: &str,
    fleet: &RawSmoke,
    fleet_file: &Path,
    fleet_text: &str,
) -> Result<SmokeSettings, ConfigError> {
    // The value and the file (and text) it was read from.
    fn pick<'a, T>(
        own: &'a Option<Spanned<T>>,
        file: &'a Path,
        text: &'a str,
        theirs: &'a Option<Spanned<T>>,
        fleet_file: &'a Path,
        fleet_text: &'a str,
    ) -> Option<(&'a Spanned<T>, &'a Path, &'a str)> {
        match (own, theirs) {
            (Some(v), _) => Some((v, file, text)),
            (None, Some(v)) => Some((v, fleet_file, fleet_text)),
            (None, None) => None,
        }
    }
    let mut s = SmokeSettings { enabled: true, path: "/".into(), timeout: DEFAULT_SMOKE_TIMEOUT, disabled_at: None };
    if let Some((v, f, t)) = pick(&own.enabled, file, text, &fleet.enabled, fleet_file, fleet_text) {
        s.enabled = *v.get_ref();
        if !s.enabled {
            s.disabled_at = Some(format!("{}:{}", f.display(), line_of(t, v.span().start)));
        }
    }
    if let Some((v, f, t)) = pick(&own.path, file, text, &fleet.path, fleet_file, fleet_text) {
        s.path = check_smoke_path(v.get_ref()).map_err(|m| ConfigError::at(f, t, v.span(), format!("[smoke] path: {m}")))?;
    }
    if let Some((v, f, t)) = pick(&own.timeout, file, text, &fleet.timeout, fleet_file, fleet_text) {
        s.timeout = parse_smoke_timeout(v.get_ref()).map_err(|m| ConfigError::at(f, t, v.span(), format!("[smoke] timeout: {m}")))?;
    }
    Ok(s)
}

/// A path on the public URL: starts with `/`, no spaces, no `#` fragment.
pub(crate) fn check_smoke_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must start with `/`, such as \"/\" or \"/health\""));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#') {
        return Err(format!("`{p}` holds a space, a control character or `#`; write it URL-encoded, such as \"/a%20b\""));
    }
    Ok(p.to_owned())
}

/// `"5m"`, `"90s"`, `"1m 30s"` (humantime) or a whole number of seconds; from 1s to 1h.
pub(crate) fn parse_smoke_timeout(v: &toml::Value) -> Result<Duration, String> {
    let d = match v {
        toml::Value::String(s) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("`{s}` is not a duration ({e}); expected something like \"5m\", \"90s\" or a number of seconds"))?,
        toml::Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
        other => {
            return Err(format!(
                "expected a duration such as \"5m\" or \"90s\", or a number of seconds; found {} `{other}`",
                other.type_str()
            ));
        }
    };
    if d < Duration::from_secs(1) || d > MAX_SMOKE_TIMEOUT {
        return Err(format!("{} is out of range: from 1s to 1h", humantime::format_duration(d)));
    }
    Ok(d)
}
