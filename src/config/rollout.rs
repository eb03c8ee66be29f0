//! `[rollout]`: how `stamp rollout` goes through a selection of customers: waves of
//! growing size, a soak time between them watching the smoke test and CloudWatch
//! alarms, a failure budget, what to do with a customer that fails, how many
//! releases keep their images, and where the rollout record lives.

use std::path::Path;
use std::time::Duration;

use super::raw::RawRollout;
use crate::error::ConfigError;

/// A count or a percentage of the selection (`"3"`, `3`, `"25%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(usize),
    /// In (0, 100].
    Percent(f64),
}

impl Amount {
    /// `"3"`, `3`, `"25%"`, `"2.5%"`; a percentage in (0, 100], a count from `min`.
    pub fn parse(v: &toml::Value, min: usize) -> Result<Amount, String> {
        let bad = |what: String| format!("{what}; expected a count such as \"2\" or a percentage such as \"5%\"");
        match v {
            toml::Value::Integer(n) if *n >= min as i64 => Ok(Amount::Count(*n as usize)),
            toml::Value::Integer(n) => Err(bad(format!("{n} is less than {min}"))),
            toml::Value::String(s) => {
                let t = s.trim();
                if let Some(p) = t.strip_suffix('%') {
                    let p: f64 = p.trim().parse().map_err(|_| bad(format!("`{s}` is not a percentage")))?;
                    if !(p > 0.0 && p <= 100.0) {
                        return Err(bad(format!("`{s}` is out of range (0%, 100%]")));
                    }
                    Ok(Amount::Percent(p))
                } else {
                    let n: usize = t.parse().map_err(|_| bad(format!("`{s}` is neither a count nor a percentage")))?;
                    if n < min {
                        return Err(bad(format!("{n} is less than {min}")));
                    }
                    Ok(Amount::Count(n))
                }
            }
            other => Err(bad(format!("found {} `{other}`", other.type_str()))),
        }
    }

    /// How many of `total`: a percentage rounds up (5% of 20 is 1, of 21 is 2),
    /// never more than `total`.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n.min(total),
            Amount::Percent(p) => (((total as f64) * p / 100.0 - 1e-9).ceil().max(0.0) as usize).min(total),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What happens to a customer that fails after its frontends applied (the smoke
/// test, or an alarm during the soak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// It counts against the budget and stays as it is.
    Halt,
    /// It counts against the budget and is rolled back to its previous release.
    Rollback,
}

/// `[rollout]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSettings {
    /// Cumulative sizes: after wave i, `waves[i].of(selection)` customers are done.
    /// Non-decreasing; the last is 100% of the selection.
    pub waves: Vec<Amount>,
    pub soak: Duration,
    /// The error budget: the largest of these amounts of the selection (`"2"`,
    /// `"5%"`, or `["2", "5%"]`: the larger of a count and a percentage);
    /// `budget(total)` gives the number.
    pub max_failures: Vec<Amount>,
    pub on_failure: OnFailure,
    /// Images stay while a release among a customer's last N refers to them.
    pub keep_releases: usize,
    /// Alarm names; `{{customer}}` is replaced by each customer's name.
    pub alarms: Vec<String>,
    /// The bucket template of the rollout record (`{{account_id}}`, `{{region}}`).
    pub bucket: String,
}

pub const DEFAULT_ROLLOUT_BUCKET: &str = "stamp-rollouts-{{account_id}}-{{region}}";
const MAX_SOAK: Duration = Duration::from_secs(24 * 3600);

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            waves: vec![Amount::Count(1), Amount::Percent(25.0), Amount::Percent(100.0)],
            soak: Duration::from_secs(300),
            max_failures: vec![Amount::Count(0)],
            on_failure: OnFailure::Halt,
            keep_releases: 3,
            alarms: Vec::new(),
            bucket: DEFAULT_ROLLOUT_BUCKET.into(),
        }
    }
}

impl RolloutSettings {
    /// The number of failures a rollout of `total` customers tolerates.
    pub fn budget(&self, total: usize) -> usize {
        self.max_failures.iter().map(|a| a.of(total)).max().unwrap_or(0)
    }

    /// `{{customer}}` in each alarm name replaced: the alarms that watch `customer`.
    pub fn alarms_for(&self, customer: &str) -> Vec<String> {
        self.alarms.iter().map(|a| a.replace("{{customer}}", customer)).collect()
    }
}

/// Renders the rollout bucket template; `Err` says why it cannot be a bucket.
pub fn render_rollout_bucket(template: &str, account_id: &str, region: &str) -> Result<crate::names::BucketName, String> {
    if template.contains("{{customer}}") {
        return Err(format!("`{template}` uses {{{{customer}}}}: the rollout record is the fleet's, one bucket for every customer"));
    }
    let name = template.replace("{{account_id}}", account_id).replace("{{region}}", region);
    if let Some(at) = name.find("{{") {
        let rest = &name[at..];
        let end = rest.find("}}").map(|e| e + 2).unwrap_or(rest.len());
        return Err(format!("`{}` is not a placeholder; it may use {{{{account_id}}}} and {{{{region}}}}", &rest[..end]));
    }
    crate::names::BucketName::parse(&name).map_err(|m| format!("renders to {m}"))
}

pub(super) fn resolve_rollout(raw: &RawRollout, file: &Path, text: &str) -> Result<RolloutSettings, ConfigError> {
    let mut s = RolloutSettings::default();
    if let Some(w) = &raw.waves {
        let at = |m: String| ConfigError::at(file, text, w.span(), format!("[rollout] waves: {m}"));
        let list = w.get_ref();
        if list.is_empty() {
            return Err(at("the list is empty; write the waves' sizes, such as [\"1\", \"25%\", \"100%\"]".into()));
        }
        let waves = list.iter().map(|v| Amount::parse(v, 1)).collect::<Result<Vec<_>, _>>().map_err(at)?;
        if waves.last() != Some(&Amount::Percent(100.0)) {
            return Err(at(format!(
                "the last wave is {}, not \"100%\": the sizes are cumulative, and the last one must take the whole selection",
                waves.last().expect("not empty")
            )));
        }
        // Cumulative: a count after a percentage cannot be compared without the
        // selection, so only like with like is checked here (the rollout checks the rest).
        for pair in waves.windows(2) {
            let shrinks = match pair {
                [Amount::Count(a), Amount::Count(b)] => b < a,
                [Amount::Percent(a), Amount::Percent(b)] => b < a,
                _ => false,
            };
            if shrinks {
                return Err(at(format!("{} comes after {}: the sizes are cumulative and may not shrink", pair[1], pair[0])));
            }
        }
        s.waves = waves;
    }
    if let Some(v) = &raw.soak {
        s.soak = match v.get_ref() {
            toml::Value::String(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                ConfigError::at(
                    file,
                    text,
                    v.span(),
                    format!("[rollout] soak: `{t}` is not a duration ({e}); expected such as \"10m\", \"30s\" or 0"),
                )
            })?,
            toml::Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
            other => {
                return Err(ConfigError::at(
                    file,
                    text,
                    v.span(),
                    format!(
                        "[rollout] soak: expected a duration such as \"10m\" or a number of seconds; found {} `{other}`",
                        other.type_str()
                    ),
                ));
            }
        };
        if s.soak > MAX_SOAK {
            return Err(ConfigError::at(file, text, v.span(), "[rollout] soak: longer than 24h".into()));
        }
    }
    if let Some(v) = &raw.max_failures {
        let at = |m: String| ConfigError::at(file, text, v.span(), format!("[rollout] max_failures: {m}"));
        s.max_failures = match v.get_ref() {
            toml::Value::Array(list) if list.is_empty() => {
                return Err(at(
                    "the list is empty; write a count, a percentage, or both such as [\"2\", \"5%\"] (the larger counts)".into()
                ));
            }
            toml::Value::Array(list) => list.iter().map(|x| Amount::parse(x, 0)).collect::<Result<_, _>>().map_err(at)?,
            one => vec![Amount::parse(one, 0).map_err(at)?],
        };
    }
    if let Some(v) = &raw.on_failure {
        s.on_failure = match v.get_ref().as_str() {
            "halt" => OnFailure::Halt,
            "rollback" => OnFailure::Rollback,
            other => {
                return Err(ConfigError::at(
                    file,
                    text,
                    v.span(),
                    format!("[rollout] on_failure: `{other}` is not one of \"halt\", \"rollback\""),
                ));
            }
        };
    }
    if let Some(v) = &raw.keep_releases {
        let n = *v.get_ref();
        if !(1..=1000).contains(&n) {
            return Err(ConfigError::at(file, text, v.span(), format!("[rollout] keep_releases: {n} is out of range: from 1 to 1000")));
        }
        s.keep_releases = n as usize;
    }
    if let Some(v) = &raw.alarms {
        for a in v.get_ref() {
            let bare = a.replace("{{customer}}", "x");
            if bare.is_empty() || bare.len() > 255 || bare.contains("{{") || bare.chars().any(|c| c.is_control()) {
                return Err(ConfigError::at(
                    file,
                    text,
                    v.span(),
                    format!(
                        "[rollout] alarms: `{a}` is not an alarm name: 1 to 255 characters, no control characters, and no placeholder but {{{{customer}}}}"
                    ),
                ));
            }
        }
        s.alarms = v.get_ref().clone();
    }
    if let Some(v) = &raw.bucket {
        render_rollout_bucket(v.get_ref(), "123456789012", "eu-west-1")
            .map_err(|m| ConfigError::at(file, text, v.span(), format!("[rollout] bucket: {m}")))?;
        s.bucket = v.get_ref().clone();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<RolloutSettings, String> {
        let raw: super::super::raw::RawFleetFile = toml::from_str(t).map_err(|e| e.to_string())?;
        resolve_rollout(&raw.rollout, Path::new("/x/stamp.toml"), t).map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_are_counts_or_percentages_rounded_up() {
        let a = |s: &str| Amount::parse(&toml::Value::String(s.into()), 1).unwrap();
        assert_eq!(a("3"), Amount::Count(3));
        assert_eq!(a("25%").of(20), 5);
        assert_eq!(a("5%").of(20), 1);
        assert_eq!(a("5%").of(21), 2);
        assert_eq!(a("100%").of(7), 7);
        assert_eq!(a("30").of(7), 7);
        assert_eq!(Amount::parse(&toml::Value::Integer(0), 0).unwrap().of(9), 0);
        assert!(Amount::parse(&toml::Value::String("0".into()), 1).is_err());
        assert!(Amount::parse(&toml::Value::String("120%".into()), 1).is_err());
        assert!(Amount::parse(&toml::Value::String("half".into()), 1).unwrap_err().contains("\"5%\""));
    }

    #[test]
    fn defaults_and_a_full_section() {
        let d = parse("").unwrap();
        assert_eq!(d, RolloutSettings::default());
        let s = parse(
            "[rollout]\nwaves = [\"1\", \"5%\", 3, \"100%\"]\nsoak = \"10m\"\nmax_failures = \"5%\"\non_failure = \"rollback\"\nkeep_releases = 5\nalarms = [\"{{customer}}-5xx\", \"fleet\"]\nbucket = \"rollouts-{{account_id}}\"\n",
        )
        .unwrap();
        assert_eq!(s.waves.len(), 4);
        assert_eq!(s.soak, Duration::from_secs(600));
        assert_eq!(s.budget(100), 5);
        // The larger of a count and a percentage.
        let both = parse("[rollout]\nmax_failures = [\"2\", \"5%\"]\n").unwrap();
        assert_eq!((both.budget(10), both.budget(100)), (2, 5));
        assert!(parse("[rollout]\nmax_failures = []\n").unwrap_err().contains("the larger counts"));
        assert_eq!(s.on_failure, OnFailure::Rollback);
        assert_eq!(s.alarms_for("acme"), ["acme-5xx", "fleet"]);
        assert_eq!(parse("[rollout]\nsoak = 0\n").unwrap().soak, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_the_key_the_line_and_what_is_accepted() {
        let e = parse("[rollout]\nwaves = [\"1\", \"50%\"]\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("[rollout] waves") && e.contains("\"100%\""), "{e}");
        let e = parse("[rollout]\nwaves = [\"50%\", \"10%\", \"100%\"]\n").unwrap_err();
        assert!(e.contains("may not shrink"), "{e}");
        let e = parse("[rollout]\nmax_failures = \"lots\"\n").unwrap_err();
        assert!(e.contains("[rollout] max_failures") && e.contains("percentage"), "{e}");
        let e = parse("[rollout]\non_failure = \"retry\"\n").unwrap_err();
        assert!(e.contains("\"halt\", \"rollback\""), "{e}");
        let e = parse("[rollout]\nsoak = \"a while\"\n").unwrap_err();
        assert!(e.contains("[rollout] soak"), "{e}");
        let e = parse("[rollout]\nkeep_releases = 0\n").unwrap_err();
        assert!(e.contains("from 1 to 1000"), "{e}");
        let e = parse("[rollout]\nbucket = \"r-{{customer}}\"\n").unwrap_err();
        assert!(e.contains("one bucket for every customer"), "{e}");
        let e = parse("[rollout]\nbucket = \"r-{{acount_id}}\"\n").unwrap_err();
        assert!(e.contains("{{acount_id}}") && e.contains("{{account_id}}"), "{e}");
        let e = parse("[rollout]\nalarms = [\"{{env}}-x\"]\n").unwrap_err();
        assert!(e.contains("[rollout] alarms"), "{e}");
        let e = parse("[rollout]\nwave = [\"1\"]\n").unwrap_err();
        assert!(e.contains("wave"), "{e}");
    }
}
