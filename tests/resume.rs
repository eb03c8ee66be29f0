//! Resume: a deploy after a failed or interrupted one resumes at the stage that did
//! not finish (the run journal in `.stamp/<customer>/journal.json`), checking that
//! what the earlier stages made still exists; `--from STAGE` restarts at a stage.
//! Real terraform, packer, AWS CLI and moto; the stand-in stacks.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::{Emulator, FLEET_TOML, FaultProxy, Fleet, Run, stage_status};
use serde_json::json;

const ACME: &str = "git_id = \"v1\"\n";

/// The emulator's load balancers refuse to be created: the stand-in frontends'
/// apply fails (a real AWS error answer, through the fault proxy).
fn refuse_load_balancers(proxy: &FaultProxy) {
    proxy.set_rules(json!([{
        "body": "Action=CreateLoadBalancer",
        "action": "status",
        "status": 400,
        "code": "ValidationError",
        "message": "injected by tests/resume.rs"
    }]));
}

fn applies(log: &str) -> usize {
    log.matches("apply -input=false").count()
}

fn images(fleet: &Fleet) -> usize {
    fleet.aws_json(&["ec2", "describe-images", "--owners", "self"])["Images"].as_array().unwrap().len()
}

fn journal_stage(j: &serde_json::Value, stage: &str) -> String {
    j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".into())
}

fn deploy(fleet: &Fleet, extra: &[&str]) -> Run {
    let mut args = vec!["deploy", "acme", "--auto-approve", "--json"];
    args.extend_from_slice(extra);
    fleet.stamp(&args)
}

#[test]
fn a_failed_deploy_resumes_at_the_stage_that_failed_and_from_restarts_at_a_chosen_one() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", ACME);

    // (a) The frontends fail: bucket, vpc and ami are done, frontends failed.
    refuse_load_balancers(&proxy);
    let run = deploy(&fleet, &[]).code(1);
    assert!(proxy.faults().iter().any(|f| f["action"] == "status"), "the fault was not applied");
    assert_eq!(run.report()["failed_stage"], "frontends", "{}", run.stderr);
    let j = fleet.journal("acme").expect("a journal");
    assert_eq!(j["status"], "failed");
    for s in ["bucket", "vpc", "ami"] {
        assert_eq!(journal_stage(&j, s), "done", "{j:#}");
    }
    assert_eq!(journal_stage(&j, "frontends"), "failed", "{j:#}");
    assert_eq!(journal_stage(&j, "smoke"), "absent", "{j:#}");
    let first_run = j["run"].as_str().unwrap().to_owned();
    let status = fleet.stamp(&["status", "acme", "--json"]).ok().json();
    assert_eq!(status["customers"][0]["last_run"]["resumes_at"], "frontends", "{status:#}");
    let table = fleet.stamp(&["status", "acme"]).ok().stdout;
    assert!(table.contains("deploy failed (resumes at frontends)"), "{table}");
    let (vpc_applies, amis) = (applies(&fleet.log("acme", "vpc")), images(&fleet));
    assert_eq!(vpc_applies, 1);

    // Fixed (the emulator creates load balancers again): the next deploy resumes.
    proxy.set_rules(json!([]));
    let run = deploy(&fleet, &[]).ok();
    assert!(run.stderr.contains(&format!("resuming the run of {first_run} at stage frontends")), "{}", run.stderr);
    let report = run.report();
    for s in ["bucket", "vpc", "ami"] {
        assert_eq!(stage_status(&report, s), "resumed", "{report:#}");
        let detail = report["stages"].as_array().unwrap().iter().find(|x| x["name"] == s).unwrap()["detail"].clone();
        assert_eq!(detail, format!("done by the run of {first_run}; not rerun"));
    }
    assert_eq!(stage_status(&report, "frontends"), "ok");
    assert!(run.stderr.contains("not rerun"), "{}", run.stderr);
    assert_eq!(applies(&fleet.log("acme", "vpc")), vpc_applies, "the vpc was applied again");
    assert!(fleet.log("acme", "vpc").contains("holds the stack's resources and outputs: not rerun"));
    assert_eq!(images(&fleet), amis, "an AMI was baked again");
    assert_eq!(report["outputs"]["ami_id"], fleet.journal("acme").unwrap()["stages"][2]["ami_id"]);
    let j = fleet.journal("acme").unwrap();
    assert_eq!(j["status"], "complete");

    // After a complete deploy, the next one runs every stage (a normal redeploy).
    let report = deploy(&fleet, &[]).ok().report();
    for s in ["bucket", "vpc", "ami", "frontends"] {
        assert_eq!(stage_status(&report, s), "unchanged", "{report:#}");
    }

    // (b) --from vpc: the bucket is taken from the journal (checked), vpc and later run.
    let run = deploy(&fleet, &["--from", "vpc"]).ok();
    let report = run.report();
    assert_eq!(stage_status(&report, "bucket"), "resumed", "{report:#}");
    for s in ["vpc", "ami", "frontends"] {
        assert_eq!(stage_status(&report, s), "unchanged", "{report:#}");
    }

    // (e) A customer whose file makes the frontends fail (the stand-in's test hook),
    // then fixed: its customer file changed, so the next deploy starts over.
    let deploy_initech = || fleet.stamp(&["deploy", "initech", "--auto-approve", "--json"]);
    fleet.customer("initech", "git_id = \"v1\"\n\n[frontends.vars]\ninstance_type = \"fail.standin\"\n");
    let failed = deploy_initech().code(1);
    // The failed apply's command names the saved plan, which is gone: the hint says so.
    assert!(
        failed.stderr.contains("stamp.tfplan was removed")
            && failed.stderr.contains("`stamp deploy initech` plans again and resumes at frontends"),
        "{}",
        failed.stderr
    );
    let j = fleet.journal("initech").unwrap();
    assert_eq!((journal_stage(&j, "ami"), journal_stage(&j, "frontends")), ("done".into(), "failed".into()), "{j:#}");
    fleet.customer("initech", ACME);
    let run = deploy_initech().ok();
    let file = fleet.path().join("customers/initech.toml");
    assert!(
        run.stderr.contains("not resuming the run of")
            && run.stderr.contains(&format!("the customer file {} (changed)", file.display()))
            && run.stderr.contains("starting from the beginning"),
        "{}",
        run.stderr
    );
    let report = run.report();
    for s in ["bucket", "vpc", "ami"] {
        assert_eq!(stage_status(&report, s), "unchanged", "{report:#}");
    }
    assert_eq!(stage_status(&report, "frontends"), "ok", "{report:#}");

    // (d) A journal that does not parse: named, with what to do; nothing runs.
    let path = fleet.path().join(".stamp/acme/journal.json");
    std::fs::write(&path, "{\"schema_version\": 1, \"stages\": [").unwrap();
    let bucket_log = fleet.log("acme", "bucket");
    let run = deploy(&fleet, &[]).code(2);
    assert!(run.stderr.contains(&format!("{}: not a stamp run journal", path.display())), "{}", run.stderr);
    assert!(run.stderr.contains("--from bucket") && run.stderr.contains("delete"), "{}", run.stderr);
    assert_eq!(fleet.log("acme", "bucket"), bucket_log, "a stage ran");
    // --from bucket does not read it, runs everything and writes a good one.
    deploy(&fleet, &["--from", "bucket"]).ok();
    assert_eq!(fleet.journal("acme").unwrap()["status"], "complete");
}

#[test]
fn from_a_stage_whose_predecessors_never_completed_exits_2_naming_it() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", ACME);
    let run = deploy(&fleet, &["--from", "frontends"]).code(2);
    assert!(run.stderr.contains("--from frontends: stage bucket of acme never completed"), "{}", run.stderr);
    assert!(run.stderr.contains("was never deployed"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty(), "a bucket was created");
    // Several customers: each one's problem is printed, nothing starts.
    fleet.customer("initech", ACME);
    let run = fleet.stamp(&["deploy", "acme", "initech", "--auto-approve", "--from", "vpc"]).code(2);
    for c in ["acme", "initech"] {
        assert!(run.stderr.contains(&format!("error: {c}: --from vpc: stage bucket of {c} never completed")), "{}", run.stderr);
    }
    assert!(run.stderr.contains("nothing was started"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty(), "a bucket was created");
    // A stage that is not one: clap lists the accepted values.
    let run = deploy(&fleet, &["--from", "network"]).code(2);
    assert!(run.stderr.contains("bucket, vpc, ami, frontends, smoke"), "{}", run.stderr);
    // A failed vpc: --from ami names vpc.
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.0.0.0/8\"\n");
    deploy(&fleet, &[]).code(1);
    fleet.customer("acme", ACME);
    let run = deploy(&fleet, &["--from", "ami"]).code(2);
    assert!(run.stderr.contains("--from ami: stage vpc of acme never completed: in the run of"), "{}", run.stderr);
    assert!(run.stderr.contains("it failed"), "{}", run.stderr);
}

/// The emulator dies in the middle of a deploy: stamp fails (exit 1) saying what
/// stopped answering; with a new (empty) emulator at the same address the next
/// deploy finds the journal's done stages gone, runs them again, and says so.
#[test]
fn an_emulator_killed_mid_deploy_fails_clearly_and_the_next_deploy_redoes_what_is_gone() {
    let emu = Emulator::start();
    let port = emu.port();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", ACME);
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let vpc_done = fleet.journal("acme").is_some_and(|j| journal_stage(&j, "vpc") == "done");
        if vpc_done {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("stamp ended ({status}) before its vpc stage was done");
        }
        assert!(Instant::now() < deadline, "the vpc stage was not done within 180 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The port stays the test's: nothing answers there, and nothing else takes it.
    let held = emu.kill_holding_port();
    // stamp must end on its own: bounded, never a hang.
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stamp did not end within 300 s of the emulator's death");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = Run {
        code: child.wait().unwrap().code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
        args: "deploy acme".into(),
    }
    .code(1);
    let url = format!("http://127.0.0.1:{port}");
    assert!(run.stderr.contains(&format!("nothing answers at {url}")), "{}", run.stderr);
    let j = fleet.journal("acme").unwrap();
    assert_eq!(journal_stage(&j, "vpc"), "done", "{j:#}");
    assert_ne!(j["status"], "complete");
    let failed: Vec<&serde_json::Value> = j["stages"].as_array().unwrap().iter().filter(|s| s["status"] != "done").collect();
    assert_eq!(failed.len(), 1, "exactly the stage that was running failed: {j:#}");

    // A new emulator at the same address: moto keeps everything in memory, so the
    // bucket, the vpc state (and an AMI, if it was baked) are gone.
    let _emu = Emulator::start_on(port);
    drop(held);
    let run = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok();
    assert!(run.stderr.contains("resuming the run of"), "{}", run.stderr);
    assert!(
        run.stderr.contains("bucket: done by the run of") && run.stderr.contains("does not exist any more: running it again"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("vpc: done by the run of") && run.stderr.contains("/acme/vpc does not exist any more"), "{}", run.stderr);
    let report = run.report();
    for s in ["bucket", "vpc", "ami", "frontends"] {
        assert_eq!(stage_status(&report, s), "ok", "{report:#}");
    }
    assert_eq!(fleet.journal("acme").unwrap()["status"], "complete");
    assert_eq!(applies(&fleet.log("acme", "vpc")), 1, "the vpc was applied again");
}

/// An HTTP server on loopback answering every request with the status in `status`.
fn http_server(status: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let code = status.load(Ordering::SeqCst);
            let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    url
}

/// A fleet deploy in which both customers failed at the smoke test: the next one
/// resumes each at its smoke stage (the frontends' outputs read back from their state).
#[test]
fn a_fleet_resumes_each_customer_at_its_smoke_stage() {
    let emu = Emulator::start();
    let status = Arc::new(AtomicU16::new(500));
    let url = http_server(status.clone());
    let toml = FLEET_TOML.replace("[smoke]\nenabled = false\n", "[smoke]\ntimeout = \"3s\"\n");
    assert_ne!(toml, FLEET_TOML);
    let fleet = Fleet::with_toml(&emu, &toml);
    fleet.customer("acme", ACME).customer("initech", ACME);
    let deploy = || {
        let args = ["deploy", "acme", "initech", "--auto-approve", "--json"];
        Run::from(fleet.stamp_cmd(&args).env("STANDIN_PUBLIC_URL", &url).output().unwrap(), &args)
    };
    deploy().code(1);
    for c in ["acme", "initech"] {
        let j = fleet.journal(c).unwrap();
        assert_eq!((journal_stage(&j, "frontends"), journal_stage(&j, "smoke")), ("done".into(), "failed".into()), "{j:#}");
    }
    status.store(200, Ordering::SeqCst);
    let run = deploy().ok();
    let reports = run.json()["customers"].as_array().unwrap().clone();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    for r in &reports {
        for s in ["bucket", "vpc", "ami", "frontends"] {
            assert_eq!(stage_status(r, s), "resumed", "{r:#}");
        }
        assert_eq!(stage_status(r, "smoke"), "ok", "{r:#}");
        assert_eq!(r["outputs"]["frontends"]["public_url"], url.as_str(), "{r:#}");
    }
    for c in ["acme", "initech"] {
        assert_eq!(fleet.journal(c).unwrap()["status"], "complete");
    }
}
