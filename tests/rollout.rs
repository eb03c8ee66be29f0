//! `stamp rollout` with the real tools against the emulator and the stand-in stacks:
//! waves over a 20-customer fleet, the budget that halts it, a SIGKILL and a resume
//! from another process that deploys no customer twice, a second rollout refused,
//! pause, resume and cancel from separate invocations, and the record in S3.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Emulator, Fleet, Run};
use serde_json::Value;

const BUCKET: &str = "stamp-rollouts-123456789012-eu-west-1";
const CURRENT: &str = "stamp/rollouts/current.json";

/// A fleet of `n` customers c00.. whose terraform runs are written down (`runs.txt`:
/// the subcommand and the working directory of each), with `[rollout]` as given.
fn fleet(emu: &Emulator, n: usize, rollout: &str, canary: &str) -> Fleet {
    let fleet = Fleet::new(emu);
    let runs = fleet.path().join("runs.txt");
    let wrapper = fleet.path().join("terraform-counted");
    std::fs::write(
        &wrapper,
        format!("#!/bin/bash\necho \"$1 $PWD\" >> {}\nexec {} \"$@\"\n", runs.display(), common::tool("terraform").display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let toml = common::FLEET_TOML
        .replace("terraform = \"{tools}/terraform\"", &format!("terraform = \"{}\"", wrapper.display()))
        .replace("[fleet]\n", &format!("[fleet]\ncanary = [{canary}]\n"));
    fleet.write_config(&format!("{toml}\n[rollout]\n{rollout}\n"));
    for i in 0..n {
        good(&fleet, i);
    }
    fleet
}

fn name(i: usize) -> String {
    format!("c{i:02}")
}

fn good(fleet: &Fleet, i: usize) {
    fleet.customer(&name(i), &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{i}.0.0/16\"\n"));
}

/// A customer whose frontends stack fails (the stand-in's `fail.standin`).
fn broken(fleet: &Fleet, i: usize) {
    fleet.customer(
        &name(i),
        &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{i}.0.0/16\"\n[frontends.vars]\ninstance_type = \"fail.standin\"\n"),
    );
}

/// The terraform plans run for customer `c` so far: each deploy of it plans its stacks.
fn plans(fleet: &Fleet, c: &str) -> usize {
    let own = format!("/.stamp/{c}/");
    std::fs::read_to_string(fleet.path().join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("plan ") && l.contains(&own))
        .count()
}

/// The record in S3, or `None`.
fn record(fleet: &Fleet, key: &str) -> Option<Value> {
    let out = fleet.aws_raw(&["s3", "cp", &format!("s3://{BUCKET}/{key}"), "-"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn outcome(r: &Value, c: &str) -> String {
    r["customers"].as_array().unwrap().iter().find(|x| x["name"] == c).unwrap_or_else(|| panic!("no {c} in {r:#}"))["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn with_outcome(r: &Value, o: &str) -> Vec<String> {
    r["customers"].as_array().unwrap().iter().filter(|x| x["outcome"] == o).map(|x| x["name"].as_str().unwrap().to_owned()).collect()
}

fn spawn(fleet: &Fleet, args: &[&str]) -> Child {
    fleet.stamp_cmd(args).env("STAMP_ROLLOUT_HEARTBEAT", "2").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn stamp(fleet: &Fleet, args: &[&str]) -> Run {
    let out = fleet.stamp_cmd(args).env("STAMP_ROLLOUT_HEARTBEAT", "2").output().unwrap();
    Run::from(out, args)
}

fn wait_for(what: &str, timeout: Duration, child: &mut Child, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("stamp ended ({status}) before {what}:\n{err}");
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twenty_customers_in_waves_halt_on_the_budget_and_resume_after_a_kill_without_deploying_anyone_twice() {
    let emu = Emulator::start();
    // One failure is more than the budget of 0: it halts, and the waves deploy one
    // customer at a time (the budget left plus one).
    let fleet = fleet(&emu, 20, "waves = [\"1\", \"25%\", \"100%\"]\nsoak = \"2s\"\nmax_failures = 0", "\"c19\"");
    broken(&fleet, 2);
    let run = stamp(&fleet, &["rollout", "--all", "--parallel", "4", "--auto-approve", "--json"]).code(1);
    let out = run.json();
    assert_eq!(out["rollout"]["state"], "halted", "{out:#}");
    assert_eq!(out["rollout"]["waves"][0]["customers"], serde_json::json!(["c19"]), "the canary is the first wave");
    assert_eq!(out["rollout"]["waves"][1]["customers"], serde_json::json!(["c00", "c01", "c02", "c03"]));
    assert_eq!(out["rollout"]["waves"][2]["customers"].as_array().unwrap().len(), 15);
    assert!(run.stderr.contains("halted") && run.stderr.contains("c02"), "{}", run.stderr);
    assert!(run.stderr.contains("] wave 1/3: soak "), "the soak's countdown is shown: {}", run.stderr);
    assert!(run.stderr.contains("wave 1/3 done; 0 failure(s), budget left 0 of 0"), "{}", run.stderr);
    assert!(run.stderr.contains("budget left 0 of 0, 1 at once"), "{}", run.stderr);
    let r = record(&fleet, CURRENT).expect("a halted rollout stays the fleet's current one");
    assert_eq!(r["state"], "halted");
    assert!(r["reason"].as_str().unwrap().contains("c02"), "{r:#}");
    assert_eq!(outcome(&r, "c02"), "failed");
    assert_eq!(outcome(&r, "c03"), "pending", "no apply starts once the budget is exceeded");
    assert_eq!(with_outcome(&r, "succeeded"), ["c19", "c00", "c01"]);
    for i in 4..19 {
        assert_eq!(plans(&fleet, &name(i)), 0, "{} is in a wave that never started", name(i));
    }
    let id = r["id"].as_str().unwrap().to_owned();

    // A second rollout is refused, naming the first; a resume needs --retry-failed.
    let second = stamp(&fleet, &["rollout", "c05", "--auto-approve"]).code(2);
    assert!(second.stderr.contains(&id) && second.stderr.contains("halted") && second.stderr.contains("started by"), "{}", second.stderr);
    stamp(&fleet, &["rollout", "--resume", "--auto-approve"]).code(2).stderr_has("--retry-failed");

    // Fixed, resumed with the failed one retried; SIGKILLed in the middle of wave 3.
    good(&fleet, 2);
    let mut child = spawn(&fleet, &["rollout", "--resume", "--retry-failed", "--auto-approve"]);
    wait_for("three customers of wave 3 deployed", Duration::from_secs(600), &mut child, || {
        record(&fleet, CURRENT).is_some_and(|r| with_outcome(&r, "succeeded").len() >= 9)
    });
    // While it runs: a resume and a new rollout are both refused.
    let r = stamp(&fleet, &["rollout", "--resume", "--auto-approve"]).code(2);
    assert!(r.stderr.contains(&format!("pid {}", child.id())), "{}", r.stderr);
    stamp(&fleet, &["rollout", "c07", "--auto-approve"]).code(2).stderr_has(&id);
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = record(&fleet, CURRENT).unwrap();
    assert_eq!(at_kill["state"], "running", "{at_kill:#}");
    let finished = with_outcome(&at_kill, "succeeded");
    let counts: Vec<usize> = finished.iter().map(|c| plans(&fleet, c)).collect();

    // Another process takes it over at once (its holder's pid is gone) and finishes it.
    let done = stamp(&fleet, &["rollout", "--resume", "--auto-approve", "--json"]).ok();
    assert!(done.stderr.contains("taking over") && done.stderr.contains("that process is gone"), "{}", done.stderr);
    let out = done.json();
    assert_eq!(out["rollout"]["state"], "done", "{out:#}");
    assert_eq!(out["summary"]["succeeded"], 20, "{out:#}\n{}", done.stderr);
    assert_eq!(out["matrix"], serde_json::json!({"include": []}));
    for (c, before) in finished.iter().zip(counts) {
        assert_eq!(plans(&fleet, c), before, "{c} had finished before the kill and was deployed again");
    }
    for i in 0..20 {
        assert!(plans(&fleet, &name(i)) > 0, "{} was never deployed", name(i));
    }
    assert!(record(&fleet, CURRENT).is_none(), "a finished rollout is no longer current");
    let archived = record(&fleet, &format!("stamp/rollouts/{id}.json")).expect("archived by id");
    assert_eq!(archived["state"], "done");
    assert!(archived["holder"].is_null());
    assert_eq!(archived["customers"][0]["commit"].as_str().unwrap(), common::app_commit("v1"));
    // Each deploy's history record names the rollout.
    let listed = fleet.aws(&["s3", "ls", "--recursive", "s3://tfstate-123456789012-c05/stamp/history/c05/"]);
    let key = listed.split_whitespace().last().unwrap();
    let h = fleet.state("tfstate-123456789012-c05", key);
    assert_eq!(h["rollout_id"], id.as_str(), "{h:#}");
    assert_eq!(h["operation"], "rollout", "{h:#}");
}

#[test]
fn pause_resume_waves_and_cancel_from_other_invocations() {
    let emu = Emulator::start();
    let fleet = fleet(&emu, 4, "waves = [\"1\", \"100%\"]\nsoak = 0\nmax_failures = 0", "");
    // The record's bucket is hardened like a state bucket.
    stamp(&fleet, &["rollout", "--status"]).code(2).stderr_has("no rollout is running");

    // Paused while wave 2's first customer applies (its vpc takes 3 s more): it
    // finishes, nothing more starts.
    let mut child = fleet
        .stamp_cmd(&["rollout", "--all", "--auto-approve"])
        .env("STAMP_ROLLOUT_HEARTBEAT", "2")
        .env("STAMP_STANDIN_DELAY", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("c01's vpc apply", Duration::from_secs(300), &mut child, || fleet.log("c01", "vpc").contains("\"type\":\"apply_start\""));
    let paused = stamp(&fleet, &["rollout", "--pause"]).ok();
    assert!(paused.stderr.contains("paused") && paused.stderr.contains("stops before its next customer"), "{}", paused.stderr);
    let run = Run::from(child.wait_with_output().unwrap(), &["rollout", "--all"]).code(1);
    assert!(run.stderr.contains("paused (paused by "), "{}", run.stderr);
    let r = record(&fleet, CURRENT).unwrap();
    assert_eq!(r["state"], "paused");
    assert_eq!(outcome(&r, "c01"), "succeeded", "a running deploy finishes: {r:#}");
    assert_eq!(outcome(&r, "c02"), "pending");
    assert!(!fleet.path().join(".stamp/c02").exists(), "c02 never started");
    stamp(&fleet, &["rollout", "--pause"]).code(2).stderr_has("not running");

    // Resumed, it finishes.
    let out = stamp(&fleet, &["rollout", "--resume", "--auto-approve", "--json"]).ok().json();
    assert_eq!(out["rollout"]["state"], "done");
    assert_eq!(out["summary"]["succeeded"], 4);
    assert_eq!(plans(&fleet, "c01"), 2, "c01 deployed once (two stacks planned once each)");

    // A rollout a wave at a time (a CI job per wave): the next wave as a matrix.
    let run = stamp(&fleet, &["rollout", "c00", "c01", "c02", "--auto-approve", "--waves", "1", "--json"]).ok();
    assert!(run.stderr.contains("ran 1 wave(s)"), "{}", run.stderr);
    let status = stamp(&fleet, &["rollout", "--status", "--json"]).ok().json();
    assert_eq!(status["rollout"]["state"], "running");
    assert_eq!(status["next_wave"], 2);
    assert_eq!(status["matrix"]["include"], serde_json::json!([{"customer": "c01", "wave": 2}, {"customer": "c02", "wave": 2}]));
    assert!(status["rollout"]["holder"].is_null(), "between two jobs nobody holds it");
    let id = status["rollout"]["id"].as_str().unwrap().to_owned();

    // Cancelled while nobody holds it: archived at once, and a new rollout may start.
    let c = stamp(&fleet, &["rollout", "--cancel"]).ok();
    assert!(c.stderr.contains("cancelled and archived"), "{}", c.stderr);
    assert!(record(&fleet, CURRENT).is_none());
    assert_eq!(record(&fleet, &format!("stamp/rollouts/{id}.json")).unwrap()["state"], "cancelled");

    // Cancelled while it runs: it stops before its next customer and is archived.
    let mut child = spawn(&fleet, &["rollout", "--all", "--auto-approve"]);
    let started = fleet.path().join(".stamp/c00/logs/vpc.log");
    let before = std::fs::metadata(&started).unwrap().modified().unwrap();
    wait_for("the new rollout's first deploy", Duration::from_secs(300), &mut child, || {
        std::fs::metadata(&started).is_ok_and(|m| m.modified().unwrap() > before)
    });
    stamp(&fleet, &["rollout", "--cancel"]).ok();
    let run = Run::from(child.wait_with_output().unwrap(), &["rollout", "--all"]).code(1);
    assert!(run.stderr.contains("cancelled (cancelled by "), "{}", run.stderr);
    assert!(record(&fleet, CURRENT).is_none(), "the cancelled rollout was archived by its holder");
    // Its bucket is hardened like a state bucket.
    let enc = fleet.aws_json(&["s3api", "get-bucket-encryption", "--bucket", BUCKET]);
    assert!(enc.to_string().contains("AES256"), "{enc}");
    let v = fleet.aws_json(&["s3api", "get-bucket-versioning", "--bucket", BUCKET]);
    assert_eq!(v["Status"], "Enabled");
}

/// Customers that start (or end) together are written to the record together, and
/// a wide budget with `--parallel` lets them all be in flight: six customers, all
/// started at once, every one deployed once, and the record's writes grouped.
#[test]
fn customers_starting_together_are_written_to_the_record_in_one_write() {
    let emu = Emulator::start();
    let fleet = fleet(&emu, 6, "waves = [\"100%\"]\nsoak = 0\nmax_failures = 5", "");
    let out = stamp(&fleet, &["rollout", "--all", "--parallel", "6", "--auto-approve", "--json"]).ok().json();
    assert_eq!(out["rollout"]["state"], "done");
    assert_eq!(out["summary"]["succeeded"], 6);
    for i in 0..6 {
        assert_eq!(plans(&fleet, &name(i)), 2, "{} deployed once", name(i));
    }
    let log = std::fs::read_to_string(fleet.path().join(".stamp/rollout.log")).unwrap();
    let grouped: Vec<usize> = log
        .lines()
        .filter_map(|l| l.split("rollout record: ").nth(1))
        .filter_map(|l| l.strip_suffix(" customer starts and ends in one write"))
        .map(|n| n.parse().unwrap())
        .collect();
    // The first start goes out alone; the five that came meanwhile go in the next write.
    assert!(grouped.iter().any(|&n| n >= 2), "no write carried two customers' changes:\n{log}");
}

/// The newest history record of customer `c` (in its state bucket).
fn newest_history(fleet: &Fleet, c: &str) -> Value {
    let bucket = format!("tfstate-123456789012-{c}");
    let listed = fleet.aws(&["s3", "ls", "--recursive", &format!("s3://{bucket}/stamp/history/{c}/")]);
    let key = listed.lines().filter_map(|l| l.split_whitespace().last()).max().unwrap().to_owned();
    fleet.state(&bucket, &key)
}

#[test]
fn an_alarm_in_the_soak_fails_its_customer_which_goes_back_and_rollback_takes_back_the_rest() {
    let emu = Emulator::start();
    let fleet = fleet(
        &emu,
        3,
        "waves = [\"2\", \"100%\"]\nsoak = \"3s\"\nmax_failures = 0\non_failure = \"rollback\"\nalarms = [\"{{customer}}-5xx\"]",
        "",
    );
    // v1 everywhere, then the rollout of v2.
    fleet.stamp(&["deploy", "--all", "--auto-approve"]).ok();
    for i in 0..3 {
        fleet.customer(&name(i), &format!("git_id = \"v2\"\n[vpc.vars]\ncidr_block = \"10.{i}.0.0/16\"\n"));
        fleet.put_alarm(&format!("{}-5xx", name(i)));
    }
    fleet.aws(&["cloudwatch", "set-alarm-state", "--alarm-name", "c01-5xx", "--state-value", "ALARM", "--state-reason", "5xx above 1"]);
    let run = stamp(&fleet, &["rollout", "--all", "--auto-approve", "--json"]).code(1);
    let out = run.json();
    assert_eq!(out["rollout"]["state"], "halted", "{out:#}\n{}", run.stderr);
    let c01 = out["customers"].as_array().unwrap().iter().find(|c| c["customer"] == "c01").unwrap().clone();
    assert_eq!(c01["outcome"], "failed");
    assert_eq!(c01["rolled_back"], true, "on_failure = \"rollback\": {c01:#}\n{}", run.stderr);
    assert!(c01["error"].as_str().unwrap().contains("alarm `c01-5xx` is in ALARM: 5xx above 1"), "{c01:#}");
    let c02 = out["customers"].as_array().unwrap().iter().find(|c| c["customer"] == "c02").unwrap().clone();
    assert_eq!(c02["outcome"], "pending", "the halt starts no later wave");
    let v1 = common::app_commit("v1");
    let back = newest_history(&fleet, "c01");
    assert_eq!((back["operation"].as_str(), back["release"]["commit"].as_str()), (Some("rollback"), Some(v1.as_str())), "{back:#}");
    assert_eq!(newest_history(&fleet, "c00")["release"]["commit"], common::app_commit("v2"));

    // The halted rollout's other customer goes back too, and the rollout ends.
    let run = stamp(&fleet, &["rollout", "--rollback", "--auto-approve"]).ok();
    assert!(run.stdout.contains("cancelled: rolled back by "), "{}", run.stdout);
    let back = newest_history(&fleet, "c00");
    assert_eq!((back["operation"].as_str(), back["release"]["commit"].as_str()), (Some("rollback"), Some(v1.as_str())), "{back:#}");
    assert!(record(&fleet, CURRENT).is_none(), "ended and archived");
    assert_eq!(plans(&fleet, "c02"), 2, "c02 only ran its v1 deploy");
}
