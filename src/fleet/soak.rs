//! The soak after a rollout's wave: for `[rollout] soak`, the wave's customers (those
//! whose deploy succeeded) are watched. At the start, every `every` (a few seconds)
//! and once at the end, each one still watched is checked: the smoke test's GET of
//! its public URL (one attempt, `stages::smoke`'s client and timeout) and its
//! CloudWatch alarms (`[rollout] alarms` with `{{customer}}` replaced, read through
//! the SDK, one DescribeAlarms per region and check). A customer whose URL does not
//! answer 2xx or 3xx, whose alarm is in ALARM, or whose alarm does not exist fails,
//! with the reason, and is not checked again. A soak of 0 checks once.
//!
//! The countdown goes to the event sink (`EventKind::Soak`, the wave as its
//! customer); each failure is a note. An AWS error that outlasts the retries (the
//! alarms could not be read) ends the soak with an error: the wave was not checked,
//! which is not the same as a customer that failed.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::events::{Emitter, EventKind, EventSink};
use crate::stages::smoke::{self, Answer};
use crate::tools::process::StageLog;
use crate::tools::s3::{AwsApi, missing_error, missing_names};

/// How often a soak checks its customers.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// How often the countdown moves between checks.
const TICK: Duration = Duration::from_secs(1);

/// One customer to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakTarget {
    pub customer: String,
    pub region: String,
    /// The URL the smoke test GETs (`public_url` + `[smoke] path`); `None` when the
    /// customer's smoke test is off or its deploy gave no `public_url`.
    pub url: Option<String>,
    /// Its alarms' names (`[rollout] alarms`, `{{customer}}` replaced).
    pub alarms: Vec<String>,
}

/// A customer the soak failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakFailure {
    pub customer: String,
    pub reason: String,
}

/// The offsets from the soak's start at which it checks: 0, every `every`, and the
/// end (once, even when it falls on a multiple). A soak of 0 checks once.
pub fn check_times(duration: Duration, every: Duration) -> Vec<Duration> {
    let mut at = vec![Duration::ZERO];
    if every.is_zero() {
        if !duration.is_zero() {
            at.push(duration);
        }
        return at;
    }
    let mut t = every;
    while t < duration {
        at.push(t);
        t += every;
    }
    if !duration.is_zero() {
        at.push(duration);
    }
    at
}

/// Why a customer fails this check, if it does: its alarms in ALARM or missing, and
/// a smoke answer that is not 2xx or 3xx. `states` holds what DescribeAlarms gave
/// for its region (name -> (state, reason)).
pub(crate) fn verdict(
    target: &SoakTarget,
    states: &BTreeMap<String, (String, String)>,
    answer: Option<&Answer>,
    missing_text: impl Fn(&[String]) -> String,
) -> Option<String> {
    let mut why = Vec::new();
    let found: Vec<crate::tools::s3::AlarmState> = target
        .alarms
        .iter()
        .filter_map(|n| states.get(n).map(|(s, r)| crate::tools::s3::AlarmState { name: n.clone(), state: s.clone(), reason: r.clone() }))
        .collect();
    let missing = missing_names(&target.alarms, &found);
    if !missing.is_empty() {
        why.push(missing_text(&missing));
    }
    for a in found.iter().filter(|a| a.in_alarm()) {
        let reason = if a.reason.is_empty() { String::new() } else { format!(": {}", a.reason) };
        why.push(format!("alarm `{}` is in ALARM{reason}", a.name));
    }
    if let (Some(url), Some(answer)) = (&target.url, answer)
        && !answer.answering()
    {
        why.push(format!("smoke test: GET {url} -> {answer}"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// A soak's settings besides its customers.
pub struct Soak<'a> {
    pub api: &'a AwsApi,
    /// Every check and every AWS call, with the time.
    pub log: &'a mut StageLog,
    pub sink: Rc<dyn EventSink>,
    /// The name the countdown and the notes go under ("wave 2/4").
    pub label: String,
    pub duration: Duration,
    pub every: Duration,
}

impl Soak<'_> {
    /// Watches `targets` for the soak's duration; returns the customers that failed,
    /// in the order they failed.
    pub async fn run(self, targets: &[SoakTarget]) -> Result<Vec<SoakFailure>, Error> {
        let Soak { api, log, sink, label, duration, every } = self;
        let ui = Emitter::new(&label, sink);
        let started = Instant::now();
        let mut failed: Vec<SoakFailure> = Vec::new();
        let mut interrupts = crate::signals::subscribe();
        let agent = smoke::agent();
        let countdown = |failed: usize, elapsed: Duration| {
            let left = duration.saturating_sub(elapsed);
            ui.emit(None, EventKind::Soak { left, total: duration, watching: targets.len() - failed, failed });
        };
        log.note(&format!(
            "[{}] {label}: soak of {} over {} customer(s), a check every {}",
            now(),
            humantime::format_duration(duration),
            targets.len(),
            humantime::format_duration(every)
        ));
        for at in check_times(duration, every) {
            // Until the check is due: the countdown every second, an interrupt at once.
            loop {
                let elapsed = started.elapsed();
                if elapsed >= at {
                    break;
                }
                countdown(failed.len(), elapsed);
                tokio::select! {
                    _ = tokio::time::sleep((at - elapsed).min(TICK)) => {}
                    _ = crate::signals::next(&mut interrupts) => return Err(Error::Interrupted(Some(format!("{label}'s soak")))),
                }
            }
            if crate::signals::interrupted() {
                return Err(Error::Interrupted(Some(format!("{label}'s soak"))));
            }
            let watched: Vec<&SoakTarget> = targets.iter().filter(|t| !failed.iter().any(|f| f.customer == t.customer)).collect();
            if watched.is_empty() {
                break;
            }
            for f in check(api, log, &agent, &watched).await? {
                log.note(&format!("[{}] {label}: {} fails the soak: {}", now(), f.customer, f.reason));
                ui.note(&format!("{}: failed the soak of {label}: {}", f.customer, f.reason));
                failed.push(f);
            }
            countdown(failed.len(), started.elapsed().min(at));
        }
        countdown(failed.len(), duration);
        log.note(&format!("[{}] {label}: soak over, {} of {} customer(s) failed", now(), failed.len(), targets.len()));
        Ok(failed)
    }
}

/// One check of `watched`: every GET started first (each on its own thread), the
/// alarms read region by region meanwhile, then the answers.
async fn check(api: &AwsApi, log: &mut StageLog, agent: &ureq::Agent, watched: &[&SoakTarget]) -> Result<Vec<SoakFailure>, Error> {
    let probes: Vec<_> = watched.iter().map(|t| t.url.as_ref().map(|u| smoke::start_probe(agent, u, smoke::ATTEMPT_TIMEOUT))).collect();
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in watched {
        let list = names.entry(t.region.as_str()).or_default();
        list.extend(t.alarms.iter().filter(|a| !list.contains(a)).cloned().collect::<Vec<_>>());
    }
    let mut states: BTreeMap<&str, BTreeMap<String, (String, String)>> = BTreeMap::new();
    for (region, list) in names.iter().filter(|(_, l)| !l.is_empty()) {
        let got = api.alarm_states(log, region, list).await.map_err(|e| {
            Error::stage_hint(
                format!("the soak could not read the CloudWatch alarms in {region}: {e}"),
                "the wave's customers were not checked; the rollout stops here and `stamp rollout --resume` checks them again",
            )
        })?;
        states.insert(region, got.into_iter().map(|a| (a.name, (a.state, a.reason))).collect());
    }
    let mut out = Vec::new();
    for (t, probe) in watched.iter().zip(probes) {
        let answer = match probe {
            Some(p) => Some(p.await),
            None => None,
        };
        if let (Some(u), Some(a)) = (&t.url, &answer) {
            log.note(&format!("[{}] {}: GET {u} -> {a}", now(), t.customer));
        }
        let empty = BTreeMap::new();
        let region_states = states.get(t.region.as_str()).unwrap_or(&empty);
        let missing_text = |m: &[String]| missing_error(m, &t.region).to_string();
        if let Some(reason) = verdict(t, region_states, answer.as_ref(), missing_text) {
            out.push(SoakFailure { customer: t.customer.clone(), reason });
        }
    }
    Ok(out)
}

fn now() -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn checks_at_the_start_every_few_seconds_and_once_at_the_end() {
        let d = Duration::from_secs;
        assert_eq!(check_times(d(0), d(10)), secs(&[0]), "a soak of 0 checks once");
        assert_eq!(check_times(d(25), d(10)), secs(&[0, 10, 20, 25]));
        assert_eq!(check_times(d(20), d(10)), secs(&[0, 10, 20]), "the end once, even on a multiple");
        assert_eq!(check_times(d(5), d(10)), secs(&[0, 5]));
        assert_eq!(check_times(d(5), d(0)), secs(&[0, 5]));
    }

    fn target(alarms: &[&str], url: Option<&str>) -> SoakTarget {
        SoakTarget {
            customer: "acme".into(),
            region: "eu-west-1".into(),
            url: url.map(String::from),
            alarms: alarms.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn states(v: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
        v.iter().map(|(n, s, r)| (n.to_string(), (s.to_string(), r.to_string()))).collect()
    }

    #[test]
    fn a_customer_fails_on_an_alarm_in_alarm_a_missing_alarm_or_a_smoke_answer_that_is_not_2xx_or_3xx() {
        let missing = |m: &[String]| format!("missing {}", m.join(","));
        let t = target(&["acme-5xx", "acme-latency"], Some("http://lb/health"));
        let ok = states(&[("acme-5xx", "OK", ""), ("acme-latency", "INSUFFICIENT_DATA", "")]);
        assert_eq!(verdict(&t, &ok, Some(&Answer::Http(200)), missing), None);
        assert_eq!(verdict(&t, &ok, Some(&Answer::Http(302)), missing), None, "a redirect is an answer");
        let firing = states(&[("acme-5xx", "ALARM", "Threshold Crossed: 3 datapoints"), ("acme-latency", "OK", "")]);
        assert_eq!(
            verdict(&t, &firing, Some(&Answer::Http(200)), missing).as_deref(),
            Some("alarm `acme-5xx` is in ALARM: Threshold Crossed: 3 datapoints")
        );
        assert_eq!(verdict(&t, &states(&[("acme-5xx", "OK", "")]), None, missing).as_deref(), Some("missing acme-latency"));
        assert_eq!(
            verdict(&t, &firing, Some(&Answer::Http(503)), missing).as_deref(),
            Some("alarm `acme-5xx` is in ALARM: Threshold Crossed: 3 datapoints; smoke test: GET http://lb/health -> HTTP 503")
        );
        // No URL to check (smoke off): the alarms only; no alarms: the URL only.
        assert_eq!(verdict(&target(&[], None), &BTreeMap::new(), None, missing), None);
        let refused = Answer::NoAnswer("connection refused".into());
        assert_eq!(
            verdict(&target(&[], Some("http://lb/")), &BTreeMap::new(), Some(&refused), missing).as_deref(),
            Some("smoke test: GET http://lb/ -> connection refused")
        );
    }
}
