//! A rollout's summary for people (the waves, each customer's outcome, the budget
//! left, the state and why) and its `--json` body (the record, the next wave as a
//! GitHub Actions matrix). Pure: tested without a run.

use serde_json::{Value, json};

use crate::fleet::rollout_record::{Outcome, Record};

/// The summary printed on stdout after a rollout command.
pub fn summary_text(r: &Record) -> String {
    let mut out = format!("{}\n", r.describe());
    if let Some(why) = &r.reason {
        out.push_str(&format!("  {}: {why}\n", r.state.as_str()));
    }
    for (i, w) in r.waves.iter().enumerate() {
        let mark = if w.done {
            "done"
        } else if r.next_wave() == Some(i) {
            "next"
        } else {
            ""
        };
        out.push_str(&format!("  wave {}/{} {:<5} ", i + 1, r.waves.len(), mark));
        let parts: Vec<String> = w
            .customers
            .iter()
            .map(|n| match r.customer(n).map(|c| (c.outcome, c.rolled_back)) {
                Some((Outcome::Succeeded, false)) | None => n.clone(),
                Some((Outcome::Succeeded, true)) => format!("{n} (rolled back)"),
                Some((o, false)) => format!("{n} ({})", o.as_str()),
                Some((o, true)) => format!("{n} ({}, rolled back)", o.as_str()),
            })
            .collect();
        out.push_str(&parts.join(", "));
        out.push('\n');
    }
    let counts = r.counts();
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    out.push_str(&format!(
        "{} customers: {} succeeded, {} failed, {} to deploy, {} rolled back; budget {} ({} left)\n",
        r.customers.len(),
        n("succeeded"),
        n("failed"),
        n("pending") + n("deploying"),
        r.customers.iter().filter(|c| c.rolled_back).count(),
        r.budget,
        r.budget_left()
    ));
    for c in r.customers.iter().filter(|c| c.outcome.failed()) {
        if let Some(e) = &c.error {
            out.push_str(&format!("  {}: {}\n", c.name, e.lines().next().unwrap_or("")));
        }
    }
    out
}

/// The `--json` body of `stamp rollout` (kind "rollout").
pub fn json_body(r: &Record, retry_failed: bool) -> Value {
    let counts = r.counts();
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let customers: Vec<Value> = r
        .customers
        .iter()
        .map(|c| {
            json!({
                "customer": c.name,
                "wave": c.wave + 1,
                "outcome": c.outcome.as_str(),
                "commit": c.commit,
                "attempts": c.attempts,
                "error": c.error,
                "rolled_back": c.rolled_back,
            })
        })
        .collect();
    json!({
        "rollout": {
            "id": r.id,
            "state": r.state.as_str(),
            "reason": r.reason,
            "started_at": r.started_at,
            "started_by": { "name": r.started_by.name, "host": r.started_by.host, "ci_url": r.started_by.ci_url },
            "fleet_commit": r.fleet_commit,
            "budget": r.budget,
            "budget_left": r.budget_left(),
            "soak_secs": r.soak_secs,
            "waves": r.waves.iter().map(|w| json!({ "customers": w.customers, "done": w.done })).collect::<Vec<_>>(),
            "holder": r.holder.as_ref().map(|h| json!({ "host": h.host, "pid": h.pid, "since": h.since, "heartbeat": h.heartbeat })),
        },
        "next_wave": if r.state.is_over() { None } else { r.next_wave().map(|w| w + 1) },
        "matrix": r.matrix(retry_failed),
        "customers": customers,
        "summary": {
            "total": r.customers.len(),
            "succeeded": n("succeeded"),
            "failed": n("failed"),
            "rolled_back": r.customers.iter().filter(|c| c.rolled_back).count(),
            "pending": n("pending") + n("deploying"),
            "state": r.state.as_str(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::rollout_record::{Actor, Customer, RECORD_VERSION, State, Wave};

    fn record() -> Record {
        let c = |n: &str, wave, outcome| Customer {
            name: n.into(),
            commit: Some("abc".into()),
            wave,
            outcome,
            attempts: 1,
            error: None,
            rolled_back: false,
        };
        Record {
            version: RECORD_VERSION,
            id: "r-x".into(),
            state: State::Halted,
            reason: Some("1 failure(s) exceed the budget of 0: b".into()),
            started_at: 0,
            updated_at: 0,
            started_by: Actor { name: "ci".into(), host: "h".into(), ci_url: None },
            fleet_commit: None,
            budget: 0,
            soak_secs: 3,
            waves: vec![Wave { customers: vec!["a".into()], done: true }, Wave { customers: vec!["b".into(), "c".into()], done: false }],
            customers: vec![
                c("a", 0, Outcome::Succeeded),
                Customer { error: Some("stage frontends failed".into()), rolled_back: true, ..c("b", 1, Outcome::Failed) },
                c("c", 1, Outcome::Pending),
            ],
            holder: None,
        }
    }

    #[test]
    fn the_summary_shows_the_waves_the_outcomes_and_the_budget() {
        let t = summary_text(&record());
        assert!(t.contains("rollout r-x (halted, started by ci on h at 1970-01-01T00:00:00Z)"), "{t}");
        assert!(t.contains("wave 1/2 done  a\n"), "{t}");
        assert!(t.contains("wave 2/2 next  b (failed, rolled back), c (pending)"), "{t}");
        assert!(t.contains("3 customers: 1 succeeded, 1 failed, 1 to deploy, 1 rolled back; budget 0 (0 left)"), "{t}");
        assert!(t.contains("  b: stage frontends failed"), "{t}");
    }

    #[test]
    fn the_json_gives_the_next_wave_as_a_matrix() {
        let v = json_body(&record(), false);
        assert_eq!(v["next_wave"], 2);
        assert_eq!(v["matrix"], json!({"include": [{"customer": "c", "wave": 2}]}));
        assert_eq!(json_body(&record(), true)["matrix"]["include"].as_array().unwrap().len(), 2);
        assert_eq!(v["summary"]["failed"], 1);
        assert_eq!(v["rollout"]["state"], "halted");
    }
}
