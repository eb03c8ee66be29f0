//! Typed errors at the module boundaries and the one table of exit codes.
//!
//! | code | meaning                                                  |
//! |------|----------------------------------------------------------|
//! | 0    | success                                                  |
//! | 1    | a stage (or a tool stamp ran) failed                     |
//! | 2    | bad usage or configuration: nothing was created          |
//! | 3    | `stamp drift`: a customer's infrastructure drifted       |
//! | 130  | interrupted (Ctrl-C / SIGINT / SIGTERM)                  |

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub(crate) const EXIT_OK: i32 = 0;
pub(crate) const EXIT_STAGE_FAILED: i32 = 1;
pub(crate) const EXIT_USAGE: i32 = 2;
/// `stamp drift` found real infrastructure that differs from its state.
pub(crate) const EXIT_DRIFT: i32 = 3;
pub(crate) const EXIT_INTERRUPTED: i32 = 130;

/// A problem in a configuration file or value, found before any AWS call.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The column (1-based, in characters) of the value `line` points at (u32 keeps
    /// the error small).
    pub col: Option<u32>,
    pub message: String,
    pub snippet: Option<String>,
    pub hint: Option<String>,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl ConfigError {
    pub fn new(file: &Path, message: String) -> Self {
        Self { file: file.to_path_buf(), line: None, col: None, message, snippet: None, hint: None }
    }

    /// An error about the value at `span` in `text` (the file's content).
    pub fn at(file: &Path, text: &str, span: Range<usize>, message: String) -> Self {
        let line = line_of(text, span.start);
        let snippet = text.lines().nth(line - 1).map(|l| l.to_owned());
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = text.get(line_start..start).and_then(|s| u32::try_from(s.chars().count() + 1).ok());
        Self { file: file.to_path_buf(), line: Some(line), col, message, snippet, hint: None }
    }

    pub fn toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let msg = e.message().trim().to_owned();
        let hint = if msg.starts_with("duplicate key") { Some("a key may appear once in each table: keep one of the two") } else { None };
        let err = match e.span() {
            Some(span) => Self::at(file, text, span, msg),
            None => Self::new(file, msg),
        };
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}: line {line}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let (Some(line), Some(snippet)) = (self.line, &self.snippet) {
            write!(f, "\n  {line:>4} | {snippet}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A tool run that failed: everything an engineer needs to re-run it by hand.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    pub stage: String,
    pub command: String,
    pub cwd: PathBuf,
    pub status: String,
    pub tail: Vec<String>,
    pub log: PathBuf,
    pub hint: Option<String>,
}

impl fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stage `{}` failed: {}", self.stage, self.status)?;
        writeln!(f, "  command: {}", self.command)?;
        writeln!(f, "  in:      {}", self.cwd.display())?;
        if !self.tail.is_empty() {
            writeln!(f, "  last lines of output:")?;
            for l in &self.tail {
                writeln!(f, "    | {l}")?;
            }
        }
        write!(f, "  full log: {}", self.log.display())?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Usage { message: String, hint: Option<String> },
    #[error("{0}")]
    Tool(Box<ToolFailure>),
    #[error("{message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Stage { message: String, hint: Option<String> },
    #[error("interrupted{}", .0.as_ref().map(|s| format!(" during {s}")).unwrap_or_default())]
    Interrupted(Option<String>),
    /// Not started, or stopped between two stages: the run was stopping (`cancel`).
    #[error("stopped before finishing: {0}")]
    Stopped(String),
    /// Problems already printed one by one (all customers' configuration errors,
    /// a fleet's failures); carries the exit code and a one-line summary.
    #[error("{message}")]
    Reported { message: String, code: i32 },
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage { message: message.into(), hint: None }
    }
    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { message: message.into(), hint: Some(hint.into()) }
    }
    pub fn stage(message: impl Into<String>) -> Self {
        Error::Stage { message: message.into(), hint: None }
    }
    pub fn stage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Stage { message: message.into(), hint: Some(hint.into()) }
    }
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        Error::stage(format!("{what}: {e}"))
    }
    /// A file stamp could not write in its work directory.
    pub fn work_dir(what: impl fmt::Display, e: std::io::Error) -> Self {
        Error::stage_hint(
            format!("{what}: {e}"),
            "stamp needs a writable work directory: [paths] work in stamp.toml (by default `.stamp` beside it)",
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage { .. } => EXIT_USAGE,
            Error::Tool(_) | Error::Stage { .. } => EXIT_STAGE_FAILED,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
            Error::Stopped(_) => EXIT_STAGE_FAILED,
            Error::Reported { code, .. } => *code,
        }
    }
}
