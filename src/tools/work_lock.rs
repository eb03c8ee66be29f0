//! The per-customer work lock: one stamp run per customer at a time, held on by the
//! tools a run started (they inherit it through `process::holding`), so a run that
//! finds it held by a dead stamp's tools waits for them.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::events::Emitter;

/// One stamp run per customer at a time: a second one would share the working copy.
/// The lock (an flock on `<work>/.lock`) is held by stamp and, through an inherited
/// descriptor, by every tool it runs and their relays: if stamp died while a tool
/// still runs (finishing and saving its state), the lock is still held. Then this
/// run waits for those processes, naming them, as long as the dead run's grace
/// period lets them run (and a little more); another live stamp run is refused.
pub(crate) async fn lock_work_dir(work: &Path, ui: &Emitter) -> Result<std::fs::File, Error> {
    use std::io::Write;
    let path = work.join(".lock");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::work_dir(format!("opening {}", path.display()), e))?;
    let wait = crate::signals::grace_period() + LOCK_WAIT_MARGIN;
    let started = Instant::now();
    let mut said = false;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(format!("locking {}", path.display()), e)),
        }
        let holder = std::fs::read_to_string(&path).ok().and_then(|t| LockHolder::parse(&t));
        let tools = match holder {
            // Its tools (and their relays) hold the lock after it: wait for them.
            Some(h) if !h.alive() => lock_holders(&path),
            Some(h) => {
                return Err(Error::usage_hint(
                    format!("another stamp run (pid {}) is working on this customer (lock {})", h.pid, path.display()),
                    "wait for it to finish; the lock is released when that process and its tools exit",
                ));
            }
            None => {
                return Err(Error::usage_hint(
                    format!("another stamp run is working on this customer (lock {})", path.display()),
                    "wait for it to finish; the lock is released when that process exits",
                ));
            }
        };
        let named = if tools.is_empty() { "its last tool (exiting now)".to_owned() } else { tools.join("; ") };
        if crate::signals::interrupted() {
            return Err(Error::Interrupted(None));
        }
        if started.elapsed() > wait {
            return Err(Error::usage_hint(
                format!(
                    "the tools of an earlier stamp run that is gone still hold this customer's lock {} after {}s: {named}",
                    path.display(),
                    wait.as_secs()
                ),
                "it may still be saving a state: wait for it, or stop it (kill -INT <pid>, then check `stamp status`)",
            ));
        }
        if !said {
            said = true;
            ui.note(&format!(
                "waiting for the tools of an earlier stamp run that is gone (it was killed?) to finish: {named}; they hold the \
                 lock {} and may be saving a state. Not touching the working copy until they are done (at most {}s)",
                path.display(),
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Who holds it, for a run that finds it held.
    let _ = f.set_len(0);
    let _ = f.write_all(LockHolder::me().text().as_bytes());
    Ok(f)
}

/// How much longer than the grace period a run waits for a dead run's tools.
const LOCK_WAIT_MARGIN: Duration = Duration::from_secs(30);

/// The stamp process that took a work lock: its pid and start time (`/proc/<pid>/stat`
/// field 22), so a pid reused by another process is not taken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LockHolder {
    pid: u32,
    start: u64,
}

impl LockHolder {
    fn me() -> Self {
        let pid = std::process::id();
        Self { pid, start: process_start(pid).unwrap_or(0) }
    }

    fn text(&self) -> String {
        format!("stamp pid {} start {}\n", self.pid, self.start)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut w = text.split_whitespace();
        match (w.next(), w.next(), w.next(), w.next(), w.next()) {
            (Some("stamp"), Some("pid"), Some(pid), Some("start"), Some(start)) => {
                Some(Self { pid: pid.parse().ok()?, start: start.parse().ok()? })
            }
            _ => None,
        }
    }

    fn alive(&self) -> bool {
        process_start(self.pid) == Some(self.start)
    }
}

/// A process's start time (clock ticks after boot), from `/proc/<pid>/stat`.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count after its end.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// The processes that have `lock` open, as "pid N: command line" (shortened); the
/// relays (stamp's own) last.
fn lock_holders(lock: &Path) -> Vec<String> {
    let target = lock.canonicalize().unwrap_or_else(|_| lock.to_path_buf());
    let mut tools = Vec::new();
    let mut relays = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let holds = std::fs::read_dir(e.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == target));
        if !holds || pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let words: Vec<String> =
            cmd.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        if words.get(1).is_some_and(|w| w == crate::tools::relay::ARG) {
            relays.push(format!("pid {pid}: stamp's tool relay"));
            continue;
        }
        let mut shown =
            words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    if i == 0 { Path::new(w).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() } else { w.clone() }
                })
                .collect::<Vec<_>>()
                .join(" ");
        if shown.chars().count() > 120 {
            shown = format!("{}...", shown.chars().take(117).collect::<String>());
        }
        tools.push(format!("pid {pid}: {shown}"));
    }
    tools.sort();
    tools.extend(relays);
    tools
}
