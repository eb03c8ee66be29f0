//! A stage's log file: the commands stamp runs, its notes and (appended by the relay)
//! the tools' lines; and `logged`, the retry policy writing each retry to it.

use std::io::Write;
use std::path::PathBuf;

use crate::error::Error;

/// Where a stage log's `progress` lines are shown as the stage's step.
pub(crate) type Steps = std::rc::Rc<dyn Fn(&str)>;

/// The full output of one stage's tools: `<work>/<customer>/logs/<stage>.log`.
/// The previous run's log is kept beside it as `<stage>.previous.log`. The tools'
/// lines are appended by their relay (`tools::relay`); stamp writes its commands and
/// notes: both append, so neither overwrites the other.
pub struct StageLog {
    pub path: PathBuf,
    // Line-buffered so `tail -f` on a log follows a running tool.
    pub(super) file: Option<std::io::LineWriter<std::fs::File>>,
    /// The first write that failed (disk full, ...), reported after the tool ran.
    pub(super) error: Option<std::io::Error>,
    /// Where `progress` also shows its line (the stage's progress step).
    pub(super) steps: Option<Steps>,
}

impl StageLog {
    pub fn create(path: PathBuf) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        if path.exists() {
            let prev = path.with_extension("previous.log");
            std::fs::rename(&path, &prev).map_err(|e| Error::io(format!("moving {} to {}", path.display(), prev.display()), e))?;
        }
        // Appending: the tools' relay appends their lines to the same file.
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|f| f.set_len(0).map(|()| f))
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Self { path, file: Some(std::io::LineWriter::new(f)), error: None, steps: None })
    }

    /// Appends to a log this run already started.
    pub fn append(path: PathBuf) -> Result<Self, Error> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Self { path, file: Some(std::io::LineWriter::new(f)), error: None, steps: None })
    }

    /// A log that goes nowhere (for read-only commands such as `doctor`).
    pub fn discard() -> Self {
        Self { path: PathBuf::from("/dev/null"), file: None, error: None, steps: None }
    }

    /// A log that goes nowhere but whose `progress` lines (retries) are printed on
    /// stderr: read-only commands (`status`, `outputs`, `doctor`) keep no stage log.
    pub fn discard_with_notes() -> Self {
        Self::discard().with_steps(std::rc::Rc::new(|m: &str| eprintln!("note: {m}")))
    }

    fn write(&mut self, s: &str) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(s.as_bytes())
        {
            self.error.get_or_insert(e);
        }
    }

    /// The first write error since the last call, if any.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    pub fn command(&mut self, cmd: &str) {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        self.write(&format!("\n[{now}] $ {cmd}\n"));
    }

    /// Shows `progress` lines as steps of a stage too (`Pipeline::log`).
    pub fn with_steps(mut self, steps: Steps) -> Self {
        self.steps = Some(steps);
        self
    }

    /// A line of stamp's own that the operator should see while it happens (a
    /// retry and its reason): in the log, and as the stage's current step.
    pub fn progress(&mut self, s: &str) {
        self.note(&format!("stamp: {s}"));
        if let Some(f) = &self.steps {
            f(s);
        }
    }

    pub fn note(&mut self, s: &str) {
        self.write(&format!("{s}\n"));
        self.flush();
    }

    pub fn flush(&mut self) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.flush()
        {
            self.error.get_or_insert(e);
        }
    }
}

/// `retry::run` with the stage log as the context: each retry goes to the log and
/// the stage's progress step.
pub(crate) async fn logged<T, E: crate::retry::Retryable>(
    log: &mut StageLog,
    what: &str,
    attempt: impl AsyncFnMut(&mut StageLog, u32) -> Result<T, E>,
    transient: impl Fn(&E) -> Option<String>,
) -> Result<T, E> {
    crate::retry::run(log, what, |l: &mut StageLog, m: &str| l.progress(m), attempt, transient).await
}
