//! The one type that runs an external tool (terraform, packer, aws). It knows the
//! exact command line (printable so a human can re-run it), streams stdout and
//! stderr line by line to the stage log and to a callback, applies the signal
//! policy, and turns failure into a `ToolFailure` with the last lines of output.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::error::{Error, ToolFailure};
use crate::signals;

const TAIL_LINES: usize = 20;

/// How long stamp keeps reading a tool's output after the tool exited. A process
/// the tool left in the background (`cmd &`) inherits the pipes; without this
/// limit stamp would wait for that process instead of the tool.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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

    /// Runs the command to completion. Every line goes to `log` and to `on_line`.
    /// Exit codes in `ok_codes` count as success; anything else is a `ToolFailure`.
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
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(self.secret_env.iter().map(|(k, v, _)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let parent = std::process::id() as libc::pid_t;
        let death_signal = self.stop_signal;
        let private_files = self.private_files;
        // SAFETY: the closure runs in the forked child before exec and calls only
        // umask(2), prctl(2), getppid(2) and kill(2), which are async-signal-safe; it touches no
        // memory of the parent. PR_SET_PDEATHSIG fires when the thread that forked
        // exits: stamp spawns tools from its one runtime thread, the main thread.
        unsafe {
            cmd.pre_exec(move || {
                if private_files {
                    libc::umask(0o077);
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // stamp died between fork and prctl: nobody would send the signal.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), death_signal);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::Tool(Box::new(ToolFailure {
                stage: stage.to_owned(),
                command: self.display(),
                cwd: self.cwd.clone(),
                status: format!("could not start {}: {e}", self.program.display()),
                tail: Vec::new(),
                log: log.path.clone(),
                hint: Some("run `stamp doctor` to see which tools are found".into()),
            }))
        })?;
        let pgid = child.id().unwrap_or(0);
        let watchdog = Watchdog::start(pgid, self.stop_signal, log);
        // Named in what stamp prints on an interrupt.
        let _running = crate::interrupt::tool(stage, self.short(), &self.cwd);

        // Both pipes are drained on their own tasks so a full pipe never blocks the child.
        let (tx, mut rx) = mpsc::channel::<(Stream, String)>(256);
        let mut readers = Vec::new();
        for (stream, reader) in [
            (Stream::Stdout, child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)),
            (Stream::Stderr, child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)),
        ] {
            let Some(reader) = reader else { continue };
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send((stream, line)).await.is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);

        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut stdout = String::new();
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
        // Set once the tool itself exited: its output is read until EOF or until
        // `DRAIN_TIMEOUT`, since a process it left behind may hold the pipes open.
        let mut exited: Option<std::process::ExitStatus> = None;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let status = loop {
            let kill_timer = async {
                match kill_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let drain_timer = async {
                match drain_until {
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
                    Some((stream, text)) => {
                        log.line(stream, &text);
                        if capture_stdout && stream == Stream::Stdout {
                            stdout.push_str(&text);
                            stdout.push('\n');
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
                            if tail.len() == TAIL_LINES { tail.pop_front(); }
                            tail.push_back(t);
                        }
                    }
                    None => {
                        lines_open = false;
                        if let Some(s) = exited { break Ok(s) }
                    }
                },
                // `Child::wait` is cancel-safe, so it can sit in the select with the pipes.
                status = child.wait(), if exited.is_none() => match status {
                    Ok(s) if lines_open => {
                        exited = Some(s);
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    }
                    other => break other,
                },
                _ = drain_timer => {
                    log.note(&format!(
                        "stamp: {} exited, but a process it started still holds its output open after {}s; \
                         stopped reading and sent SIGTERM to what is left of its process group ({pgid})",
                        self.program.display(),
                        DRAIN_TIMEOUT.as_secs()
                    ));
                    signals::signal_group(pgid, libc::SIGTERM);
                    break Ok(exited.expect("the drain timer starts when the tool exits"));
                }
                state = interrupt => {
                    // The policy (`signals`): the first interrupt and each later SIGINT are
                    // forwarded, once each; a later SIGTERM or SIGHUP is not. The first
                    // also starts the kill timer.
                    let sig = state.last.map(|(s, _)| s.name()).unwrap_or("an interrupt");
                    if state.forward > forwarded {
                        while forwarded < state.forward {
                            forwarded += 1;
                            log.note(&format!("stamp: interrupt {forwarded} received, sending signal {} to the tool ({sig})", self.stop_signal));
                            signals::signal_group(pgid, self.stop_signal);
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
                    signals::signal_group(pgid, libc::SIGKILL);
                    kill_at = None;
                }
            }
        };
        for r in readers {
            r.abort();
        }
        watchdog.disarm().await;
        log.flush();
        let status = status.map_err(|e| Error::io(format!("waiting for {}", self.program.display()), e))?;
        if forwarded > 0 || signals::interrupted() {
            return Err(Error::Interrupted(Some(stage.to_owned())));
        }
        use std::os::unix::process::ExitStatusExt;
        let (code, described) = match (status.code(), status.signal()) {
            (Some(c), _) => (c, format!("exit status {c}")),
            (None, Some(s)) => (128 + s, format!("killed by signal {s}")),
            (None, None) => (-1, "unknown exit status".into()),
        };
        if ok_codes.contains(&code) {
            if let Some(e) = log.take_error() {
                // The tool succeeded, but its log is incomplete: say so rather than lose it.
                return Err(Error::io(format!("writing the log {}", log.path.display()), e));
            }
            return Ok(ToolOutput { code, stdout });
        }
        Err(Error::Tool(Box::new(ToolFailure {
            stage: stage.to_owned(),
            command: self.display(),
            cwd: self.cwd.clone(),
            status: described,
            tail: tail.into_iter().collect(),
            log: log.path.clone(),
            hint: None,
        })))
    }
}

/// Stops a tool's whole process group if stamp dies without stopping it (SIGKILL,
/// a crash, the OOM killer): PR_SET_PDEATHSIG reaches the tool itself only, not
/// the processes it started (terraform's providers, a provisioner's command).
/// A small `sh` in its own process group waits on a pipe only stamp holds; at EOF
/// without stamp's "done", it sends the tool's stop signal to the group, then
/// SIGKILL after the grace period, as an interrupt would.
struct Watchdog {
    child: Option<tokio::process::Child>,
    done: Option<std::fs::File>,
}

const WATCHDOG_SCRIPT: &str = r#"read -r line
[ "$line" = done ] && exit 0
kill -s "$2" -- "-$1" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$3" ] && kill -s 0 -- "-$1" 2>/dev/null; do sleep 1; i=$((i + 1)); done
kill -s KILL -- "-$1" 2>/dev/null
exit 0"#;

impl Watchdog {
    fn start(pgid: u32, stop_signal: i32, log: &mut StageLog) -> Self {
        let none = Self { child: None, done: None };
        if pgid <= 1 {
            return none;
        }
        let name = match stop_signal {
            libc::SIGINT => "INT",
            libc::SIGTERM => "TERM",
            libc::SIGHUP => "HUP",
            libc::SIGQUIT => "QUIT",
            _ => "TERM",
        };
        let spawned = Command::new("/bin/sh")
            .args(["-c", WATCHDOG_SCRIPT, "stamp-watchdog", &pgid.to_string(), name])
            .arg(signals::grace_period().as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a terminal's Ctrl-C must not stop the watchdog.
            .process_group(0)
            .kill_on_drop(false)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                log.note(&format!("stamp: cannot start the watchdog for process group {pgid} (/bin/sh: {e}); if stamp is killed, that group may outlive it"));
                return none;
            }
        };
        let done = child.stdin.take().and_then(|s| s.into_owned_fd().ok()).map(std::fs::File::from);
        Self { child: Some(child), done }
    }

    /// The tool was handled: the watchdog exits without signalling anything.
    async fn disarm(mut self) {
        if let Some(mut f) = self.done.take() {
            // A few bytes into an empty pipe: this does not block.
            let _ = f.write_all(b"done\n");
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait().await;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropped armed (the run was abandoned): closing the pipe makes the watchdog
        // stop the group. Tokio reaps the dropped child in the background.
        self.done.take();
    }
}

/// Where a stage log's `progress` lines are shown as the stage's step.
pub type Steps = std::rc::Rc<dyn Fn(&str)>;

/// The full output of one stage's tools: `<work>/<customer>/logs/<stage>.log`.
/// The previous run's log is kept beside it as `<stage>.previous.log`.
pub struct StageLog {
    pub path: PathBuf,
    // Line-buffered so `tail -f` on a log follows a running tool.
    file: Option<std::io::LineWriter<std::fs::File>>,
    /// The first write that failed (disk full, ...), reported after the tool ran.
    error: Option<std::io::Error>,
    /// Where `progress` also shows its line (the stage's progress step).
    steps: Option<Steps>,
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
        let f = std::fs::File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
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

    pub fn line(&mut self, stream: Stream, s: &str) {
        match stream {
            Stream::Stdout => self.write(&format!("{s}\n")),
            Stream::Stderr => self.write(&format!("[stderr] {s}\n")),
        }
    }

    pub fn flush(&mut self) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.flush()
        {
            self.error.get_or_insert(e);
        }
    }
}

/// Environment variables that carry variable values to terraform and packer: the
/// sensitive ones go only through `secret_env`, and none is ever printed.
fn is_secret_name(k: &str) -> bool {
    k.starts_with("TF_VAR_") || k.starts_with("PKR_VAR_")
}

/// POSIX shell quoting: safe words stay bare, anything else is single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if safe { s.to_owned() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plan"), "plan");
        assert_eq!(shell_quote("-var-file=/a b/c.json"), "'-var-file=/a b/c.json'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

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

    #[tokio::test(flavor = "current_thread")]
    async fn secrets_reach_the_tool_and_private_files_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path())
            .args(["-c", "printf %s \"$TF_VAR_x\" > out; umask"])
            .secret_env("TF_VAR_x", "s3cret", "'<sensitive>'")
            .private_files();
        let out = c.run("t", &mut StageLog::discard(), &[0], true, &mut |_, _| Tail::Raw).await.unwrap();
        assert_eq!(out.stdout.trim(), "0077");
        let f = dir.path().join("out");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "s3cret");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failure_carries_status_tail_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = StageLog::create(dir.path().join("logs/t.log")).unwrap();
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut seen = Vec::new();
        let err = c
            .run("t", &mut log, &[0], true, &mut |s, l| {
                seen.push((s, l.to_owned()));
                Tail::Raw
            })
            .await
            .unwrap_err();
        let Error::Tool(f) = err else { panic!("expected a tool failure") };
        assert_eq!(f.status, "exit status 3");
        assert!(f.tail.contains(&"out".to_string()) && f.tail.contains(&"err".to_string()));
        let text = std::fs::read_to_string(dir.path().join("logs/t.log")).unwrap();
        assert!(text.contains("$ cd ") && text.contains("out\n") && text.contains("[stderr] err\n"), "{text}");
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdout_is_captured_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = StageLog::discard();
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "printf 'a\\nb\\n'; exit 2"]);
        let out = c.run("t", &mut log, &[0, 2], true, &mut |_, _| Tail::Raw).await.unwrap();
        assert_eq!(out.code, 2);
        assert_eq!(out.stdout, "a\nb\n");
    }

    /// Processes whose command line contains `marker`.
    fn processes_with(marker: &str) -> Vec<String> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(marker) {
                    found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
                }
            }
        }
        found
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_background_process_holding_the_pipes_does_not_hang_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = StageLog::create(dir.path().join("t.log")).unwrap();
        let marker = "611.0917";
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", &format!("echo before; sleep {marker} & echo after")]);
        let started = std::time::Instant::now();
        let out = c.run("t", &mut log, &[0], true, &mut |_, _| Tail::Raw).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
        assert_eq!(out.stdout, "before\nafter\n");
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.contains("still holds its output open"), "{text}");
        // What was left of the group got SIGTERM.
        all_gone(marker).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_run_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = "612.0917";
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path())
            .args(["-c", &format!("sleep {marker} & sleep {marker}")])
            .stop_with(libc::SIGTERM);
        let mut log = StageLog::discard();
        let mut on_line = |_: Stream, _: &str| Tail::Raw;
        let run = c.run("t", &mut log, &[0], false, &mut on_line);
        assert!(tokio::time::timeout(std::time::Duration::from_secs(1), run).await.is_err());
        all_gone(marker).await;
    }

    /// Waits up to 5 s for every process with `marker` in its command line to be gone.
    async fn all_gone(marker: &str) {
        for _ in 0..50 {
            if processes_with(marker).is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("left running: {:?}", processes_with(marker));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_log_that_cannot_be_written_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = StageLog::append(PathBuf::from("/dev/full")).unwrap();
        let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "echo hello"]);
        let err = c.run("t", &mut log, &[0], false, &mut |_, _| Tail::Raw).await.unwrap_err();
        assert!(err.to_string().contains("writing the log /dev/full"), "{err}");
    }
}
