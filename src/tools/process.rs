//! The one type that runs an external tool (terraform, packer, aws, git). It knows
//! the exact command line (printable so a human can re-run it), streams stdout and
//! stderr line by line to the stage log and to a callback, applies the signal
//! policy, and turns failure into a `ToolFailure` with the last lines of output.
//! Each tool runs under a relay of stamp's own binary (`tools::relay`), which keeps
//! its output going to the log and stops it exactly once if stamp dies.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::error::{Error, ToolFailure};
use crate::shell::shell_quote;
use crate::signals;
use crate::tools::relay;

mod stage_log;

pub use stage_log::StageLog;
pub(crate) use stage_log::logged;

const TAIL_LINES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a line contributes to the failure summary.
pub enum Tail {
    /// Keep the raw line.
    Raw,
    /// Keep this human-readable rendering instead (e.g. a JSON message's text).
    Text(String),
    /// Leave it out (noise).
    Skip,
    /// Leave it out of the summary, and write this note of stamp's own into the log
    /// after the line (what a long-running step is waiting for).
    Note(String),
}

/// A command to run, with everything needed to print it for a human.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Variables added to stamp's own environment.
    pub env: Vec<(String, String)>,
    /// Variables worth showing in the printed command (others are inherited anyway).
    pub shown_env: Vec<String>,
    /// Variables holding secrets (`TF_VAR_<name>` of sensitive inputs): passed to the
    /// tool, never printed. (name, value, what the printed command shows instead).
    secret_env: Vec<(String, String, String)>,
    /// Runs the tool with umask 077, so what it writes (terraform's saved plans,
    /// an errored.tfstate) is readable by the owner only.
    private_files: bool,
    /// The signal this tool stops cleanly on (terraform: SIGINT, packer: SIGTERM).
    pub stop_signal: i32,
}

/// The result of a run that exited 0 (or whose exit code the caller accepts).
#[derive(Debug, Default)]
pub struct ToolOutput {
    pub code: i32,
    /// Stdout, kept only when asked for.
    pub stdout: String,
}

impl ToolCommand {
    pub fn new(program: &Path, cwd: &Path) -> Self {
        Self {
            program: program.to_path_buf(),
            args: Vec::new(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            shown_env: Vec::new(),
            secret_env: Vec::new(),
            private_files: false,
            stop_signal: libc::SIGINT,
        }
    }

    /// A variable holding a secret: in the tool's environment only. The printed
    /// command shows `shown` (a shell word such as `"$ACME_DB_PASSWORD"`) instead.
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>, shown: impl Into<String>) -> Self {
        self.secret_env.push((key.into(), value.into(), shown.into()));
        self
    }

    /// Files the tool creates are the owner's only (umask 077).
    pub fn private_files(mut self) -> Self {
        self.private_files = true;
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn envs(mut self, env: &[(String, String)]) -> Self {
        self.env.extend_from_slice(env);
        self
    }

    pub fn show_env(mut self, keys: &[&str]) -> Self {
        self.shown_env.extend(keys.iter().map(|k| k.to_string()));
        self
    }

    pub fn stop_with(mut self, sig: i32) -> Self {
        self.stop_signal = sig;
        self
    }

    /// The command as a shell line: `cd DIR && VAR=value program args...`.
    pub fn display(&self) -> String {
        let mut parts = vec![format!("cd {} &&", shell_quote(&self.cwd.to_string_lossy()))];
        for k in &self.shown_env {
            // A secret is never printed, even if asked for by name.
            if is_secret_name(k) || self.secret_env.iter().any(|(sk, _, _)| sk == k) {
                continue;
            }
            if let Some((_, v)) = self.env.iter().find(|(ek, _)| ek == k) {
                parts.push(format!("{k}={}", shell_quote(v)));
            }
        }
        for (k, _, shown) in &self.secret_env {
            parts.push(format!("{k}={shown}"));
        }
        parts.push(shell_quote(&self.program.to_string_lossy()));
        parts.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        parts.join(" ")
    }

    /// The command in short, for a human: the program's name and the arguments.
    pub fn short(&self) -> String {
        let name = self.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut parts = vec![shell_quote(&name)];
        parts.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        let s = parts.join(" ");
        if s.chars().count() > 160 { format!("{}...", s.chars().take(157).collect::<String>()) } else { s }
    }

    /// Runs the command to completion, through the relay (`tools::relay`): every
    /// line goes to `log` (the relay appends it) and to `on_line`. Exit codes in
    /// `ok_codes` count as success; anything else is a `ToolFailure`.
    pub async fn run(
        &self,
        stage: &str,
        log: &mut StageLog,
        ok_codes: &[i32],
        capture_stdout: bool,
        on_line: &mut dyn FnMut(Stream, &str) -> Tail,
    ) -> Result<ToolOutput, Error> {
        if signals::interrupted() {
            return Err(Error::Interrupted(Some(stage.to_owned())));
        }
        log.command(&self.display());
        let options = relay::Options {
            stamp_pid: std::process::id(),
            stop_signal: self.stop_signal,
            grace: signals::grace_period(),
            log: log.file.as_ref().map(|_| log.path.clone()),
            program: self.program.clone().into_os_string(),
            args: self.args.clone(),
        };
        let relay_program = relay_program();
        let mut cmd = self.relay_command(&relay_program, &options);
        let log_path = log.path.clone();
        let failure = |status: String, tail: Vec<String>, hint: Option<String>| {
            Error::Tool(Box::new(ToolFailure {
                stage: stage.to_owned(),
                command: self.display(),
                cwd: self.cwd.clone(),
                status,
                tail,
                log: log_path.clone(),
                hint,
            }))
        };
        let mut child = cmd.spawn().map_err(|e| {
            failure(
                format!("could not start stamp's tool relay ({}) for {}: {e}", relay_program.display(), self.program.display()),
                Vec::new(),
                Some("stamp runs every tool through a relay of its own binary; /proc must be mounted".into()),
            )
        })?;
        let mut control = child.stdin.take();
        // Named in what stamp prints on an interrupt.
        let _running = crate::running::tool(stage, self.short(), &self.cwd);

        // The relay's lines, read on a task of their own so a full pipe never blocks it.
        let (mut rx, reader) = match child.stdout.take() {
            Some(out) => {
                let (rx, task) = read_lines(out);
                (rx, Some(task))
            }
            None => (mpsc::channel::<Vec<u8>>(1).1, None),
        };

        let mut got = Collected::default();
        let mut interrupts = signals::subscribe();
        // An interrupt between the check above and the spawn is acted on at once.
        if let Some(r) = interrupts.as_mut()
            && r.borrow().received > 0
        {
            r.mark_changed();
        }
        let mut forwarded = 0u32;
        let mut received = 0u32;
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut lines_open = true;
        let mut relay_exited: Option<std::io::Result<std::process::ExitStatus>> = None;
        let tell = async |control: &mut Option<tokio::process::ChildStdin>, what: String| {
            if let Some(c) = control.as_mut() {
                let _ = c.write_all(what.as_bytes()).await;
                let _ = c.flush().await;
            }
        };
        loop {
            if !lines_open && relay_exited.is_some() {
                break;
            }
            let kill_timer = async {
                match kill_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let interrupt = async {
                match interrupts.as_mut() {
                    Some(r) => match r.changed().await {
                        Ok(()) => *r.borrow(),
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                line = rx.recv(), if lines_open => match line {
                    Some(frame) => got.frame(&frame, capture_stdout, on_line, log),
                    None => lines_open = false,
                },
                // `Child::wait` is cancel-safe, so it can sit in the select with the pipe.
                status = child.wait(), if relay_exited.is_none() => relay_exited = Some(status),
                state = interrupt => {
                    // The policy (`signals`): the first interrupt and each later SIGINT are
                    // forwarded, once each; a later SIGTERM or SIGHUP is not. The first
                    // also starts the kill timer. The relay delivers them.
                    let sig = state.last.map(|(s, _)| s.name()).unwrap_or("an interrupt");
                    if state.forward > forwarded {
                        while forwarded < state.forward {
                            forwarded += 1;
                            log.note(&format!("stamp: interrupt {forwarded} received, sending signal {} to the tool ({sig})", self.stop_signal));
                            tell(&mut control, format!("signal {}\n", self.stop_signal)).await;
                        }
                    } else if state.received > received {
                        log.note(&format!(
                            "stamp: {sig} received after the interrupt: not forwarded; waiting for the tool to stop on its own \
                             (it may be saving its state); only a second SIGINT stops it at once"
                        ));
                    }
                    received = state.received;
                    if kill_at.is_none() && forwarded > 0 {
                        kill_at = Some(tokio::time::Instant::now() + signals::grace_period());
                    }
                }
                _ = kill_timer => {
                    log.note("stamp: grace period over, killing the tool's process group");
                    tell(&mut control, "kill\n".to_owned()).await;
                    kill_at = None;
                }
            }
        }
        if let Some(r) = reader {
            r.abort();
        }
        // The relay is done: its stdin closes with nothing left to stop.
        drop(control);
        log.flush();
        if let Err(e) = relay_exited.expect("the loop ends once the relay exited") {
            return Err(Error::io(format!("waiting for stamp's tool relay of {}", self.program.display()), e));
        }
        if let Some(why) = got.not_started {
            return Err(failure(why, Vec::new(), Some("run `stamp doctor` to see which tools are found".into())));
        }
        let Some(end) = got.ended else {
            return Err(failure("stamp's tool relay ended without the tool's exit status".into(), got.tail.into_iter().collect(), None));
        };
        if forwarded > 0 || signals::interrupted() {
            return Err(Error::Interrupted(Some(stage.to_owned())));
        }
        let (code, described) = match end {
            End::Code(c) => (c, format!("exit status {c}")),
            End::Signal(s) => (128 + s, format!("killed by signal {s}")),
        };
        if ok_codes.contains(&code) {
            if let Some(e) = log.take_error() {
                // The tool succeeded, but its log is incomplete: say so rather than lose it.
                return Err(Error::io(format!("writing the log {}", log.path.display()), e));
            }
            if let Some(e) = got.log_error {
                return Err(Error::stage(format!("writing the log {}: {e}", log.path.display())));
            }
            return Ok(ToolOutput { code, stdout: got.stdout });
        }
        Err(failure(described, got.tail.into_iter().collect(), None))
    }

    /// The relay's command for this tool: its own process group, the tool's
    /// environment, and in the child before exec the umask and the inherited work lock.
    fn relay_command(&self, relay_program: &Path, options: &relay::Options) -> Command {
        let mut cmd = Command::new(relay_program);
        // `ps` shows "stamp __stamp-tool-relay ... -- terraform apply ...".
        cmd.arg0("stamp")
            .arg(relay::ARG)
            .args(options.to_args())
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(self.secret_env.iter().map(|(k, v, _)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own group: a terminal's Ctrl-C reaches stamp only, which decides.
            .process_group(0)
            // Dropped (the run abandoned), the relay sees its stdin end and stops the
            // tool as it would if stamp died: gracefully, then after the grace period.
            .kill_on_drop(false);
        let held = HELD.try_with(|fd| *fd).ok().flatten();
        let private_files = self.private_files;
        // SAFETY: the closure runs in the forked child before exec and calls only
        // umask(2) and fcntl(2), which are async-signal-safe; it touches no memory of
        // the parent.
        unsafe {
            cmd.pre_exec(move || {
                if private_files {
                    // The relay's umask is the tool's.
                    libc::umask(0o077);
                }
                // The customer's work lock, open in the relay and so in the tool: held
                // until they are gone, whatever happens to stamp.
                if let Some(fd) = held
                    && libc::fcntl(fd, libc::F_SETFD, 0) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}

/// Reads the relay's lines (frames) on a task of their own, so a full pipe never
/// blocks the relay; the receiver ends with the pipe.
fn read_lines(out: tokio::process::ChildStdout) -> (mpsc::Receiver<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    let task = tokio::spawn(async move {
        let mut r = BufReader::new(out);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    (rx, task)
}

/// What a run collects from the relay's frames.
#[derive(Default)]
struct Collected {
    /// The last `TAIL_LINES` lines worth showing in a failure.
    tail: VecDeque<String>,
    /// The tool's stdout, when captured.
    stdout: String,
    ended: Option<End>,
    /// The relay could not start the tool: why.
    not_started: Option<String>,
    /// The relay could not write the log: why.
    log_error: Option<String>,
}

impl Collected {
    /// One frame of the relay: `O`/`E` a line of the tool's stdout/stderr (to
    /// `on_line`, the tail, and stdout when captured), `X` how the tool ended, `F` it
    /// could not start, `W` the log could not be written.
    fn frame(&mut self, frame: &[u8], capture_stdout: bool, on_line: &mut dyn FnMut(Stream, &str) -> Tail, log: &mut StageLog) {
        let text = String::from_utf8_lossy(frame.get(2..).unwrap_or_default()).into_owned();
        let stream = match frame.first() {
            Some(b'O') => Stream::Stdout,
            Some(b'E') => Stream::Stderr,
            Some(b'X') => {
                self.ended = Some(End::parse(&text));
                return;
            }
            Some(b'F') => {
                self.not_started = Some(text);
                return;
            }
            Some(b'W') => {
                self.log_error = Some(text);
                return;
            }
            _ => return,
        };
        if capture_stdout && stream == Stream::Stdout {
            self.stdout.push_str(&text);
            self.stdout.push('\n');
        }
        let keep = match on_line(stream, &text) {
            Tail::Raw => Some(text),
            Tail::Text(t) => Some(t),
            Tail::Skip => None,
            Tail::Note(n) => {
                log.note(&format!("stamp: {n}"));
                None
            }
        };
        if let Some(t) = keep.filter(|t| !t.trim().is_empty()) {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(t);
        }
    }
}

/// How the tool ended, as the relay reports it.
enum End {
    Code(i32),
    Signal(i32),
}

impl End {
    fn parse(s: &str) -> End {
        match s.strip_prefix("signal ") {
            Some(n) => End::Signal(n.trim().parse().unwrap_or(0)),
            None => End::Code(s.trim().parse().unwrap_or(-1)),
        }
    }
}

tokio::task_local! {
    /// The descriptor of the work lock of the customer whose tools run in this task.
    static HELD: Option<std::os::fd::RawFd>;
}

/// Runs `f` with `fd` (a customer's work lock, `customer::pipeline`) kept open in
/// every tool it runs (and their relays): the lock is held until they are all gone,
/// even if stamp is not.
pub(crate) async fn holding<F: std::future::Future>(fd: Option<std::os::fd::RawFd>, f: F) -> F::Output {
    HELD.scope(fd, f).await
}

static RELAY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The relay is stamp's own binary. A program that links stamp's library and is not
/// stamp (the tests) names the stamp binary here, once, before running a tool.
pub fn set_relay_program(path: impl Into<PathBuf>) {
    let _ = RELAY.set(path.into());
}

fn relay_program() -> PathBuf {
    RELAY.get().cloned().unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Environment variables that carry variable values to terraform and packer: the
/// sensitive ones go only through `secret_env`, and none is ever printed.
fn is_secret_name(k: &str) -> bool {
    k.starts_with("TF_VAR_") || k.starts_with("PKR_VAR_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_a_runnable_shell_line() {
        let c = ToolCommand::new(Path::new("/usr/bin/terraform"), Path::new("/w/acme/terraform/vpc"))
            .args(["plan", "-out=stamp.tfplan"])
            .envs(&[("AWS_REGION".into(), "eu-west-1".into()), ("SECRET".into(), "x".into())])
            .show_env(&["AWS_REGION"]);
        assert_eq!(c.display(), "cd /w/acme/terraform/vpc && AWS_REGION=eu-west-1 /usr/bin/terraform plan -out=stamp.tfplan");
    }

    #[test]
    fn a_secret_variable_is_never_printed() {
        let c = ToolCommand::new(Path::new("/usr/bin/terraform"), Path::new("/w"))
            .arg("plan")
            .envs(&[("TF_VAR_leaked".into(), "hunter2-in-env".into())])
            .show_env(&["TF_VAR_leaked", "TF_VAR_db_password"])
            .secret_env("TF_VAR_db_password", "hunter2-secret", "\"$ACME_DB_PASSWORD\"");
        let shown = c.display();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "cd /w && TF_VAR_db_password=\"$ACME_DB_PASSWORD\" /usr/bin/terraform plan");
    }
}
