//! The terminal renderer (indicatif, on stderr). One customer: a spinner line per
//! stage, as stamp always showed. Several: a line per running customer (its stage,
//! resources done/total, elapsed), collapsed to one result line when it finishes,
//! and a total line (done/failed/total, elapsed, an estimate of the time left).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::events::{Event, EventKind, EventSink, Stage, Status, finished_line, format_elapsed, running_line, soak_line};

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

/// Counts for the total line, shared with its bar's style: the bar draws itself on
/// its own tick, so its elapsed time and estimate move between events.
#[derive(Default)]
struct Totals {
    done: AtomicUsize,
    failed: AtomicUsize,
}

impl Totals {
    fn line(&self, total: usize, elapsed: Duration) -> String {
        total_line(self.done.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed), total, elapsed)
    }
}

pub(crate) struct TerminalSink {
    multi: MultiProgress,
    /// Several customers: one line each; otherwise one line per stage.
    fleet: Option<usize>,
    lines: RefCell<BTreeMap<(String, Option<Stage>), Line>>,
    /// Finished lines stay owned here: a dropped bar would vanish at the next redraw.
    finished: RefCell<Vec<ProgressBar>>,
    total: Option<ProgressBar>,
    totals: Arc<Totals>,
    /// Where the lines are drawn (stderr; a recorder in tests), made anew on `resume`.
    target: Box<dyn Fn() -> ProgressDrawTarget>,
}

impl TerminalSink {
    /// `customers`: how many this run has (a fleet view from two on).
    pub(crate) fn new(customers: usize) -> Self {
        Self::with_target(customers, Box::new(ProgressDrawTarget::stderr))
    }

    /// Drawing to `target` instead of stderr: a test records the rendered lines.
    pub(crate) fn with_target(customers: usize, target: Box<dyn Fn() -> ProgressDrawTarget>) -> Self {
        let multi = MultiProgress::with_draw_target(target());
        let totals = Arc::new(Totals::default());
        let started = Instant::now();
        let total = (customers > 1).then(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            let t = totals.clone();
            let style = ProgressStyle::with_template("{total}").expect("static template").with_key(
                "total",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&t.line(customers, started.elapsed()));
                },
            );
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.tick();
            bar
        });
        let s = Self {
            multi,
            fleet: (customers > 1).then_some(customers),
            lines: RefCell::new(BTreeMap::new()),
            finished: RefCell::new(Vec::new()),
            total,
            totals,
            target,
        };
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
}

/// The fleet's total line: customers done/failed/total, elapsed, time left.
pub(crate) fn total_line(done: usize, failed: usize, total: usize, elapsed: Duration) -> String {
    let mut s = format!("customers: {done}/{total} done, {failed} failed, elapsed {}", format_elapsed(elapsed));
    if done > 0 && done < total {
        let left = elapsed.mul_f64((total - done) as f64 / done as f64);
        s.push_str(&format!(", ~{} left", format_elapsed(Duration::from_secs(left.as_secs()))));
    }
    s
}

/// A finished customer's line in the fleet view.
pub(crate) fn customer_line(customer: &str, status: Status, elapsed: Duration) -> String {
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
            // A soak (either view): one line for the wave, its countdown, then its result.
            (_, _, EventKind::Soak { left, total, watching, failed }) => {
                let key = (e.customer.clone(), None);
                if left.is_zero() {
                    let line = lines.remove(&key).unwrap_or_else(|| Line::new(&self.multi, e.customer.clone(), self.total.as_ref()));
                    let mark = if failed == 0 { "✔" } else { "✘" };
                    let text = format!("{mark} {} {}", e.customer, soak_line(left, total, watching, failed));
                    self.finished.borrow_mut().push(line.finish(text));
                } else {
                    let line = lines.entry(key).or_insert_with(|| Line::new(&self.multi, e.customer.clone(), self.total.as_ref()));
                    line.message = soak_line(left, total, watching, failed);
                    line.redraw();
                }
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
                if !status.succeeded() {
                    self.totals.failed.fetch_add(1, Ordering::Relaxed);
                }
                self.totals.done.fetch_add(1, Ordering::Relaxed);
                if let Some(bar) = &self.total {
                    bar.tick();
                }
            }
            (Some(_), _, _) => {}
        }
    }

    fn pause(&self) {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    fn resume(&self) {
        self.multi.set_draw_target((self.target)());
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        crate::interrupt::set_printer(None);
        if let Some(bar) = &self.total {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A terminal that keeps every line drawn on it, in order.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.0.lock().unwrap().push(s.to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
        /// The total lines drawn so far.
        fn totals(&self) -> Vec<String> {
            self.lines().into_iter().filter(|l| l.starts_with("customers: ")).collect()
        }
        /// Waits (20 s at most: a loaded machine draws late, but draws) for a line
        /// drawn that `wanted` accepts.
        fn wait_for(&self, wanted: impl Fn(&str) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !self.lines().iter().any(|l| wanted(l)) {
                assert!(Instant::now() < deadline, "never drawn; the lines drawn: {:#?}", self.lines());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        fn wait_for_total(&self, start: &str) {
            self.wait_for(|l| l.starts_with(start));
        }
    }

    fn sink(customers: usize) -> (TerminalSink, Recorder) {
        let rec = Recorder::default();
        let r = rec.clone();
        (TerminalSink::with_target(customers, Box::new(move || ProgressDrawTarget::term_like_with_hz(Box::new(r.clone()), 20))), rec)
    }

    fn event(customer: &str, stage: Option<Stage>, kind: EventKind) -> Event {
        Event { customer: customer.to_owned(), stage, kind }
    }

    #[test]
    fn the_fleets_total_line_advances_as_customers_finish() {
        let (sink, rec) = sink(2);
        sink.pause();
        sink.resume();
        for c in ["acme", "globex"] {
            sink.emit(event(c, None, EventKind::CustomerStarted { env: "production".into() }));
            sink.emit(event(c, Some(Stage::Vpc), EventKind::StageStarted { label: "vpc stack".into() }));
        }
        sink.emit(event("acme", Some(Stage::Vpc), EventKind::Progress { done: 3, total: 23 }));
        assert!(rec.totals().iter().all(|l| l.starts_with("customers: 0/2 done, 0 failed")), "{:#?}", rec.totals());

        sink.emit(event("acme", None, EventKind::CustomerFinished { status: Status::Ok, elapsed: Duration::from_secs(61) }));
        rec.wait_for_total("customers: 1/2 done, 0 failed");
        // globex is still running, and its line still moves.
        sink.emit(event("globex", Some(Stage::Vpc), EventKind::Step("applying aws_vpc.this".into())));
        rec.wait_for(|l| l.contains("globex") && l.contains("applying aws_vpc.this"));

        sink.emit(event("globex", None, EventKind::CustomerFinished { status: Status::Failed, elapsed: Duration::from_secs(62) }));
        rec.wait_for_total("customers: 2/2 done, 1 failed");
        drop(sink);
        let shown = rec.totals();
        assert!(shown.last().is_some_and(|l| l.starts_with("customers: 2/2 done, 1 failed")), "the final total: {shown:#?}");
    }

    /// The elapsed time on the total line moves by itself, between events.
    #[test]
    fn the_fleets_total_line_counts_the_time_between_events() {
        let (sink, rec) = sink(3);
        sink.emit(event("acme", None, EventKind::CustomerStarted { env: "production".into() }));
        rec.wait_for(|l| l.starts_with("customers: 0/3 done, 0 failed, elapsed ") && !l.ends_with("elapsed 0.0s"));
        drop(sink);
    }

    #[test]
    fn fleet_lines() {
        assert_eq!(total_line(0, 0, 4, Duration::from_secs(5)), "customers: 0/4 done, 0 failed, elapsed 5.0s");
        assert_eq!(total_line(1, 0, 4, Duration::from_secs(60)), "customers: 1/4 done, 0 failed, elapsed 1m00s, ~3m00s left");
        assert_eq!(customer_line("acme", Status::Ok, Duration::from_secs(75)), format!("✔ {:<24} done in 1m15s", "acme"));
        assert_eq!(customer_line("globex", Status::Failed, Duration::from_secs(3)), format!("✘ {:<24} FAILED in 3.0s", "globex"));
    }

    #[test]
    fn a_soak_shows_its_countdown_then_its_result() {
        let (sink, rec) = sink(4);
        let soak = |left: u64, failed| EventKind::Soak {
            left: Duration::from_secs(left),
            total: Duration::from_secs(60),
            watching: 4 - failed,
            failed,
        };
        sink.emit(event("wave 2/3", None, soak(42, 0)));
        rec.wait_for(|l| l.contains("wave 2/3") && l.contains("soak 42.0s left of 1m00s: 4 customers watched, 0 failed"));
        sink.emit(event("wave 2/3", None, soak(12, 1)));
        rec.wait_for(|l| l.contains("soak 12.0s left of 1m00s: 3 customers watched, 1 failed"));
        sink.emit(event("wave 2/3", None, soak(0, 1)));
        rec.wait_for(|l| l.starts_with("✘ wave 2/3 soak of 1m00s over: 3 customers watched, 1 failed"));
        drop(sink);
    }
}
