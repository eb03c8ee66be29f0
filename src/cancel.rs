//! Stopping a run. Two levels, from three sources:
//! - drain: start no new customer and no new stage; a running stage finishes. The
//!   scheduler drains on `--fail-fast`, `--max-failures` and a failed canary.
//! - interrupt: Ctrl-C, SIGTERM or SIGHUP (`signals`). It drains too, and the tool
//!   runner forwards the first one to every running tool once, gracefully; later
//!   only a second SIGINT is forwarded, never a SIGTERM or SIGHUP (the signal policy
//!   stays in `signals` and `tools::process`; what stamp prints, in `interrupt`).

use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    reason: Rc<RefCell<Option<String>>>,
}

impl Stop {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Starts nothing new from now on; the first reason given is kept.
    pub(crate) fn drain(&self, why: impl Into<String>) {
        let mut r = self.reason.borrow_mut();
        if r.is_none() {
            *r = Some(why.into());
        }
    }

    /// Why nothing new may start, if so.
    pub(crate) fn draining(&self) -> Option<String> {
        if crate::signals::interrupted() {
            return Some("interrupted".into());
        }
        self.reason.borrow().clone()
    }

    pub(crate) fn interrupted(&self) -> bool {
        crate::signals::interrupted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept() {
        let s = Stop::new();
        assert_eq!(s.draining(), None);
        let clone = s.clone();
        clone.drain("canary acme failed");
        s.drain("later");
        assert_eq!(s.draining().as_deref(), Some("canary acme failed"));
    }
}
