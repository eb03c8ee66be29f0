//! What the engine tells the binary: typed events, each naming its customer and
//! stage. The engine never prints; a renderer (terminal, plain lines) turns events
//! into text on stderr. Line texts are made by pure functions, tested without a
//! terminal.

use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a stage, a customer or a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Unchanged,
    Skipped,
    /// Done by an earlier run that did not finish, checked, and not run again (resume).
    Resumed,
    Failed,
    Interrupted,
    /// Never started: the run stopped before this customer's turn.
    NotStarted,
}

impl Status {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Status::Ok => "done",
            Status::Unchanged => "no changes",
            Status::Skipped => "skipped",
            Status::Resumed => "checked",
            Status::Failed => "FAILED",
            Status::Interrupted => "interrupted",
            Status::NotStarted => "not started",
        }
    }

    pub(crate) fn succeeded(self) -> bool {
        matches!(self, Status::Ok | Status::Unchanged | Status::Skipped | Status::Resumed)
    }
}

/// The stages of a customer's pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Bucket,
    Vpc,
    Ami,
    Frontends,
    /// After a deploy: the public URL answers.
    Smoke,
}

impl Stage {
    pub(crate) const ALL: [Stage; 5] = [Stage::Bucket, Stage::Vpc, Stage::Ami, Stage::Frontends, Stage::Smoke];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Bucket => "bucket",
            Stage::Vpc => "vpc",
            Stage::Ami => "ami",
            Stage::Frontends => "frontends",
            Stage::Smoke => "smoke",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A customer's pipeline began (env, region).
    CustomerStarted {
        env: String,
    },
    StageStarted {
        label: String,
    },
    /// The tool's current step ("terraform plan", "applying aws_lb.this", packer's "Creating AMI...").
    Step(String),
    /// Resources done / total while terraform applies.
    Progress {
        done: u64,
        total: u64,
    },
    StageFinished {
        status: Status,
        detail: String,
        elapsed: Duration,
    },
    /// A customer's pipeline ended.
    CustomerFinished {
        status: Status,
        elapsed: Duration,
    },
    /// A line for the human, outside any stage line.
    Note(String),
    /// A value that must never be shown (a sensitive output or input), announced
    /// before anything could print it: the GitHub Actions renderer masks it in the
    /// log (`::add-mask::`); every other renderer ignores it. No other event carries it.
    Secret(String),
    /// Why a stage (or, without a stage, the customer) failed: the error's full text
    /// (status, command, last lines of output) and the file to point an annotation at
    /// (the stack directory, the packer template, the customer file). Sent just before
    /// the stage's `StageFinished`.
    Failure {
        message: String,
        file: Option<std::path::PathBuf>,
    },
    /// A rollout's soak after a wave (the event's `customer` names the wave): its
    /// countdown, how many customers are still watched and how many failed. Sent
    /// every second or so; the last one has `left` zero.
    Soak {
        left: Duration,
        total: Duration,
        watching: usize,
        failed: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub customer: String,
    pub stage: Option<Stage>,
    pub kind: EventKind,
}

/// Where events go. Renderers live in `ui::terminal` and `ui::plain`.
pub trait EventSink {
    fn emit(&self, event: Event);
    /// Clears the live display (for a prompt)...
    fn pause(&self) {}
    /// ...and brings it back.
    fn resume(&self) {}
}

/// A sink that drops everything (render, validate).
pub(crate) struct Discard;

impl EventSink for Discard {
    fn emit(&self, _: Event) {}
}

/// What one customer's pipeline uses to emit: the sink with the customer filled in.
#[derive(Clone)]
pub(crate) struct Emitter {
    customer: String,
    sink: Rc<dyn EventSink>,
}

impl Emitter {
    pub(crate) fn new(customer: &str, sink: Rc<dyn EventSink>) -> Self {
        Self { customer: customer.to_owned(), sink }
    }

    pub(crate) fn emit(&self, stage: Option<Stage>, kind: EventKind) {
        self.sink.emit(Event { customer: self.customer.clone(), stage, kind });
    }

    pub(crate) fn stage_started(&self, stage: Stage, label: &str) {
        self.emit(Some(stage), EventKind::StageStarted { label: label.to_owned() });
    }

    pub(crate) fn step(&self, stage: Stage, message: &str) {
        self.emit(Some(stage), EventKind::Step(message.to_owned()));
    }

    pub(crate) fn progress(&self, stage: Stage, done: u64, total: u64) {
        self.emit(Some(stage), EventKind::Progress { done, total });
    }

    pub(crate) fn stage_finished(&self, stage: Stage, status: Status, detail: &str, elapsed: Duration) {
        self.emit(Some(stage), EventKind::StageFinished { status, detail: detail.to_owned(), elapsed });
    }

    pub(crate) fn note(&self, message: &str) {
        self.emit(None, EventKind::Note(message.to_owned()));
    }

    /// Announces a sensitive value (see `EventKind::Secret`); empty ones are skipped.
    pub(crate) fn secret(&self, stage: Stage, value: &str) {
        if !value.is_empty() {
            self.emit(Some(stage), EventKind::Secret(value.to_owned()));
        }
    }
}

/// The strings a sensitive value could be printed as: every leaf string and number
/// of a structured value (booleans and nulls are left alone: masking `true` would
/// hide every `true` in a log and protect nothing).
pub(crate) fn secret_leaves(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().flat_map(secret_leaves).collect(),
        Value::Object(m) => m.values().flat_map(secret_leaves).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// The text of a running stage line (after the spinner).
pub(crate) fn running_line(label: &str, message: &str, progress: Option<(u64, u64)>) -> String {
    let mut s = format!("{label:<26}");
    if let Some((done, total)) = progress {
        s.push_str(&format!(" [{done}/{total} resources]"));
    }
    if !message.is_empty() {
        s.push(' ');
        s.push_str(message);
    }
    s
}

/// The text of a finished stage line.
pub(crate) fn finished_line(label: &str, status: Status, detail: &str, elapsed: Duration) -> String {
    let mark = match status {
        Status::Ok | Status::Unchanged => "✔",
        Status::Skipped | Status::NotStarted => "-",
        Status::Resumed => "=",
        Status::Failed | Status::Interrupted => "✘",
    };
    let mut s = format!("{mark} {label:<26} {} in {}", status.word(), format_elapsed(elapsed));
    if !detail.is_empty() {
        s.push_str(&format!(" ({detail})"));
    }
    s
}

/// The text of a soak's line: "soak 4m10s left of 10m00s: 5 customers watched, 1 failed".
pub fn soak_line(left: Duration, total: Duration, watching: usize, failed: usize) -> String {
    let whole = |d: Duration| format_elapsed(Duration::from_secs(d.as_secs_f64().ceil() as u64));
    let head =
        if left.is_zero() { format!("soak of {} over", whole(total)) } else { format!("soak {} left of {}", whole(left), whole(total)) };
    let plural = if watching == 1 { "" } else { "s" };
    format!("{head}: {watching} customer{plural} watched, {failed} failed")
}

/// A plain, timestamped line for logs without a terminal.
pub(crate) fn plain_line(now: std::time::SystemTime, stage: &str, text: &str) -> String {
    format!("[{}] {stage}: {text}", humantime::format_rfc3339_seconds(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(running_line("vpc", "applying", Some((3, 7))), format!("{:<26} [3/7 resources] applying", "vpc"));
        assert_eq!(running_line("packer", "", None), format!("{:<26}", "packer"));
        assert_eq!(finished_line("vpc", Status::Unchanged, "", Duration::from_millis(2500)), format!("✔ {:<26} no changes in 2.5s", "vpc"));
        assert_eq!(
            finished_line("frontends", Status::Failed, "exit status 1", Duration::from_secs(75)),
            format!("✘ {:<26} FAILED in 1m15s (exit status 1)", "frontends")
        );
        assert_eq!(
            soak_line(Duration::from_millis(249_300), Duration::from_secs(600), 5, 1),
            "soak 4m10s left of 10m00s: 5 customers watched, 1 failed"
        );
        assert_eq!(soak_line(Duration::ZERO, Duration::from_secs(30), 1, 0), "soak of 30.0s over: 1 customer watched, 0 failed");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(plain_line(t, "acme vpc", "started"), "[2023-11-14T22:13:20Z] acme vpc: started");
    }

    #[test]
    fn secret_leaves_are_every_string_and_number() {
        let v = serde_json::json!({"user": "admin", "pass": "s3cr3t", "port": 5432, "tls": true, "hosts": ["a.example", ""], "none": null});
        let mut got = secret_leaves(&v);
        got.sort();
        assert_eq!(got, ["5432", "a.example", "admin", "s3cr3t"]);
        assert_eq!(secret_leaves(&serde_json::json!("line1\nline2")), ["line1\nline2"]);
    }

    #[test]
    fn stages_serialize_as_their_names() {
        assert_eq!(serde_json::to_string(&Stage::Frontends).unwrap(), "\"frontends\"");
        assert_eq!(serde_json::to_string(&Status::NotStarted).unwrap(), "\"not_started\"");
    }
}
