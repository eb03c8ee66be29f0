//! The plain renderer: timestamped lines on stderr for CI logs and `--no-progress`.
//! Every line is written whole, with its customer, so two customers' text never
//! shares a line.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;

use crate::events::{Event, EventKind, EventSink, format_elapsed, plain_line};

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
}
