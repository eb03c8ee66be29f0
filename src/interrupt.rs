//! What stamp says when it is interrupted (the policy itself is in `signals`).
//!
//! A CI runner may kill stamp seconds after its first signal (GitHub Actions: SIGINT,
//! SIGTERM 7.5 s later, SIGKILL 2.5 s after that), so on each interrupt stamp prints
//! at once, on stderr, past any renderer's buffering: which customer and stage are
//! running, the tool's command and working directory, and for a terraform stack the
//! exact commands to check for a state lock left behind (`stamp status`, the AWS CLI
//! on `<key>.tflock`) and to release it (`terraform -chdir=<dir> force-unlock <LOCK
//! ID>`). Right after the first interrupt each stack reads its lock object and prints
//! the real lock ID; once its tools have stopped it checks again and says whether a
//! lock is left. stamp never runs `force-unlock` itself: only a person can know that
//! no other run holds that lock.
//!
//! What is running comes from the registry in `crate::running`.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::names::BucketName;
use crate::running::{Running, StateLock, running};
use crate::signals::{Action, Signal};
use crate::tools::process::StageLog;
use crate::tools::s3::AwsApi;
use crate::tools::terraform;

type Printer = Box<dyn Fn(&str) + Send + Sync>;

static PRINTER: Mutex<Option<Printer>> = Mutex::new(None);

/// Where the interrupt texts go instead of straight to stderr (the terminal renderer
/// prints them above its progress lines); `None` restores stderr.
pub(crate) fn set_printer(p: Option<Printer>) {
    *PRINTER.lock().unwrap_or_else(|e| e.into_inner()) = p;
}

/// Prints at once: through the printer, else one write to (unbuffered) stderr.
pub(crate) fn print(text: &str) {
    let printer = PRINTER.lock().unwrap_or_else(|e| e.into_inner());
    match printer.as_ref() {
        Some(p) => p(text.trim_end_matches('\n')),
        None => {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(format!("{}\n", text.trim_end_matches('\n')).as_bytes());
            let _ = err.flush();
        }
    }
}

/// Called by the signal handler for each signal: prints what it does and what runs.
pub(crate) fn announce(sig: Signal, action: Action) {
    print(&announcement(sig, action, &running()));
}

/// The text printed for a signal.
pub(crate) fn announcement(sig: Signal, action: Action, running: &[Running]) -> String {
    let sig = sig.name();
    let mut s = match action {
        Action::Stop => format!(
            "stamp: {sig} received: stopping gracefully. No new stage starts; each running tool got its stop signal once \
             and is left to finish cleanly (terraform saves its state and releases its lock). A second SIGINT (Ctrl-C) \
             stops the tools at once; SIGTERM and SIGHUP do not.\n"
        ),
        Action::KeepWaiting => format!(
            "stamp: {sig} received after the interrupt: NOT forwarded (it would make terraform exit at once, maybe before \
             its state is saved); still waiting for the tools to stop. Only a second SIGINT stops them at once.\n"
        ),
        Action::Escalate => {
            format!(
                "stamp: {sig} received again: stopping the tools at once; terraform may exit without saving its state or releasing its lock.\n"
            )
        }
    };
    if running.is_empty() {
        s.push_str("stamp: no stage is running.\n");
        return s;
    }
    let full = action == Action::Stop;
    for r in running {
        let who = if r.customer.is_empty() { r.stage.clone() } else { format!("{} {}", r.customer, r.stage) };
        let what = match (&r.command, &r.dir) {
            (Some(c), Some(d)) => format!("{c} (in {})", d.display()),
            (Some(c), None) => c.clone(),
            _ => "no tool running right now".to_owned(),
        };
        s.push_str(&format!("stamp:   running: {who}: {what}\n"));
        let Some(l) = &r.lock else { continue };
        if full {
            s.push_str(&format!(
                "stamp:     if it is killed before terraform stops, the state lock {} may be left behind. Check with:\n\
                 stamp:       {}\n\
                 stamp:       {}\n\
                 stamp:     and, once no run is active any more, release it with:\n\
                 stamp:       {}\n\
                 stamp:     where <LOCK ID> is the \"ID\" of that lock object (both commands above show it). stamp never runs force-unlock itself.\n",
                l.object(),
                l.status_command(),
                l.aws_command(),
                l.unlock_command("<LOCK ID>"),
            ));
        } else {
            s.push_str(&format!(
                "stamp:     a lock left behind: check `{}`, release `{}` (the ID is in {})\n",
                l.status_command(),
                l.unlock_command("<LOCK ID>"),
                l.object()
            ));
        }
    }
    s
}

/// How long stamp waits for S3 when it checks a lock after an interrupt.
const LOCK_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// When a lock is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// Right after the first interrupt, terraform still running.
    Interrupted,
    /// Once the stack's tools have stopped.
    Stopped,
}

/// Reads the lock object and prints what it means at `moment`, with the real lock ID.
/// The lock object as it is now: `None` when no lock is held. Gives up after
/// `LOCK_CHECK_TIMEOUT` (a stuck S3 must not hold up what stamp prints).
pub(crate) async fn read_lock(lock: &StateLock, api: &AwsApi) -> Result<Option<terraform::LockInfo>, String> {
    let read = async {
        let bucket = BucketName::parse(&lock.bucket).map_err(|e| e.to_string())?;
        terraform::read_lock(api, &mut StageLog::discard(), &lock.region, &bucket, &lock.key).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(LOCK_CHECK_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from S3 within {}s", LOCK_CHECK_TIMEOUT.as_secs())),
    }
}

pub(crate) async fn check_lock(api: &AwsApi, stage: &str, lock: &StateLock, moment: Moment) {
    print(&lock_text(stage, lock, moment, &read_lock(lock, api).await));
}

/// The text for a lock check's result.
pub(crate) fn lock_text(stage: &str, lock: &StateLock, moment: Moment, found: &Result<Option<terraform::LockInfo>, String>) -> String {
    let who = format!("{} {stage}", lock.customer);
    match (moment, found) {
        (_, Err(e)) => {
            format!("stamp: {who}: could not read {} ({e}); check for a lock left behind with `{}`", lock.object(), lock.status_command())
        }
        (Moment::Interrupted, Ok(Some(l))) => format!(
            "stamp: {who}: terraform holds the state lock {} (ID {}) while it stops, and releases it if it stops cleanly. \
             Only if it is killed first, release it (once no run is active) with:\nstamp:       {}",
            lock.object(),
            l.id,
            lock.unlock_command(&l.id)
        ),
        (Moment::Interrupted, Ok(None)) => format!("stamp: {who}: no state lock is held right now ({})", lock.object()),
        (Moment::Stopped, Ok(Some(l))) => format!(
            "stamp: {who}: a state lock is LEFT BEHIND: {} (ID {}, {} by {}, since {}). Once no other run is active, \
             release it with:\nstamp:       {}\nstamp:     (stamp does not release locks itself; `{}` shows it too)",
            lock.object(),
            l.id,
            l.operation,
            l.who,
            l.created,
            lock.unlock_command(&l.id),
            lock.status_command()
        ),
        (Moment::Stopped, Ok(None)) => {
            format!("stamp: {who}: terraform has stopped and no state lock is left behind ({} does not exist)", lock.object())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> StateLock {
        StateLock {
            customer: "acme".into(),
            bucket: "tfstate-1-acme".into(),
            key: "acme/vpc".into(),
            region: "eu-west-1".into(),
            dir: "/w/acme/terraform/vpc".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            config: None,
        }
    }

    fn vpc() -> Running {
        Running {
            customer: "acme".into(),
            stage: "vpc".into(),
            command: Some("terraform apply -json stamp.tfplan".into()),
            dir: Some("/w/acme/terraform/vpc".into()),
            lock: Some(lock()),
        }
    }

    #[test]
    fn the_first_interrupt_says_what_runs_and_how_to_check_and_release_the_lock() {
        let t = announcement(Signal::Int, Action::Stop, &[vpc()]);
        assert!(t.starts_with("stamp: SIGINT received: stopping gracefully."), "{t}");
        assert!(t.contains("running: acme vpc: terraform apply -json stamp.tfplan (in /w/acme/terraform/vpc)"), "{t}");
        assert!(t.contains("stamp status acme\n"), "{t}");
        assert!(
            t.contains("aws s3 cp s3://tfstate-1-acme/acme/vpc.tflock - --region eu-west-1 --endpoint-url http://127.0.0.1:9\n"),
            "{t}"
        );
        assert!(t.contains("terraform -chdir=/w/acme/terraform/vpc force-unlock <LOCK ID>\n"), "{t}");
        assert!(t.lines().all(|l| l.starts_with("stamp: ")), "{t}");
    }

    #[test]
    fn a_later_sigterm_says_it_is_not_forwarded_and_repeats_the_commands_briefly() {
        let t = announcement(Signal::Term, Action::KeepWaiting, &[vpc()]);
        assert!(t.contains("SIGTERM received after the interrupt: NOT forwarded"), "{t}");
        assert!(t.contains("check `stamp status acme`, release `terraform -chdir=/w/acme/terraform/vpc force-unlock <LOCK ID>`"), "{t}");
        let none = announcement(Signal::Hup, Action::Stop, &[]);
        assert!(none.contains("no stage is running"), "{none}");
    }

    #[test]
    fn lock_checks_give_the_real_id() {
        let info =
            terraform::LockInfo { who: "ci@host".into(), operation: "OperationTypeApply".into(), created: "t".into(), id: "5e1d".into() };
        let left = lock_text("vpc", &lock(), Moment::Stopped, &Ok(Some(info.clone())));
        assert!(left.contains("LEFT BEHIND") && left.contains("terraform -chdir=/w/acme/terraform/vpc force-unlock 5e1d"), "{left}");
        let held = lock_text("vpc", &lock(), Moment::Interrupted, &Ok(Some(info)));
        assert!(held.contains("holds the state lock") && held.contains("force-unlock 5e1d"), "{held}");
        assert!(lock_text("vpc", &lock(), Moment::Stopped, &Ok(None)).contains("no state lock is left behind"));
        let quoted = StateLock { dir: "/a b/vpc".into(), config: Some("/f/my fleet.toml".into()), ..lock() };
        assert_eq!(quoted.unlock_command("x"), "terraform -chdir='/a b/vpc' force-unlock x");
        assert_eq!(quoted.status_command(), "stamp --config '/f/my fleet.toml' status acme");
    }
}
