//! Real signals: stamp forwards an interrupt to the running tool (whose own
//! graceful shutdown runs), does not forward a SIGTERM that follows it, forwards a
//! second SIGINT at once, kills the tool's process group after the grace period, and
//! exits 130. (tests/interrupts.rs: the same against terraform busy saving its state.)

mod common;

use std::time::{Duration, Instant};

use common::{Emulator, FLEET_TOML, Fleet, Run};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigint(pid: u32) {
    send(pid, libc::SIGINT);
}

fn send(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn slow_stacks() -> tempfile::TempDir {
    let tf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tf.path().join("vpc")).unwrap();
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(
        tf.path().join("vpc/main.tf"),
        "resource \"terraform_data\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"sleep 120\"\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(tf.path().join("frontends/production/main.tf"), "output \"public_url\" {\n  value = \"x\"\n}\n").unwrap();
    tf
}

#[test]
fn interrupt_reaches_terraform_which_shuts_down_gracefully() {
    let emu = Emulator::start();
    let tf = slow_stacks();
    let fleet = Fleet::with_toml(&emu, &FLEET_TOML.replace("{repo}/tests/standin/terraform", &tf.path().display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("terraform to start applying", Duration::from_secs(120), || fleet.log("acme", "vpc").contains("\"type\":\"apply_start\""));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    sigint(child.id());
    let run = Run::from(child.wait_with_output().unwrap(), &["deploy", "acme"]).code(130);
    assert!(started.elapsed() < Duration::from_secs(60), "stamp took {:?} to stop", started.elapsed());
    assert!(run.stderr.contains("interrupted during vpc"), "{}", run.stderr);
    let log = fleet.log("acme", "vpc");
    assert!(log.contains("interrupt 1 received, sending signal 2"), "{log}");
    assert!(log.contains("Interrupt received"), "terraform's own graceful shutdown ran:\n{log}");
    // Terraform released its S3 lock on the way out.
    let objects = fleet.aws(&["s3", "ls", "--recursive", "s3://tfstate-123456789012-acme/"]);
    assert!(!objects.contains(".tflock"), "{objects}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fleet.path().join(".stamp/acme/last-run.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "interrupted");
    // The run journal: the vpc stage was interrupted, never "done"; the next deploy resumes there.
    let j = fleet.journal("acme").unwrap();
    assert_eq!(j["status"], "interrupted", "{j:#}");
    let states: Vec<(&str, &str)> =
        j["stages"].as_array().unwrap().iter().map(|s| (s["stage"].as_str().unwrap(), s["status"].as_str().unwrap())).collect();
    assert_eq!(states, [("bucket", "done"), ("vpc", "interrupted")]);
}

#[test]
fn a_tool_that_ignores_interrupts_gets_no_sigterm_but_a_second_sigint_at_once_and_is_killed_after_the_grace_period() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let fake = common::repo().join("tests/fakes/terraform-ignores-sigint");
    fleet.write_config(&FLEET_TOML.replace("{tools}/terraform", &fake.display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let signal_log = fleet.path().join("signals.txt");
    let child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .env("FAKE_SIGNAL_LOG", &signal_log)
        .env("STAMP_KILL_GRACE", "3")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fake terraform to start", Duration::from_secs(120), || {
        std::fs::read_to_string(&signal_log).is_ok_and(|s| s.contains("pid"))
    });
    let pid: i32 = std::fs::read_to_string(&signal_log).unwrap().lines().next().unwrap().trim_start_matches("pid ").parse().unwrap();
    sigint(child.id());
    wait_for("the first interrupt to be forwarded", Duration::from_secs(5), || {
        std::fs::read_to_string(&signal_log).unwrap().matches("INT").count() == 1
    });
    // A CI runner's SIGTERM after its SIGINT is not passed on (it would be SIGINT, the
    // fake's stop signal, and count as a second interrupt).
    send(child.id(), libc::SIGTERM);
    wait_for("stamp to note the SIGTERM", Duration::from_secs(5), || {
        fleet.log("acme", "vpc").contains("SIGTERM received after the interrupt: not forwarded")
    });
    assert_eq!(std::fs::read_to_string(&signal_log).unwrap().matches("INT").count(), 1, "the SIGTERM was forwarded");
    sigint(child.id());
    wait_for("the second interrupt to be forwarded", Duration::from_secs(2), || {
        std::fs::read_to_string(&signal_log).unwrap().matches("INT").count() == 2
    });
    let started = Instant::now();
    let run = Run::from(child.wait_with_output().unwrap(), &["deploy", "acme"]).code(130);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "killed after {waited:?}");
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the fake tool (pid {pid}) is still running");
    assert!(fleet.log("acme", "vpc").contains("grace period over, killing"), "{}", run.stderr);
}
