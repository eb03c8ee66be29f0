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
pub fn install() {
    let (tx, rx) = watch::channel(0u32);
    if INTERRUPTS.set(rx).is_err() {
        return;
    }
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
            }
            tx.send_modify(|n| *n += 1);
        }
    });
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
