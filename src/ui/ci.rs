//! CI renderers. Under GitHub Actions each customer's stage is one `::group::`
//! block; under Travis one `travis_fold`. A stage's lines are held until it ends and
//! then printed whole, so two customers running side by side never interleave.
//! Which renderer a run uses, and the CI environment, are read in `ci_env`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::ci_env::{Renderer, get};
use super::github::{self, Location};
use super::plain;
use crate::events::{Event, EventKind, EventSink, Stage, Status, finished_line, format_elapsed, plain_line};

/// The sink for a run: the renderer, and under GitHub Actions with another renderer,
/// still the masks and failure annotations.
pub(crate) fn sink_for(renderer: Renderer, other: impl FnOnce(Renderer) -> Rc<dyn EventSink>) -> Rc<dyn EventSink> {
    let ci = get();
    let workspace = ci.env.workspace.clone();
    let grouped = |flavor| -> Rc<dyn EventSink> {
        let sink = Rc::new(CiSink::new(flavor, Box::new(std::io::stderr()), workspace.clone()));
        keep_alive(Rc::downgrade(&sink));
        sink
    };
    match renderer {
        Renderer::Github => grouped(Flavor::Github),
        Renderer::Travis if !ci.github() => grouped(Flavor::Travis),
        Renderer::Travis => Rc::new(GithubExtras { inner: grouped(Flavor::Travis), workspace }),
        r if ci.github() => Rc::new(GithubExtras { inner: other(r), workspace }),
        r => other(r),
    }
}

/// A stage can be silent for minutes (an AMI being created): a task on the run's
/// local set (every command runs in one, `commands::main`) checks every few seconds
/// whether a "still running" line is due, and ends with the sink.
fn keep_alive(sink: std::rc::Weak<CiSink>) {
    tokio::task::spawn_local(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match sink.upgrade() {
                Some(s) => s.tick(),
                None => break,
            }
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Github,
    Travis,
}

/// A stage's lines, held until it ends.
struct Block {
    label: String,
    /// The "started" line, printed only with the others.
    started: String,
    lines: Vec<String>,
    /// The tool's current step, for the "still running" line.
    step: String,
    failure: Option<(String, Option<PathBuf>)>,
}

/// Without a line for this long, a "still running" line says what each open stage
/// does (Travis stops a job after 10 minutes without output).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);

pub(crate) struct CiSink {
    flavor: Flavor,
    out: RefCell<Box<dyn Write>>,
    workspace: Option<PathBuf>,
    blocks: RefCell<BTreeMap<(String, Stage), Block>>,
    last_step: RefCell<BTreeMap<(String, String), String>>,
    last_write: Cell<Instant>,
    heartbeat: Duration,
}

impl CiSink {
    pub(crate) fn new(flavor: Flavor, out: Box<dyn Write>, workspace: Option<PathBuf>) -> Self {
        Self {
            flavor,
            out: RefCell::new(out),
            workspace,
            blocks: RefCell::new(BTreeMap::new()),
            last_step: RefCell::new(BTreeMap::new()),
            last_write: Cell::new(Instant::now()),
            heartbeat: HEARTBEAT,
        }
    }

    /// Sets the quiet time before a "still running" line (tests).
    #[cfg(test)]
    fn with_heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d;
        self
    }

    /// One write per call: a block reaches the log whole.
    fn write(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.last_write.set(Instant::now());
    }

    fn line(&self, customer: &str, stage: &str, text: &str) -> String {
        format!("{}\n", plain_line(SystemTime::now(), &format!("{customer} {stage}"), text))
    }

    /// A failure's annotation: `::error` (or `::warning` for an interrupt) pointing
    /// at the stack directory, the template or the customer file.
    fn annotation(&self, status: Status, title: &str, message: &str, file: Option<PathBuf>) -> String {
        let level = if status == Status::Interrupted { "warning" } else { "error" };
        let at = Location { file, ..Default::default() };
        github::capped(github::annotation(level, &at, title, message, self.workspace.as_deref())).map(|l| l + "\n").unwrap_or_default()
    }

    /// The whole text of a finished stage.
    fn render_block(&self, customer: &str, stage: Stage, b: Block, status: Status, detail: &str, elapsed: Duration) -> String {
        let mut s = String::new();
        let result = finished_line(&b.label, status, detail, elapsed);
        // A stage that printed nothing but its result (a skip) needs no group.
        if b.lines.is_empty() && b.failure.is_none() {
            return self.line(customer, stage.as_str(), &result);
        }
        let title = format!("{customer} · {} — {} in {}", b.label, status.word(), format_elapsed(elapsed));
        let fold_id = fold_id(customer, stage);
        match self.flavor {
            Flavor::Github => s.push_str(&format!("{}\n", github::command("group", &[], &title))),
            Flavor::Travis => s.push_str(&format!("travis_fold:start:{fold_id}\n{title}\n")),
        }
        s.push_str(&b.started);
        for l in &b.lines {
            s.push_str(l);
        }
        s.push_str(&self.line(customer, stage.as_str(), &result));
        let failure_lines = |s: &mut String| {
            if let Some((message, _)) = &b.failure {
                for l in message.lines() {
                    s.push_str(&self.line(customer, stage.as_str(), l));
                }
            }
        };
        match self.flavor {
            Flavor::Github => {
                failure_lines(&mut s);
                s.push_str("::endgroup::\n");
            }
            // A fold stays closed: the failure is printed after it, where it is seen.
            Flavor::Travis => {
                s.push_str(&format!("travis_fold:end:{fold_id}\n"));
                failure_lines(&mut s);
            }
        }
        if self.flavor == Flavor::Github
            && let Some((message, file)) = b.failure
        {
            s.push_str(&self.annotation(status, &format!("{customer}: {} {}", b.label, status.word()), &message, file));
        }
        s
    }

    /// Prints the "still running" line if it is due.
    pub(crate) fn tick(&self) {
        if let Some(h) = self.heartbeat_line() {
            self.write(&h);
        }
    }

    /// The "still running" line, when nothing was written for a while.
    fn heartbeat_line(&self) -> Option<String> {
        if self.last_write.get().elapsed() < self.heartbeat {
            return None;
        }
        let blocks = self.blocks.borrow();
        if blocks.is_empty() {
            return None;
        }
        let running: Vec<String> = blocks
            .iter()
            .map(|((c, st), b)| if b.step.is_empty() { format!("{c} {st}") } else { format!("{c} {st} ({})", b.step) })
            .collect();
        Some(format!("{}\n", plain_line(SystemTime::now(), "stamp", &format!("still running: {}", running.join(", ")))))
    }
}

/// A Travis fold id: `<customer>.<stage>`, made of `[A-Za-z0-9_.-]`.
pub(crate) fn fold_id(customer: &str, stage: Stage) -> String {
    format!("{customer}.{stage}").chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect()
}

impl EventSink for CiSink {
    fn emit(&self, e: Event) {
        match (&e.kind, e.stage) {
            (EventKind::Secret(v), _) => {
                if self.flavor == Flavor::Github {
                    let text: String = github::mask_lines(v).into_iter().map(|l| l + "\n").collect();
                    self.write(&text);
                }
            }
            (EventKind::StageStarted { label }, Some(stage)) => {
                let line = plain::event_text(&e, &mut self.last_step.borrow_mut()).unwrap_or_default();
                let block =
                    Block { label: label.clone(), started: format!("{line}\n"), lines: Vec::new(), step: String::new(), failure: None };
                self.blocks.borrow_mut().insert((e.customer.clone(), stage), block);
            }
            (EventKind::Failure { message, file }, Some(stage)) => {
                if let Some(b) = self.blocks.borrow_mut().get_mut(&(e.customer.clone(), stage)) {
                    b.failure = Some((message.clone(), file.clone()));
                    return;
                }
                let title = format!("{}: {stage} failed", e.customer);
                self.write(&self.annotation(Status::Failed, &title, message, file.clone()));
            }
            (EventKind::Failure { message, file }, None) => {
                let mut s: String = message.lines().map(|l| self.line(&e.customer, "run", l)).collect();
                if self.flavor == Flavor::Github {
                    s.push_str(&self.annotation(Status::Failed, &format!("{} failed", e.customer), message, file.clone()));
                }
                self.write(&s);
            }
            (EventKind::StageFinished { status, detail, elapsed }, Some(stage)) => {
                let block = self.blocks.borrow_mut().remove(&(e.customer.clone(), stage));
                match block {
                    Some(b) => self.write(&self.render_block(&e.customer, stage, b, *status, detail, *elapsed)),
                    None => self.write(&self.line(&e.customer, stage.as_str(), &finished_line(stage.as_str(), *status, detail, *elapsed))),
                }
            }
            (_, stage) => {
                let Some(line) = plain::event_text(&e, &mut self.last_step.borrow_mut()) else { return };
                let held = stage.and_then(|st| {
                    let mut blocks = self.blocks.borrow_mut();
                    let b = blocks.get_mut(&(e.customer.clone(), st))?;
                    if let EventKind::Step(m) = &e.kind {
                        b.step = m.chars().take(70).collect();
                    }
                    b.lines.push(format!("{line}\n"));
                    Some(())
                });
                match held {
                    Some(()) => self.tick(),
                    None => self.write(&format!("{line}\n")),
                }
            }
        }
    }
}

impl Drop for CiSink {
    /// Stages still open (the run ended inside one) are printed as they are.
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut *self.blocks.borrow_mut());
        for ((customer, stage), b) in blocks {
            let text = self.render_block(&customer, stage, b, Status::Interrupted, "did not finish", Duration::ZERO);
            self.write(&text);
        }
    }
}

/// Another renderer under GitHub Actions (`--progress=plain` or `terminal`): the
/// masks and the failure annotations are still printed.
pub(crate) struct GithubExtras {
    pub inner: Rc<dyn EventSink>,
    pub workspace: Option<PathBuf>,
}

impl EventSink for GithubExtras {
    fn emit(&self, e: Event) {
        let text = match &e.kind {
            EventKind::Secret(v) => github::mask_lines(v).into_iter().map(|l| l + "\n").collect(),
            EventKind::Failure { message, file } => {
                let title = match e.stage {
                    Some(st) => format!("{}: {st} failed", e.customer),
                    None => format!("{} failed", e.customer),
                };
                let at = Location { file: file.clone(), ..Default::default() };
                github::capped(github::annotation("error", &at, &title, message, self.workspace.as_deref()))
                    .map(|l| l + "\n")
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        if !text.is_empty() {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        self.inner.emit(e);
    }

    fn pause(&self) {
        self.inner.pause();
    }

    fn resume(&self) {
        self.inner.resume();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.borrow().clone()).unwrap()
        }
    }

    fn ev(customer: &str, stage: Option<Stage>, kind: EventKind) -> Event {
        Event { customer: customer.into(), stage, kind }
    }

    fn finished(status: Status) -> EventKind {
        EventKind::StageFinished { status, detail: String::new(), elapsed: Duration::from_secs(2) }
    }

    /// Two customers' stages, interleaved as they run side by side.
    fn run_two(sink: &CiSink) {
        let vpc = Some(Stage::Vpc);
        sink.emit(ev("acme", vpc, EventKind::StageStarted { label: "vpc stack".into() }));
        sink.emit(ev("globex", vpc, EventKind::StageStarted { label: "vpc stack".into() }));
        sink.emit(ev("acme", vpc, EventKind::Step("terraform plan".into())));
        sink.emit(ev("globex", vpc, EventKind::Secret("hunter2\nline two".into())));
        sink.emit(ev("globex", vpc, EventKind::Step("terraform plan".into())));
        sink.emit(ev("acme", vpc, EventKind::Step("terraform apply".into())));
        sink.emit(ev(
            "globex",
            vpc,
            EventKind::Failure { message: "stage `vpc` failed: exit status 1\n  | boom".into(), file: Some("/fleet/terraform/vpc".into()) },
        ));
        sink.emit(ev("globex", vpc, finished(Status::Failed)));
        sink.emit(ev("acme", vpc, finished(Status::Ok)));
        sink.emit(ev("acme", Some(Stage::Ami), EventKind::StageStarted { label: "AMI".into() }));
        sink.emit(ev("acme", Some(Stage::Ami), finished(Status::Skipped)));
    }

    #[test]
    fn github_groups_hold_one_customer_each_and_masks_come_at_once() {
        let out = Shared::default();
        let sink = CiSink::new(Flavor::Github, Box::new(out.clone()), Some("/fleet".into()));
        run_two(&sink);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..2], ["::add-mask::hunter2", "::add-mask::line two"], "{text}");
        // globex's group comes first (it finished first), whole, then its annotation.
        assert_eq!(lines[2], "::group::globex · vpc stack — FAILED in 2.0s");
        let end = lines.iter().position(|l| *l == "::endgroup::").unwrap();
        assert!(lines[3..end].iter().all(|l| l.contains("] globex vpc: ")), "{text}");
        assert!(lines[end - 1].ends_with("globex vpc:   | boom"), "{text}");
        assert_eq!(
            lines[end + 1],
            "::error file=terraform/vpc,title=globex%3A vpc stack FAILED::stage `vpc` failed: exit status 1%0A  | boom"
        );
        assert_eq!(lines[end + 2], "::group::acme · vpc stack — done in 2.0s");
        let end2 = lines.iter().rposition(|l| *l == "::endgroup::").unwrap();
        assert!(lines[end + 3..end2].iter().all(|l| l.contains("] acme vpc: ")), "{text}");
        assert!(text.contains("acme vpc: terraform apply"));
        // A skip is one line, no group.
        assert!(lines[end2 + 1].contains("] acme ami: - AMI"), "{text}");
        assert_eq!(lines.len(), end2 + 2, "{text}");
    }

    #[test]
    fn travis_folds_are_balanced_and_failures_stay_outside_them() {
        let out = Shared::default();
        let sink = CiSink::new(Flavor::Travis, Box::new(out.clone()), None);
        run_two(&sink);
        let text = out.text();
        assert!(!text.contains("::"), "no GitHub commands under Travis: {text}");
        assert!(!text.contains("hunter2"), "{text}");
        let starts: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("travis_fold:start:")).collect();
        let ends: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("travis_fold:end:")).collect();
        assert_eq!(starts, ["globex.vpc", "acme.vpc"]);
        assert_eq!(starts, ends);
        let end = text.find("travis_fold:end:globex.vpc").unwrap();
        assert!(text[end..].contains("globex vpc:   | boom"), "the failure follows the closed fold: {text}");
    }

    #[test]
    fn a_quiet_run_says_what_is_still_running() {
        let out = Shared::default();
        let sink = CiSink::new(Flavor::Github, Box::new(out.clone()), None).with_heartbeat(Duration::ZERO);
        sink.emit(ev("acme", Some(Stage::Ami), EventKind::StageStarted { label: "AMI".into() }));
        sink.emit(ev("acme", Some(Stage::Ami), EventKind::Step("Creating AMI".into())));
        assert!(out.text().contains("stamp: still running: acme ami (Creating AMI)"), "{}", out.text());
        drop(sink);
        assert!(out.text().contains("::group::acme · AMI — interrupted in 0.0s"), "an open stage is printed at the end: {}", out.text());
    }

    #[test]
    fn fold_ids_are_one_word() {
        assert_eq!(fold_id("acme co", Stage::Frontends), "acme_co.frontends");
    }
}
