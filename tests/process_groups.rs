//! Tools die with their process group: a process a tool leaves behind holding its
//! output open cannot hang stamp, and a stamp killed with SIGKILL (which it cannot
//! catch) leaves no process of the tool's tree running.

mod common;

use std::time::{Duration, Instant};

use common::{Emulator, FLEET_TOML, Fleet, Run, processes, stage_status};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A marker unique to this test run, usable as a `sleep` duration.
fn marker(base: u32) -> String {
    format!("{base}.{}", std::process::id())
}

#[test]
fn a_process_left_holding_the_tools_output_does_not_hang_stamp() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let fake = common::repo().join("tests/fakes/terraform-grandchild-holds-pipe");
    fleet.write_config(&FLEET_TOML.replace("{tools}/terraform", &fake.display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let sleep = marker(600);
    let started = Instant::now();
    let out = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .env("FAKE_REAL_TERRAFORM", common::tool("terraform"))
        .env("FAKE_GRANDCHILD_SLEEP", &sleep)
        .output()
        .unwrap();
    let took = started.elapsed();
    Run::from(out, &["deploy", "acme"]).ok();
    // Each terraform run leaves a `sleep 600` behind; stamp waits a short drain per run, not 600 s.
    assert!(took < Duration::from_secs(240), "stamp took {took:?}");
    let log = fleet.log("acme", "vpc");
    assert!(log.contains("still holds its output open"), "{log}");
    wait_for("the left-over processes to be stopped", Duration::from_secs(10), || processes(&sleep, Some(fleet.path())).is_empty());
}

#[test]
fn sigkill_of_stamp_leaves_no_tool_running() {
    let emu = Emulator::start();
    let sleep = marker(3600);
    let tf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tf.path().join("vpc")).unwrap();
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(
        tf.path().join("vpc/main.tf"),
        format!("resource \"terraform_data\" \"slow\" {{\n  provisioner \"local-exec\" {{\n    command = \"sleep {sleep}\"\n  }}\n}}\n"),
    )
    .unwrap();
    std::fs::write(tf.path().join("frontends/production/main.tf"), "output \"public_url\" {\n  value = \"x\"\n}\n").unwrap();
    let fleet = Fleet::with_toml(&emu, &FLEET_TOML.replace("{repo}/tests/standin/terraform", &tf.path().display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let mut child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .env("STAMP_KILL_GRACE", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the provisioner's command to run", Duration::from_secs(120), || {
        processes(&sleep, None).iter().any(|p| p.contains(&format!("sleep {sleep}")))
    });
    let running = processes(&sleep, Some(fleet.path()));
    assert!(running.iter().any(|p| p.contains("terraform")), "terraform runs in the work dir: {running:?}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    // The watchdog forwards SIGINT (terraform's stop signal) and kills after STAMP_KILL_GRACE.
    wait_for("the tool's processes to stop", Duration::from_secs(30), || processes(&sleep, Some(fleet.path())).is_empty());
    assert!(killed.elapsed() < Duration::from_secs(30));
    // stamp died in the vpc stage: its journal says it started and never finished.
    let j = fleet.journal("acme").unwrap();
    let vpc = j["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "vpc").cloned();
    assert_eq!(vpc.as_ref().map(|v| v["status"].clone()), Some(serde_json::json!("running")), "{j:#}");
    assert_eq!(j["status"], "running");
}

/// stamp SIGKILLed (as the OOM killer or a CI runner's tree kill that reaches stamp
/// first would) while terraform uploads the vpc state slowly (the test's proxy holds
/// the PUT): terraform gets one graceful stop from its relay, its output keeps
/// reaching the stage log, it saves its state and releases its lock; a deploy
/// started at once waits for it (naming it) instead of touching the working copy
/// under it, then resumes and completes.
#[test]
fn a_killed_stamp_leaves_terraform_to_save_its_state_and_the_next_deploy_waits_for_it() {
    use common::FaultProxy;
    const BUCKET: &str = "tfstate-123456789012-acme";
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", "git_id = \"v1\"\n");
    // The state object itself (not its lock): held 8 s on its way to S3.
    proxy
        .set_rules(serde_json::json!([{"method": "PUT", "path": "/acme/vpc?x-id=PutObject", "action": "delay", "seconds": 8, "times": 1}]));
    let out = tempfile::tempdir().unwrap();
    let mut first = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .stdout(std::fs::File::create(out.path().join("first.out")).unwrap())
        .stderr(std::fs::File::create(out.path().join("first.err")).unwrap())
        .spawn()
        .unwrap();
    wait_for("terraform to begin uploading the vpc state", Duration::from_secs(180), || proxy.faults().iter().any(|f| f["rule"] == 0));
    let terraform = processes("terraform apply", Some(fleet.path()));
    assert!(!terraform.is_empty(), "terraform apply runs: {:?}", processes("", Some(fleet.path())));
    first.kill().unwrap(); // SIGKILL: stamp cannot catch it
    first.wait().unwrap();

    // At once, another deploy: it must not sync the working copy under the running terraform.
    let second = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let second = Run::from(second.wait_with_output().unwrap(), &["deploy", "acme", "--auto-approve", "--json"]).ok();
    let waited = second
        .stderr
        .lines()
        .find(|l| l.contains("waiting for the tools of an earlier stamp run"))
        .unwrap_or_else(|| panic!("the second deploy did not wait for the first one's terraform:\n{}", second.stderr));
    assert!(waited.contains("terraform apply") && waited.contains(".stamp/acme/.lock"), "{waited}");
    assert!(second.stderr.contains("resuming the run of"), "{}", second.stderr);
    assert_eq!(stage_status(&second.report(), "frontends"), "ok");

    // The first run's vpc log (kept as the previous one): terraform stopped once,
    // gracefully, and its own last lines are there, after stamp was gone.
    let log = std::fs::read_to_string(fleet.path().join(".stamp/acme/logs/vpc.previous.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let gone = lines.iter().position(|l| l.contains("is gone while terraform runs: sent it signal 2 once")).expect(&log);
    assert!(!log.contains("Two interrupts received") && !log.contains("data loss may have occurred"), "{log}");
    let after: Vec<&&str> = lines[gone + 1..].iter().collect();
    assert!(after.iter().any(|l| l.contains("Interrupt received")), "terraform's graceful shutdown, after stamp was gone:\n{log}");
    let last_tf = lines.iter().rposition(|l| l.starts_with('{') || l.starts_with("[stderr]")).expect(&log);
    assert!(last_tf > gone, "terraform's last lines came after stamp was gone:\n{log}");
    assert!(
        lines[last_tf + 1..].iter().all(|l| l.starts_with("stamp: terraform ended")),
        "the log ends with terraform's own last lines (and the relay's note of its end):\n{log}"
    );
    // What terraform created is in the state, and it released its lock.
    let state = fleet.state(BUCKET, "acme/vpc");
    assert_eq!(state["resources"].as_array().map(Vec::len), Some(1), "{state:#}");
    let objects = fleet.aws(&["s3", "ls", "--recursive", &format!("s3://{BUCKET}/")]);
    assert!(!objects.contains(".tflock"), "a state lock was left: {objects}");
    assert!(processes(&fleet.path().display().to_string(), Some(fleet.path())).is_empty());
}
