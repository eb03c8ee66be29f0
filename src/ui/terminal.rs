//! The terminal renderer (indicatif, on stderr). One customer: a spinner line per
//! stage, as stamp always showed. Several: a line per running customer (its stage,
//! resources done/total, elapsed), collapsed to one result line when it finishes,
//! and a total line (done/failed/total, elapsed, an estimate of the time left).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Event, EventKind, EventSink, Stage, Status, finished_line, format_elapsed, running_line};

/// One live line: its bar, label, the tool's current step, resource counts.
struct Line {
    bar: ProgressBar,
    label: String,
    message: String,
    progress: Option<(u64, u64)>,
}

impl Line {
    fn new(multi: &MultiProgress, label: String, before: Option<&ProgressBar>) -> Self {
        let bar = match before {
            Some(b) => multi.insert_before(b, ProgressBar::new_spinner()),
            None => multi.add(ProgressBar::new_spinner()),
        };
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed:>4}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let l = Self { bar, label, message: String::new(), progress: None };
        l.redraw();
        l
    }

    fn redraw(&self) {
        self.bar.set_message(running_line(&self.label, &self.message, self.progress));
    }

    fn finish(self, text: String) -> ProgressBar {
        self.bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
        self.bar.finish_with_message(text);
        self.bar
    }
}

/// Counts for the total line.
#[derive(Default)]
struct Totals {
    done: usize,
    failed: usize,
}

pub struct TerminalSink {
    multi: MultiProgress,
    /// Several customers: one line each; otherwise one line per stage.
    fleet: Option<usize>,
    lines: RefCell<BTreeMap<(String, Option<Stage>), Line>>,
    /// Finished lines stay owned here: a dropped bar would vanish at the next redraw.
    finished: RefCell<Vec<ProgressBar>>,
    total: Option<ProgressBar>,
    totals: RefCell<Totals>,
    started: Instant,
}

impl TerminalSink {
    /// `customers`: how many this run has (a fleet view from two on).
    pub fn new(customers: usize) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = (customers > 1).then(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
            bar
        });
        let s = Self {
            multi,
            fleet: (customers > 1).then_some(customers),
            lines: RefCell::new(BTreeMap::new()),
            finished: RefCell::new(Vec::new()),
            total,
            totals: RefCell::new(Totals::default()),
            started: Instant::now(),
        };
        s.redraw_total();
        // What stamp prints on an interrupt goes above the live lines (straight to
        // stderr while they are hidden for a prompt).
        let multi = s.multi.clone();
        crate::interrupt::set_printer(Some(Box::new(move |text| {
            if multi.is_hidden() || multi.println(text).is_err() {
                eprintln!("{text}");
            }
        })));
        s
    }

    fn redraw_total(&self) {
        if let (Some(bar), Some(n)) = (&self.total, self.fleet) {
            let t = self.totals.borrow();
            bar.set_message(total_line(t.done, t.failed, n, self.started.elapsed()));
        }
    }
}

/// The fleet's total line: customers done/failed/total, elapsed, time left.
pub fn total_line(done: usize, failed: usize, total: usize, elapsed: Duration) -> String {
    let mut s = format!("customers: {done}/{total} done, {failed} failed, elapsed {}", format_elapsed(elapsed));
    if done > 0 && done < total {
        let left = elapsed.mul_f64((total - done) as f64 / done as f64);
        s.push_str(&format!(", ~{} left", format_elapsed(Duration::from_secs(left.as_secs()))));
    }
    s
}

/// A finished customer's line in the fleet view.
pub fn customer_line(customer: &str, status: Status, elapsed: Duration) -> String {
    let mark = if status.succeeded() { "✔" } else { "✘" };
    format!("{mark} {customer:<24} {} in {}", status.word(), format_elapsed(elapsed))
}

impl EventSink for TerminalSink {
    fn emit(&self, e: Event) {
        let mut lines = self.lines.borrow_mut();
        match (self.fleet, e.stage, e.kind) {
            (_, _, EventKind::Note(m)) => {
                drop(lines);
                let _ = self.multi.println(m);
            }
            // ---- one customer: a line per stage
            (None, Some(stage), EventKind::StageStarted { label }) => {
                lines.insert((e.customer, Some(stage)), Line::new(&self.multi, label, None));
            }
            (None, Some(stage), EventKind::StageFinished { status, detail, elapsed }) => {
                if let Some(l) = lines.remove(&(e.customer, Some(stage))) {
                    let text = finished_line(&l.label, status, &detail, elapsed);
                    self.finished.borrow_mut().push(l.finish(text));
                }
            }
            (None, stage, EventKind::Step(m)) => {
                if let Some(l) = lines.get_mut(&(e.customer, stage)) {
                    l.message = m.chars().take(90).collect();
                    l.redraw();
                }
            }
            (None, stage, EventKind::Progress { done, total }) => {
                if let Some(l) = lines.get_mut(&(e.customer, stage)) {
                    l.progress = Some((done, total));
                    l.redraw();
                }
            }
            (None, _, _) => {}
            // ---- several customers: a line per customer
            (Some(_), _, EventKind::CustomerStarted { .. }) => {
                let label = e.customer.clone();
                lines.insert((e.customer, None), Line::new(&self.multi, label, self.total.as_ref()));
            }
            (Some(_), Some(stage), EventKind::StageStarted { .. }) => {
                if let Some(l) = lines.get_mut(&(e.customer.clone(), None)) {
                    l.label = format!("{:<16} {:<10}", e.customer, stage.as_str());
                    l.message.clear();
                    l.progress = None;
                    l.redraw();
                }
            }
            (Some(_), _, EventKind::Step(m)) => {
                if let Some(l) = lines.get_mut(&(e.customer, None)) {
                    l.message = m.chars().take(70).collect();
                    l.redraw();
                }
            }
            (Some(_), _, EventKind::Progress { done, total }) => {
                if let Some(l) = lines.get_mut(&(e.customer, None)) {
                    l.progress = Some((done, total));
                    l.redraw();
                }
            }
            (Some(_), _, EventKind::CustomerFinished { status, elapsed }) => {
                if let Some(l) = lines.remove(&(e.customer.clone(), None)) {
                    self.finished.borrow_mut().push(l.finish(customer_line(&e.customer, status, elapsed)));
                }
                let mut t = self.totals.borrow_mut();
                t.done += 1;
                if !status.succeeded() {
                    t.failed += 1;
                }
                drop(t);
                self.redraw_total();
            }
            (Some(_), _, _) => {}
        }
    }

    fn pause(&self) {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    fn resume(&self) {
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        crate::interrupt::set_printer(None);
        if let Some(bar) = &self.total {
            let t = self.totals.borrow();
            bar.finish_with_message(total_line(t.done, t.failed, self.fleet.unwrap_or(0), self.started.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_lines() {
        assert_eq!(total_line(0, 0, 4, Duration::from_secs(5)), "customers: 0/4 done, 0 failed, elapsed 5.0s");
        assert_eq!(total_line(1, 0, 4, Duration::from_secs(60)), "customers: 1/4 done, 0 failed, elapsed 1m00s, ~3m00s left");
        assert_eq!(customer_line("acme", Status::Ok, Duration::from_secs(75)), format!("✔ {:<24} done in 1m15s", "acme"));
        assert_eq!(customer_line("globex", Status::Failed, Duration::from_secs(3)), format!("✘ {:<24} FAILED in 3.0s", "globex"));
    }
}
