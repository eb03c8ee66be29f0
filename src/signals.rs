//! The signal policy, in one place. Children run in their own process group so a
//! terminal's Ctrl-C reaches stamp only; stamp forwards the first interrupt to the
//! running tool (the signal that tool stops cleanly on), forwards a second one at
//! once, and kills the group only after a grace period. SIGTERM (what CI runners
//! send on cancel) and SIGHUP (the terminal went away) count as interrupts too:
//! the tools run in their own process groups, so nothing else would stop them.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

static INTERRUPTS: OnceLock<watch::Receiver<u32>> = OnceLock::new();

/// Installs the handlers; call once, inside the runtime, before any tool runs.
/// Fails when a handler cannot be installed: Ctrl-C would then kill stamp and leave
/// the tools, in their own process groups, running.
pub fn install() -> Result<(), crate::error::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| crate::error::Error::stage(format!("cannot install the {name} handler: {e}")))
    };
    let (mut int, mut term, mut hup) = (
        handler(SignalKind::interrupt(), "SIGINT")?,
        handler(SignalKind::terminate(), "SIGTERM")?,
        handler(SignalKind::hangup(), "SIGHUP")?,
    );
    let (tx, rx) = watch::channel(0u32);
    if INTERRUPTS.set(rx).is_err() {
        return Ok(());
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    Ok(())
}

/// Whether stamp has received an interrupt.
pub fn interrupted() -> bool {
    INTERRUPTS.get().is_some_and(|r| *r.borrow() > 0)
}

/// A receiver that wakes on every new interrupt.
pub fn subscribe() -> Option<watch::Receiver<u32>> {
    INTERRUPTS.get().cloned()
}

/// How long a tool gets to stop cleanly after the first interrupt before its
/// process group is killed. `STAMP_KILL_GRACE` (seconds) overrides it.
pub fn grace_period() -> Duration {
    std::env::var("STAMP_KILL_GRACE").ok().and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs).unwrap_or(Duration::from_secs(120))
}

/// Sends `sig` to every process of the group led by `pgid`.
pub fn signal_group(pgid: u32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid addresses a process group; no memory is touched.
        unsafe {
            libc::kill(-(pgid as i32), sig);
        }
    }
}
