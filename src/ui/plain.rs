//! The plain renderer: timestamped lines on stderr for CI logs and `--no-progress`.
//! Every line is written whole, with its customer, so two customers' text never
//! shares a line.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;

use crate::events::{Event, EventKind, EventSink, format_elapsed, plain_line, soak_line};

#[derive(Default)]
pub(crate) struct PlainSink {
    last_step: RefCell<BTreeMap<(String, String), String>>,
}

impl PlainSink {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

/// The line an event prints, if any (`last` holds the previous step, to skip repeats).
pub(crate) fn event_text(e: &Event, last: &mut BTreeMap<(String, String), String>) -> Option<String> {
    let stage = e.stage.map(|s| s.as_str()).unwrap_or("run");
    let text = match &e.kind {
        EventKind::CustomerStarted { env } => format!("started ({env})"),
        EventKind::StageStarted { label } => format!("started: {label}"),
        EventKind::Step(m) => {
            // The same step twice in a row is noise in a CI log.
            let key = (e.customer.clone(), stage.to_owned());
            if last.get(&key) == Some(m) {
                return None;
            }
            last.insert(key, m.clone());
            m.clone()
        }
        EventKind::Progress { done, total } => format!("{done}/{total} resources"),
        EventKind::StageFinished { status, detail, elapsed } => {
            let mut s = format!("{} in {}", status.word(), format_elapsed(*elapsed));
            if !detail.is_empty() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        EventKind::CustomerFinished { status, elapsed } => format!("{} in {}", status.word(), format_elapsed(*elapsed)),
        EventKind::Note(m) => return Some(m.clone()),
        EventKind::Soak { left, total, watching, failed } => {
            // A line at the start, every 30 seconds, on a failure and at the end:
            // not one a second in a CI log.
            let key = (e.customer.clone(), "soak".to_owned());
            let mark = if left.is_zero() { "end".to_owned() } else { format!("{}/{failed}", left.as_secs().div_ceil(30)) };
            if last.get(&key) == Some(&mark) {
                return None;
            }
            last.insert(key, mark);
            return Some(plain_line(std::time::SystemTime::now(), &e.customer, &soak_line(*left, *total, *watching, *failed)));
        }
        // Never printed. A failure's text is printed once, when the run ends.
        EventKind::Secret(_) | EventKind::Failure { .. } => return None,
    };
    Some(plain_line(std::time::SystemTime::now(), &format!("{} {stage}", e.customer), &text))
}

impl EventSink for PlainSink {
    fn emit(&self, e: Event) {
        if let Some(line) = event_text(&e, &mut self.last_step.borrow_mut()) {
            // One write per line: whole lines, even with several customers.
            let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Stage, Status};

    #[test]
    fn every_line_names_its_customer_and_repeats_are_skipped() {
        let mut last = BTreeMap::new();
        let ev = |kind| Event { customer: "acme".into(), stage: Some(Stage::Vpc), kind };
        let a = event_text(&ev(EventKind::Step("terraform plan".into())), &mut last).unwrap();
        assert!(a.ends_with("] acme vpc: terraform plan"), "{a}");
        assert_eq!(event_text(&ev(EventKind::Step("terraform plan".into())), &mut last), None);
        let f = event_text(
            &ev(EventKind::StageFinished { status: Status::Ok, detail: "1 added".into(), elapsed: std::time::Duration::from_secs(2) }),
            &mut last,
        )
        .unwrap();
        assert!(f.ends_with("acme vpc: done in 2.0s (1 added)"), "{f}");
    }

    #[test]
    fn a_soak_prints_at_its_start_every_30_seconds_on_a_failure_and_at_its_end() {
        use std::time::Duration;
        let mut last = BTreeMap::new();
        let soak = |left: u64, failed| Event {
            customer: "wave 2/3".into(),
            stage: None,
            kind: EventKind::Soak { left: Duration::from_secs(left), total: Duration::from_secs(90), watching: 4 - failed, failed },
        };
        let printed: Vec<u64> = [(90, 0), (89, 0), (61, 0), (60, 0), (59, 1), (58, 1), (30, 1), (1, 1), (0, 1)]
            .into_iter()
            .filter(|&(left, failed)| event_text(&soak(left, failed), &mut last).is_some())
            .map(|(left, _)| left)
            .collect();
        assert_eq!(printed, [90, 60, 59, 30, 0]);
        let mut last = BTreeMap::new();
        let line = event_text(&soak(0, 1), &mut last).unwrap();
        assert!(line.ends_with("] wave 2/3: soak of 1m30s over: 3 customers watched, 1 failed"), "{line}");
    }
}
