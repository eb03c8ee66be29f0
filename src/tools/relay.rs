//! The relay: a small process of stamp's own binary between stamp and each tool it
//! runs, so that stamp's death (SIGKILL, the OOM killer, a CI runner's tree kill that
//! reaches stamp first) leaves the tool able to finish:
//!
//! - The tool's stdout and stderr are pipes the relay reads, not stamp: it appends
//!   every line to the stage log and forwards it to stamp. When stamp is gone the
//!   lines keep reaching the log and the tool never writes into a broken pipe (a Go
//!   program such as terraform dies at its next write to one).
//! - Only the relay signals the tool's process group: stamp asks it to (`signal N`,
//!   `kill` on its stdin), and when stamp is gone (its stdin ends) the relay sends the
//!   tool's stop signal itself, once, unless stamp already had: terraform reads a
//!   second SIGINT as "exit at once", before its state is saved. After the grace
//!   period it kills the group.
//! - It keeps the customer's work lock open (an inherited descriptor, as the tool
//!   does), so the lock is held as long as the tools of a run live, not only stamp.
//!
//! It runs in a process group of its own (a terminal's Ctrl-C reaches stamp only) and
//! ignores SIGINT, SIGTERM and SIGHUP: it ends when the tool's output has ended (or
//! after `DRAIN_TIMEOUT` once the tool exited, if a process it left behind holds the
//! output open), once what the tool left in its process group is gone too (SIGTERM,
//! then SIGKILL). What it tells stamp, one line each on its stdout: `P <pid>` (the
//! tool started), `O <line>` / `E <line>` (a line of the tool's stdout / stderr),
//! `F <reason>` (the tool could not start), `W <error>` (the log could not be
//! written), `X <code>` or `X signal <n>` (the tool's end).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first argument that makes stamp's binary a relay (`main.rs`).
pub const ARG: &str = "__stamp-tool-relay";

/// How long the relay keeps reading after the tool exited. A process the tool left
/// in the background (`cmd &`) inherits the pipes; without this limit the relay (and
/// stamp) would wait for that process instead of the tool.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The relay's settings, from its command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub stamp_pid: u32,
    pub stop_signal: i32,
    pub grace: Duration,
    /// The stage log to append to; `None`: the lines go to stamp only.
    pub log: Option<std::path::PathBuf>,
    pub program: std::ffi::OsString,
    pub args: Vec<std::ffi::OsString>,
}

impl Options {
    /// The relay's arguments (after `ARG`).
    pub(crate) fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "--stamp-pid".into(),
            self.stamp_pid.to_string().into(),
            "--stop".into(),
            self.stop_signal.to_string().into(),
            "--grace".into(),
            self.grace.as_secs().to_string().into(),
            "--log".into(),
            self.log.as_ref().map(|l| l.as_os_str().to_owned()).unwrap_or_else(|| "-".into()),
            "--".into(),
            self.program.clone(),
        ];
        a.extend(self.args.iter().cloned());
        a
    }

    pub(crate) fn parse(args: &[std::ffi::OsString]) -> Result<Self, String> {
        let mut it = args.iter();
        let mut o = Options {
            stamp_pid: 0,
            stop_signal: libc::SIGINT,
            grace: Duration::from_secs(120),
            log: None,
            program: Default::default(),
            args: Vec::new(),
        };
        let value = |it: &mut std::slice::Iter<std::ffi::OsString>, name: &str| -> Result<String, String> {
            it.next().map(|v| v.to_string_lossy().into_owned()).ok_or(format!("{name} needs a value"))
        };
        while let Some(a) = it.next() {
            match a.to_str() {
                Some("--stamp-pid") => o.stamp_pid = value(&mut it, "--stamp-pid")?.parse().map_err(|e| format!("--stamp-pid: {e}"))?,
                Some("--stop") => o.stop_signal = value(&mut it, "--stop")?.parse().map_err(|e| format!("--stop: {e}"))?,
                Some("--grace") => o.grace = Duration::from_secs(value(&mut it, "--grace")?.parse().map_err(|e| format!("--grace: {e}"))?),
                Some("--log") => {
                    let l = it.next().ok_or("--log needs a value")?;
                    o.log = (l != "-").then(|| l.into());
                }
                Some("--") => {
                    o.program = it.next().cloned().ok_or("no program after --")?;
                    o.args = it.cloned().collect();
                    return Ok(o);
                }
                _ => return Err(format!("unknown argument {a:?}")),
            }
        }
        Err("no program (-- PROGRAM ARGS...)".into())
    }
}

/// `stamp __stamp-tool-relay ...`: runs the relay; returns the process's exit code.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    match Options::parse(args) {
        Ok(o) => run(o),
        Err(e) => {
            let _ = writeln!(std::io::stdout(), "F stamp's tool relay: {e}");
            2
        }
    }
}

enum Event {
    Eof,
    Exited(std::process::ExitStatus),
    Signal(i32),
    Kill,
    StampGone,
}

/// Where the lines go: the log (if any) and stamp (until it is gone).
struct Out {
    log: Option<std::fs::File>,
    log_error: Option<std::io::Error>,
    to_stamp: Option<std::io::Stdout>,
}

impl Out {
    fn log(&mut self, text: &[u8]) {
        if let Some(f) = self.log.as_mut()
            && let Err(e) = f.write_all(text)
        {
            self.log_error.get_or_insert(e);
        }
    }

    fn note(&mut self, text: &str) {
        self.log(format!("{text}\n").as_bytes());
    }

    fn tell(&mut self, frame: &[u8]) {
        if let Some(s) = self.to_stamp.as_mut()
            && (s.write_all(frame).is_err() || s.flush().is_err())
        {
            // stamp is gone: its end of the pipe is closed (SIGPIPE is ignored).
            self.to_stamp = None;
        }
    }
}

fn run(o: Options) -> i32 {
    // SAFETY: signal(2) with SIG_IGN, before any thread starts.
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, libc::SIG_IGN);
        }
    }
    let log = o.log.as_ref().map(|p| std::fs::OpenOptions::new().append(true).create(true).open(p));
    let mut out = Out { log: None, log_error: None, to_stamp: Some(std::io::stdout()) };
    match log {
        Some(Ok(f)) => out.log = Some(f),
        Some(Err(e)) => out.log_error = Some(e),
        None => {}
    }
    let name = std::path::Path::new(&o.program).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // stamp died before the relay started: nobody would read what the tool says.
    // SAFETY: getppid(2) has no preconditions.
    if o.stamp_pid != 0 && unsafe { libc::getppid() } as u32 != o.stamp_pid {
        out.note(&format!("stamp: stamp (pid {}) was gone before {name} started: not started", o.stamp_pid));
        return 1;
    }
    let mut cmd = Command::new(&o.program);
    cmd.args(&o.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: in the child before exec: signal(2) only, async-signal-safe. The signals
    // the relay ignores would stay ignored across exec.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.tell(format!("F could not start {}: {e}\n", std::path::Path::new(&o.program).display()).as_bytes());
            return 127;
        }
    };
    let pgid = child.id() as i32;
    out.tell(format!("P {pgid}\n").as_bytes());
    let out = Arc::new(Mutex::new(out));
    let (tx, rx) = mpsc::channel::<Event>();
    let mut readers = Vec::new();
    for (stderr, pipe) in [
        (false, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        (true, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ] {
        let Some(pipe) = pipe else { continue };
        let (tx, out) = (tx.clone(), out.clone());
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        // The log first, then stamp: a note stamp writes about a line
                        // lands after it.
                        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                        let mut text = Vec::with_capacity(line.len() + 10);
                        if stderr {
                            text.extend_from_slice(b"[stderr] ");
                        }
                        text.extend_from_slice(&line);
                        text.push(b'\n');
                        o.log(&text);
                        let mut frame = Vec::with_capacity(line.len() + 3);
                        frame.extend_from_slice(if stderr { b"E " } else { b"O " });
                        frame.extend_from_slice(&line);
                        frame.push(b'\n');
                        o.tell(&frame);
                    }
                }
            }
            let _ = tx.send(Event::Eof);
        }));
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            if let Ok(s) = status {
                let _ = tx.send(Event::Exited(s));
            }
        });
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut ctl = BufReader::new(std::io::stdin());
            let mut line = String::new();
            loop {
                line.clear();
                match ctl.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let t = line.trim();
                        if t == "kill" {
                            let _ = tx.send(Event::Kill);
                        } else if let Some(n) = t.strip_prefix("signal ").and_then(|n| n.parse().ok()) {
                            let _ = tx.send(Event::Signal(n));
                        }
                    }
                }
            }
            let _ = tx.send(Event::StampGone);
        });
    }
    drop(tx);
    let group = |sig: i32| {
        // SAFETY: kill(2) with a negative pid addresses the tool's process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    };
    let mut stops = 0u32;
    let mut stamp_gone = false;
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut open = readers.len();
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let mut terminated = false;
    let note = |text: String| out.lock().unwrap_or_else(|e| e.into_inner()).note(&text);
    loop {
        if open == 0 && exited.is_some() {
            break;
        }
        let next = [kill_at, drain_until].into_iter().flatten().min();
        let event = match next {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(e) => Some(e),
                Err(_) => break,
            },
        };
        match event {
            Some(Event::Eof) => open -= 1,
            Some(Event::Exited(s)) => {
                exited = Some(s);
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
                kill_at = None;
            }
            Some(Event::Signal(n)) if exited.is_none() => {
                if n == o.stop_signal {
                    stops += 1;
                }
                group(n);
            }
            Some(Event::Kill) if exited.is_none() => group(libc::SIGKILL),
            Some(Event::Signal(_) | Event::Kill) => {}
            Some(Event::StampGone) => {
                stamp_gone = true;
                out.lock().unwrap_or_else(|e| e.into_inner()).to_stamp = None;
                if exited.is_none() {
                    if stops == 0 {
                        stops = 1;
                        note(format!(
                            "stamp: stamp (pid {}) is gone while {name} runs: sent it signal {} once, to stop cleanly (it may save \
                             its state and release its lock); its output keeps coming to this log; it is killed if still running \
                             in {}s",
                            o.stamp_pid,
                            o.stop_signal,
                            o.grace.as_secs()
                        ));
                        group(o.stop_signal);
                    } else {
                        note(format!(
                            "stamp: stamp (pid {}) is gone while {name} stops: it had its stop signal already, not sent again; \
                             it is killed if still running in {}s",
                            o.stamp_pid,
                            o.grace.as_secs()
                        ));
                    }
                    kill_at.get_or_insert(Instant::now() + o.grace);
                }
            }
            None => {
                let now = Instant::now();
                if kill_at.is_some_and(|t| t <= now) {
                    kill_at = None;
                    note(format!("stamp: {name} still runs {}s after stamp was gone: killing its process group", o.grace.as_secs()));
                    group(libc::SIGKILL);
                }
                if drain_until.is_some_and(|t| t <= now) {
                    note(format!(
                        "stamp: {name} exited, but a process it started still holds its output open after {}s; stopped reading \
                         and sent SIGTERM to what is left of its process group ({pgid})",
                        DRAIN_TIMEOUT.as_secs()
                    ));
                    group(libc::SIGTERM);
                    terminated = true;
                    break;
                }
            }
        }
    }
    // What the tool left in its process group (a provisioner's command an
    // interrupted terraform did not wait for, a background process) goes with it:
    // SIGTERM, then SIGKILL if it is still there after DRAIN_TIMEOUT.
    if exited.is_some() && group_alive(pgid) {
        if !terminated {
            note(format!("stamp: {name} exited, leaving processes in its process group ({pgid}): sending them SIGTERM"));
            group(libc::SIGTERM);
        }
        let until = Instant::now() + DRAIN_TIMEOUT;
        while group_alive(pgid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if group_alive(pgid) {
            note(format!("stamp: processes of {name}'s process group ({pgid}) outlived SIGTERM: killing them"));
            group(libc::SIGKILL);
        }
    }
    let status = exited;
    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
    let end = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("X {c}\n"),
            (None, Some(n)) => format!("X signal {n}\n"),
            _ => "X -1\n".to_owned(),
        },
        None => "X -1\n".to_owned(),
    };
    if stamp_gone {
        let how = match status.and_then(|s| s.code()) {
            Some(c) => format!("exit status {c}"),
            None => format!("signal {}", status.and_then(|s| s.signal()).unwrap_or(-1)),
        };
        o.note(&format!("stamp: {name} ended ({how}) after stamp was gone"));
    }
    if let Some(e) = o.log_error.take() {
        o.tell(format!("W {e}\n").as_bytes());
    }
    o.tell(end.as_bytes());
    0
}

/// Whether any process of the group `pgid` is left.
fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip() {
        let o = Options {
            stamp_pid: 42,
            stop_signal: libc::SIGTERM,
            grace: Duration::from_secs(7),
            log: Some("/w/logs/vpc.log".into()),
            program: "/usr/bin/terraform".into(),
            args: vec!["apply".into(), "--".into(), "-x".into()],
        };
        assert_eq!(Options::parse(&o.to_args()).unwrap(), o);
        let none = Options { log: None, ..o };
        assert_eq!(Options::parse(&none.to_args()).unwrap().log, None);
        assert!(Options::parse(&["--bogus".into()]).is_err());
    }
}
