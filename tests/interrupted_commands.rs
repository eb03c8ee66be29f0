//! Interrupts of plan, drift and destroy (deploy's are in tests/interrupts.rs and
//! tests/process_groups.rs): each exits 130 with terraform stopped gracefully and no
//! state lock left, and the next run completes. Real stamp, terraform and AWS CLI on
//! the emulator; the test's fault proxy holds one of terraform's S3 requests so the
//! interrupt finds terraform busy.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Emulator, FaultProxy, Fleet, Run};
use serde_json::json;

const BUCKET: &str = "tfstate-123456789012-acme";

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs stamp with `args`, SIGINTs it once terraform's request matching `rule` is
/// held by the proxy, and returns how it ended.
fn interrupted(fleet: &Fleet, proxy: &FaultProxy, args: &[&str], rule: serde_json::Value) -> Run {
    // The proxy's log of faults keeps the earlier runs' ones.
    let before = proxy.faults().len();
    proxy.set_rules(json!([rule]));
    let child = fleet.stamp_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("terraform's held request", Duration::from_secs(240), || proxy.faults().len() > before);
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let run = Run::from(child.wait_with_output().unwrap(), args);
    proxy.set_rules(json!([]));
    run
}

fn no_lock_left(fleet: &Fleet) {
    let objects = fleet.aws(&["s3", "ls", "--recursive", &format!("s3://{BUCKET}/")]);
    assert!(!objects.contains(".tflock"), "a state lock was left behind:\n{objects}");
}

#[test]
fn plan_drift_and_destroy_interrupted_exit_130_leave_no_lock_and_the_next_run_completes() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    // terraform (aws-sdk-go), not stamp's own SDK: its read of the frontends state.
    let read_frontends = json!({"method": "GET", "path": "/acme/frontends/production?x-id=GetObject", "agent": "aws-sdk-go", "action": "delay", "seconds": 20, "times": 1});

    for args in [&["plan", "acme", "--json"][..], &["drift", "acme", "--json"]] {
        let run = interrupted(&fleet, &proxy, args, read_frontends.clone()).code(130);
        let report = run.report();
        let frontends = report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "frontends").cloned().unwrap_or_default();
        assert_eq!(frontends["status"], "interrupted", "stamp {args:?}: {report:#}");
        let log = fleet.log("acme", "frontends");
        assert!(log.contains("interrupt 1 received, sending signal 2"), "{log}");
        assert!(!log.contains("Two interrupts received"), "{log}");
        no_lock_left(&fleet);
        // The next run completes: nothing pending, nothing drifted.
        fleet.stamp(&args[..2]).ok();
    }

    // destroy: held while terraform saves the emptied frontends state.
    let save_frontends = json!({"method": "PUT", "path": "/acme/frontends/production?x-id=PutObject", "agent": "aws-sdk-go", "action": "delay", "seconds": 8, "times": 1});
    let run = interrupted(&fleet, &proxy, &["destroy", "acme", "--auto-approve"], save_frontends).code(130);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    let log = fleet.log("acme", "frontends");
    assert!(log.contains("Interrupt received") && !log.contains("Two interrupts received"), "terraform stopped gracefully:\n{log}");
    no_lock_left(&fleet);
    // terraform finished saving what it destroyed; the vpc was not touched.
    let fe = fleet.state(BUCKET, "acme/frontends/production");
    assert!(fe["resources"].as_array().unwrap().iter().all(|r| r["mode"] != "managed"), "{fe:#}");
    assert_eq!(fleet.state(BUCKET, "acme/vpc")["resources"].as_array().unwrap().len(), 1);
    // The next destroy picks up where it stopped: the frontends are gone, the vpc goes.
    let again = fleet.stamp(&["destroy", "acme", "--auto-approve", "--json"]).ok().report();
    let status = |s: &str| again["stages"].as_array().unwrap().iter().find(|x| x["name"] == s).unwrap()["status"].clone();
    assert_eq!(status("frontends"), "skipped", "{again:#}");
    assert_eq!(status("vpc"), "ok", "{again:#}");
    assert!(fleet.state(BUCKET, "acme/vpc")["resources"].as_array().unwrap().is_empty());
}
