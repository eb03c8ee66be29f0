//! Progress reporting. The engine talks to a `Reporter`; only the terminal
//! implementation touches indicatif (one spinner line per stage), the plain one
//! prints timestamped lines for CI logs. The strings are made by pure functions so
//! they are tested without a terminal. Everything here goes to stderr.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Unchanged,
    Skipped,
    Failed,
    Interrupted,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "done",
            Status::Unchanged => "no changes",
            Status::Skipped => "skipped",
            Status::Failed => "FAILED",
            Status::Interrupted => "interrupted",
        }
    }
}

pub trait Reporter {
    fn stage_started(&self, stage: &str, label: &str);
    /// The tool's current step (packer's "Creating AMI...", terraform's phase).
    fn stage_message(&self, stage: &str, message: &str);
    /// Resources done / total while terraform applies.
    fn stage_progress(&self, stage: &str, done: u64, total: u64);
    fn stage_finished(&self, stage: &str, status: Status, detail: &str, elapsed: Duration);
    /// A line for the human, outside any stage line.
    fn info(&self, message: &str);
    /// Clears and stops the progress display (for a confirmation prompt)...
    fn pause(&self);
    /// ...and brings it back.
    fn resume(&self);
}

pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// The text of a running stage line (after the spinner).
pub fn running_line(label: &str, message: &str, progress: Option<(u64, u64)>) -> String {
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
pub fn finished_line(label: &str, status: Status, detail: &str, elapsed: Duration) -> String {
    let mark = match status {
        Status::Ok | Status::Unchanged => "✔",
        Status::Skipped => "-",
        Status::Failed | Status::Interrupted => "✘",
    };
    let mut s = format!("{mark} {label:<26} {} in {}", status.word(), format_elapsed(elapsed));
    if !detail.is_empty() {
        s.push_str(&format!(" ({detail})"));
    }
    s
}

/// A plain, timestamped line for logs without a terminal.
pub fn plain_line(now: std::time::SystemTime, stage: &str, text: &str) -> String {
    format!("[{}] {stage}: {text}", humantime::format_rfc3339_seconds(now))
}

/// One stage's line: the bar, its label, the tool's current step, resource counts.
struct StageLine {
    bar: ProgressBar,
    label: String,
    message: String,
    progress: Option<(u64, u64)>,
}

/// Terminal reporter: one spinner per stage, elapsed time, resource counts.
pub struct TerminalReporter {
    multi: MultiProgress,
    bars: RefCell<BTreeMap<String, StageLine>>,
    /// Finished lines stay owned here: a dropped bar would vanish at the next redraw
    /// (for instance after a confirmation prompt).
    finished: RefCell<Vec<ProgressBar>>,
}

impl TerminalReporter {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: RefCell::new(BTreeMap::new()),
            finished: RefCell::new(Vec::new()),
        }
    }

    fn redraw(&self, stage: &str) {
        if let Some(l) = self.bars.borrow().get(stage) {
            l.bar.set_message(running_line(&l.label, &l.message, l.progress));
        }
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn stage_started(&self, stage: &str, label: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed:>4}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.borrow_mut().insert(stage.to_owned(), StageLine { bar, label: label.to_owned(), message: String::new(), progress: None });
        self.redraw(stage);
    }

    fn stage_message(&self, stage: &str, message: &str) {
        if let Some(e) = self.bars.borrow_mut().get_mut(stage) {
            e.message = message.chars().take(90).collect();
        }
        self.redraw(stage);
    }

    fn stage_progress(&self, stage: &str, done: u64, total: u64) {
        if let Some(e) = self.bars.borrow_mut().get_mut(stage) {
            e.progress = Some((done, total));
        }
        self.redraw(stage);
    }

    fn stage_finished(&self, stage: &str, status: Status, detail: &str, elapsed: Duration) {
        if let Some(l) = self.bars.borrow_mut().remove(stage) {
            l.bar.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
            l.bar.finish_with_message(finished_line(&l.label, status, detail, elapsed));
            self.finished.borrow_mut().push(l.bar);
        }
    }

    fn info(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    fn pause(&self) {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    fn resume(&self) {
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
    }
}

/// Plain reporter: timestamped lines, for CI and `--no-progress`.
pub struct PlainReporter {
    prefix: String,
    last_message: RefCell<BTreeMap<String, String>>,
}

impl PlainReporter {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), last_message: RefCell::new(BTreeMap::new()) }
    }

    fn emit(&self, stage: &str, text: &str) {
        let stage = if self.prefix.is_empty() { stage.to_owned() } else { format!("{} {stage}", self.prefix) };
        eprintln!("{}", plain_line(std::time::SystemTime::now(), &stage, text));
    }
}

impl Reporter for PlainReporter {
    fn stage_started(&self, stage: &str, label: &str) {
        self.emit(stage, &format!("started: {label}"));
    }

    fn stage_message(&self, stage: &str, message: &str) {
        // The same step twice in a row is noise in a CI log.
        let mut last = self.last_message.borrow_mut();
        if last.get(stage).map(String::as_str) != Some(message) {
            last.insert(stage.to_owned(), message.to_owned());
            drop(last);
            self.emit(stage, message);
        }
    }

    fn stage_progress(&self, stage: &str, done: u64, total: u64) {
        self.emit(stage, &format!("{done}/{total} resources"));
    }

    fn stage_finished(&self, stage: &str, status: Status, detail: &str, elapsed: Duration) {
        let mut s = format!("{} in {}", status.word(), format_elapsed(elapsed));
        if !detail.is_empty() {
            s.push_str(&format!(" ({detail})"));
        }
        self.emit(stage, &s);
    }

    fn info(&self, message: &str) {
        eprintln!("{message}");
    }

    fn pause(&self) {}

    fn resume(&self) {}
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
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(plain_line(t, "acme vpc", "started"), "[2023-11-14T22:13:20Z] acme vpc: started");
    }
}
