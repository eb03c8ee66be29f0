//! The signal policy, in one place. Children run in their own process group so a
//! terminal's Ctrl-C reaches stamp only, and stamp decides what the tools get:
//!
//! - The first interrupt of any kind (SIGINT: Ctrl-C or GitHub Actions' cancel;
//!   SIGTERM: GitLab, Travis, GitHub 7.5 s after its SIGINT; SIGHUP: the terminal went
//!   away) stops the run gracefully: no new stage starts, and each running tool gets
//!   the signal it stops cleanly on, once (`tools::process` asks the tool's relay,
//!   `tools::relay`, which alone signals the tool's group). Terraform then finishes
//!   what it is doing, saves its state and releases its lock.
//! - A later SIGTERM or SIGHUP is NOT forwarded: CI runners send SIGTERM after their
//!   SIGINT as a matter of course, and a second interrupt makes terraform exit at once
//!   ("data loss may have occurred"), maybe before its state is saved. stamp says it
//!   keeps waiting, and prints again how to check and release a state lock.
//! - Only a second SIGINT (a person pressing Ctrl-C again) escalates: it is forwarded
//!   at once, and terraform stops without waiting.
//! - Whatever comes, the tool's process group is killed once the grace period after
//!   the first interrupt is over (`STAMP_KILL_GRACE`), and stamp exits 130.
//! - If stamp itself dies (SIGKILL, the OOM killer), each tool's relay sends it its
//!   stop signal, once (not again if stamp had), keeps its output going to the stage
//!   log, and kills its group after the grace period; the customer's work lock stays
//!   held until the tool and its relay are gone.
//!
//! On each interrupt stamp prints, at once and on stderr whatever the renderer, which
//! customer and stage are running, their command and working directory, and the
//! commands to check for and release a state lock left behind (`interrupt`). It never
//! runs `force-unlock` itself.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

/// The signals stamp handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }
}

/// What one signal does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The first interrupt: stop gracefully; each running tool gets its stop signal once.
    Stop,
    /// A SIGINT after the first interrupt: forwarded to the tools at once.
    Escalate,
    /// A SIGTERM or SIGHUP after the first interrupt: not forwarded; stamp keeps
    /// waiting for the tools to finish stopping.
    KeepWaiting,
}

/// The interrupts received so far and how many of them the tools are to get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Interrupts {
    pub received: u32,
    /// How many signals each running tool is sent in all (the first and each escalation).
    pub forward: u32,
    /// The last signal and what it did.
    pub last: Option<(Signal, Action)>,
}

impl Interrupts {
    /// What `sig` does, given the interrupts received before it.
    pub(crate) fn decide(&self, sig: Signal) -> Action {
        match (self.received, sig) {
            (0, _) => Action::Stop,
            (_, Signal::Int) => Action::Escalate,
            (_, Signal::Term | Signal::Hup) => Action::KeepWaiting,
        }
    }

    /// Records `sig` and returns what it does.
    pub(crate) fn receive(&mut self, sig: Signal) -> Action {
        let action = self.decide(sig);
        self.received += 1;
        if action != Action::KeepWaiting {
            self.forward += 1;
        }
        self.last = Some((sig, action));
        action
    }
}

static INTERRUPTS: OnceLock<watch::Receiver<Interrupts>> = OnceLock::new();

/// Installs the handlers; call once, inside the runtime, before any tool runs.
/// `announce` is called for each signal, before the tools hear of it (the caller's
/// printer: `interrupt::announce`, which sits above the tools this module serves).
/// Fails when a handler cannot be installed: Ctrl-C would then kill stamp and leave
/// the tools, in their own process groups, running.
pub(crate) fn install(announce: fn(Signal, Action)) -> Result<(), crate::error::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| crate::error::Error::stage(format!("cannot install the {name} handler: {e}")))
    };
    let (mut int, mut term, mut hup) = (
        handler(SignalKind::interrupt(), "SIGINT")?,
        handler(SignalKind::terminate(), "SIGTERM")?,
        handler(SignalKind::hangup(), "SIGHUP")?,
    );
    let (tx, rx) = watch::channel(Interrupts::default());
    if INTERRUPTS.set(rx).is_err() {
        return Ok(());
    }
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
                _ = hup.recv() => Signal::Hup,
            };
            let mut state = *tx.borrow();
            let action = state.receive(sig);
            // Said before the tools are signalled: a CI runner may kill stamp soon.
            announce(sig, action);
            tx.send_replace(state);
        }
    });
    Ok(())
}

/// Whether stamp has received an interrupt.
pub(crate) fn interrupted() -> bool {
    INTERRUPTS.get().is_some_and(|r| r.borrow().received > 0)
}

/// A receiver that wakes on every new interrupt.
pub(crate) fn subscribe() -> Option<watch::Receiver<Interrupts>> {
    INTERRUPTS.get().cloned()
}

/// Resolves on the next interrupt after `subscribe` gave `rx` (never, without signal
/// handling): for a `select!` that stops waiting when the run is interrupted.
pub(crate) async fn next(rx: &mut Option<watch::Receiver<Interrupts>>) {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// How long a tool gets to stop cleanly after the first interrupt before its
/// process group is killed. `STAMP_KILL_GRACE` (seconds, checked in `env_vars`)
/// overrides it.
pub(crate) fn grace_period() -> Duration {
    crate::env_vars::settings().kill_grace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(signals: &[Signal]) -> (Vec<Action>, Interrupts) {
        let mut s = Interrupts::default();
        let actions = signals.iter().map(|&sig| s.receive(sig)).collect();
        (actions, s)
    }

    #[test]
    fn github_actions_cancel_stops_gracefully_and_its_sigterm_does_not_escalate() {
        let (actions, s) = run(&[Signal::Int, Signal::Term]);
        assert_eq!(actions, [Action::Stop, Action::KeepWaiting]);
        assert_eq!((s.received, s.forward), (2, 1));
    }

    #[test]
    fn any_signal_first_stops_gracefully() {
        for sig in [Signal::Int, Signal::Term, Signal::Hup] {
            assert_eq!(run(&[sig]).0, [Action::Stop], "{sig:?}");
        }
    }

    #[test]
    fn only_a_second_sigint_escalates() {
        assert_eq!(run(&[Signal::Term, Signal::Int]).0, [Action::Stop, Action::Escalate]);
        assert_eq!(run(&[Signal::Int, Signal::Int]).0, [Action::Stop, Action::Escalate]);
        assert_eq!(run(&[Signal::Term, Signal::Term, Signal::Hup]).0, [Action::Stop, Action::KeepWaiting, Action::KeepWaiting]);
        let (actions, s) = run(&[Signal::Int, Signal::Term, Signal::Hup, Signal::Int]);
        assert_eq!(actions, [Action::Stop, Action::KeepWaiting, Action::KeepWaiting, Action::Escalate]);
        assert_eq!((s.received, s.forward, s.last), (4, 2, Some((Signal::Int, Action::Escalate))));
    }
}
