//! The rollout record: one JSON object in S3 that a rollout lives in, so that it
//! outlives the process that started it. It holds what is rolled out (the
//! release: each customer's commit and the fleet repository's), the waves, each
//! customer's outcome, the budget, the state, who started it and which process
//! holds it now. Pure here: the decisions (may this process take it, what is next,
//! what a resume redoes); `rollout_store` reads and writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The record's own format; a newer one is refused rather than half read.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Deploying, soaking, or between two CI jobs (`--waves N`).
    Running,
    /// Stopped by `--pause` at a safe point; `--resume` continues it.
    Paused,
    /// Stopped by `--cancel`; archived, never resumed.
    Cancelled,
    /// More failures than the budget; `--resume --retry-failed`, `--rollback` or `--cancel`.
    Halted,
    /// Every wave deployed and soaked; archived.
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Cancelled => "cancelled",
            State::Halted => "halted",
            State::Done => "done",
        }
    }

    /// Cancelled and done rollouts are over: archived, and no longer the fleet's current one.
    pub fn is_over(self) -> bool {
        matches!(self, State::Cancelled | State::Done)
    }
}

/// Where a customer of the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not started yet (or started by a process that died before it finished).
    Pending,
    /// Started by the holder.
    Deploying,
    /// Deployed (changed or not).
    Succeeded,
    /// Its deploy failed, or the soak found it unhealthy: counts against the budget.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Deploying => "deploying",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }

    pub fn failed(self) -> bool {
        self == Outcome::Failed
    }
}

/// Who started the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// `GITHUB_ACTOR`, else the user name.
    pub name: String,
    pub host: String,
    /// The CI run's page, when there is one.
    pub ci_url: Option<String>,
}

impl Actor {
    pub fn describe(&self) -> String {
        match &self.ci_url {
            Some(u) => format!("{} on {} ({u})", self.name, self.host),
            None => format!("{} on {}", self.name, self.host),
        }
    }
}

/// The process that holds the record: it alone deploys the rollout's customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Unique to this holding (a pid is reused).
    pub token: String,
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds of the last renewal.
    pub heartbeat: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub name: String,
    /// The app commit rolled out to it (what its git_id named when the rollout started).
    pub commit: Option<String>,
    pub wave: usize,
    pub outcome: Outcome,
    /// Deploys started for it by this rollout.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// Deployed back to its previous release since (`on_failure = "rollback"`, `--rollback`).
    #[serde(default)]
    pub rolled_back: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub customers: Vec<String>,
    /// Deployed and soaked: done for good.
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    pub state: State,
    /// Why the state is what it is (who paused it, what halted it).
    pub reason: Option<String>,
    pub started_at: u64,
    pub updated_at: u64,
    pub started_by: Actor,
    /// The fleet repository's commit (`git rev-parse HEAD` where stamp.toml is), if it is one.
    pub fleet_commit: Option<String>,
    /// How many failures the rollout tolerates (`[rollout] max_failures` of the selection).
    pub budget: usize,
    pub soak_secs: u64,
    pub waves: Vec<Wave>,
    pub customers: Vec<Customer>,
    pub holder: Option<Holder>,
}

/// What `--resume` (or a new rollout) finds in the holder's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Nobody holds it.
    Free,
    /// Another process holds it and is alive (as far as can be told).
    Live(String),
    /// The holder is gone: why it may be taken over.
    Stale(String),
}

impl Record {
    pub fn customer(&self, name: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.name == name)
    }

    pub fn customer_mut(&mut self, name: &str) -> Option<&mut Customer> {
        self.customers.iter_mut().find(|c| c.name == name)
    }

    pub fn failed(&self) -> Vec<&str> {
        self.customers.iter().filter(|c| c.outcome.failed()).map(|c| c.name.as_str()).collect()
    }

    pub fn budget_left(&self) -> usize {
        self.budget.saturating_sub(self.failed().len())
    }

    /// More failures than the budget.
    pub fn over_budget(&self) -> bool {
        self.failed().len() > self.budget
    }

    /// The first wave not done yet.
    pub fn next_wave(&self) -> Option<usize> {
        self.waves.iter().position(|w| !w.done)
    }

    /// The customers of wave `w` a deploy must still run: pending ones and those a
    /// dead holder left deploying; failed ones only when `retry_failed`.
    pub fn to_deploy(&self, w: usize, retry_failed: bool) -> Vec<String> {
        self.waves[w]
            .customers
            .iter()
            .filter(|n| match self.customer(n).map(|c| c.outcome) {
                Some(Outcome::Pending | Outcome::Deploying) => true,
                Some(Outcome::Failed) => retry_failed,
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// The customers the rollout deployed and did not roll back yet, in run order:
    /// what `--rollback` takes back (the done waves' and those the last wave finished).
    pub fn deployed(&self) -> Vec<String> {
        self.customers.iter().filter(|c| c.outcome == Outcome::Succeeded && !c.rolled_back).map(|c| c.name.clone()).collect()
    }

    /// Whether a process may hold the record now: `alive(pid)` tells whether a pid
    /// of this `host` still runs; a heartbeat older than `stale_after` seconds is a
    /// dead holder's anywhere.
    pub fn hold(&self, now: u64, stale_after: u64, host: &str, alive: impl Fn(u32) -> bool) -> Hold {
        let Some(h) = &self.holder else { return Hold::Free };
        let age = now.saturating_sub(h.heartbeat);
        let who = format!("pid {} on {}, heartbeat {age}s ago", h.pid, h.host);
        if h.host == host && !alive(h.pid) {
            return Hold::Stale(format!("{who}: that process is gone"));
        }
        if age > stale_after {
            return Hold::Stale(format!("{who}: older than {stale_after}s"));
        }
        Hold::Live(who)
    }

    /// What a person reads about it: id, state, who started it, since when.
    pub fn describe(&self) -> String {
        format!(
            "rollout {} ({}, started by {} at {})",
            self.id,
            self.state.as_str(),
            self.started_by.describe(),
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.started_at))
        )
    }

    /// Counts of the customers' outcomes.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.customers {
            *m.entry(c.outcome.as_str()).or_insert(0) += 1;
        }
        m
    }

    /// The next wave's customers that still need a deploy, as a GitHub Actions matrix.
    pub fn matrix(&self, retry_failed: bool) -> serde_json::Value {
        let include: Vec<serde_json::Value> = match self.next_wave() {
            Some(w) if !self.state.is_over() => {
                self.to_deploy(w, retry_failed).into_iter().map(|c| serde_json::json!({ "customer": c, "wave": w + 1 })).collect()
            }
            _ => Vec::new(),
        };
        serde_json::json!({ "include": include })
    }
}

/// Holder is this process (by its token), or the change is refused.
pub fn check_holder(r: &Record, token: &str) -> Result<(), Error> {
    match &r.holder {
        Some(h) if h.token == token => Ok(()),
        Some(h) => Err(Error::stage(format!("rollout {} was taken over by pid {} on {}", r.id, h.pid, h.host))),
        None => Err(Error::stage(format!("rollout {} was released meanwhile", r.id))),
    }
}

/// A rollout id: sortable by time, unique enough for one fleet (`r-YYYYMMDDTHHMMSSZ-xxxx`).
pub fn new_id(now: std::time::SystemTime, salt: u32) -> String {
    let t = humantime::format_rfc3339_seconds(now).to_string().replace(['-', ':'], "");
    format!("r-{t}-{:04x}", salt & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcomes: &[(&str, usize, Outcome)], budget: usize) -> Record {
        let n_waves = outcomes.iter().map(|o| o.1).max().unwrap_or(0) + 1;
        Record {
            version: RECORD_VERSION,
            id: "r-1".into(),
            state: State::Running,
            reason: None,
            started_at: 0,
            updated_at: 0,
            started_by: Actor::default(),
            fleet_commit: None,
            budget,
            soak_secs: 0,
            waves: (0..n_waves)
                .map(|w| Wave { customers: outcomes.iter().filter(|o| o.1 == w).map(|o| o.0.to_owned()).collect(), done: false })
                .collect(),
            customers: outcomes
                .iter()
                .map(|(n, w, o)| Customer {
                    name: (*n).into(),
                    commit: None,
                    wave: *w,
                    outcome: *o,
                    attempts: 0,
                    error: None,
                    rolled_back: false,
                })
                .collect(),
            holder: None,
        }
    }

    #[test]
    fn the_budget_is_spent_by_failures_rolled_back_or_not() {
        let mut r = record(&[("a", 0, Outcome::Succeeded), ("b", 1, Outcome::Failed), ("c", 1, Outcome::Pending)], 1);
        assert_eq!(r.budget_left(), 0);
        assert!(!r.over_budget(), "one failure of one tolerated: not exceeded");
        r.customer_mut("b").unwrap().rolled_back = true;
        assert!(!r.over_budget());
        r.customer_mut("c").unwrap().outcome = Outcome::Failed;
        assert!(r.over_budget());
        assert_eq!(r.failed(), ["b", "c"]);
    }

    #[test]
    fn a_resume_redeploys_what_did_not_finish_and_failed_ones_only_when_asked() {
        let mut r = record(
            &[
                ("a", 0, Outcome::Succeeded),
                ("b", 1, Outcome::Succeeded),
                ("c", 1, Outcome::Deploying),
                ("d", 1, Outcome::Failed),
                ("e", 1, Outcome::Pending),
            ],
            5,
        );
        r.waves[0].done = true;
        assert_eq!(r.next_wave(), Some(1));
        assert_eq!(r.to_deploy(1, false), ["c", "e"]);
        assert_eq!(r.to_deploy(1, true), ["c", "d", "e"]);
        assert_eq!(r.deployed(), ["a", "b"]);
        assert_eq!(r.matrix(false), serde_json::json!({"include": [{"customer": "c", "wave": 2}, {"customer": "e", "wave": 2}]}));
        r.state = State::Cancelled;
        assert_eq!(r.matrix(false), serde_json::json!({"include": []}));
    }

    #[test]
    fn a_holder_is_stale_when_its_heartbeat_is_old_or_its_process_is_gone_here() {
        let mut r = record(&[("a", 0, Outcome::Pending)], 0);
        assert_eq!(r.hold(100, 60, "here", |_| true), Hold::Free);
        r.holder = Some(Holder { host: "here".into(), pid: 7, token: "t".into(), since: 0, heartbeat: 90 });
        assert!(matches!(r.hold(100, 60, "here", |_| true), Hold::Live(w) if w.contains("pid 7 on here")));
        assert!(matches!(r.hold(100, 60, "here", |_| false), Hold::Stale(w) if w.contains("gone")));
        // Another host's pid says nothing here: only the heartbeat counts.
        assert!(matches!(r.hold(100, 60, "there", |_| false), Hold::Live(_)));
        assert!(matches!(r.hold(200, 60, "there", |_| true), Hold::Stale(w) if w.contains("older than 60s")));
    }

    #[test]
    fn ids_sort_by_time_and_the_record_reads_back() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let id = new_id(t, 0x1abcd);
        assert_eq!(id, "r-20270115T080000Z-abcd");
        let r = record(&[("a", 0, Outcome::Failed)], 0);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"outcome\":\"failed\"") && text.contains("\"state\":\"running\""), "{text}");
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }
}
