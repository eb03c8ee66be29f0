//! `stamp status`: what is deployed, read from the states in S3, no terraform run.
//! Real stamp, stand-in stacks, the AWS CLI and the emulator.

mod common;

use common::{Emulator, Fleet, Run};

#[test]
fn status_reads_the_states_and_shows_revisions_locks_and_the_undeployed() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.30.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v2\"\nenv = \"staging\"\n[vpc.vars]\ncidr_block = \"10.31.0.0/16\"\n");
    fleet.customer("initech", "git_id = \"v3\"\n");
    fleet.stamp(&["deploy", "acme", "globex", "--auto-approve"]).ok();

    // A lock left behind, as a killed terraform leaves it (S3 native locking).
    let lock = r#"{"ID":"5e1d2c3b-aaaa-bbbb-cccc-000000000001","Operation":"OperationTypeApply","Who":"runner@ci-7","Version":"1.11.4","Created":"2026-11-25T10:00:00Z"}"#;
    let lock_file = fleet.path().join("lock.json");
    std::fs::write(&lock_file, lock).unwrap();
    fleet.aws(&["s3", "cp", lock_file.to_str().unwrap(), "s3://tfstate-123456789012-acme/acme/frontends/production.tflock"]);

    // No terraform runs: status works with none at all.
    let status = |args: &[&str]| {
        let out = fleet.stamp_cmd(args).env("STAMP_TERRAFORM", "/nonexistent/terraform").output().unwrap();
        Run::from(out, args)
    };
    let v = status(&["status", "--all", "--json"]).ok().json();
    let rows = v["customers"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["customer"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "globex", "initech"]);
    let (acme, globex, initech) = (&rows[0], &rows[1], &rows[2]);

    // What the frontends run: the AMI of the state, its revision from the AMI's tag.
    let deployed = fleet.state("tfstate-123456789012-acme", "acme/frontends/production");
    assert_eq!(acme["ami_id"], deployed["outputs"]["ami_id"]["value"]);
    assert_eq!(acme["revision"], "v1");
    assert_eq!(globex["revision"], "v2");
    assert_eq!(acme["public_url"], deployed["outputs"]["public_url"]["value"]);
    assert_eq!(acme["env"], "production");
    assert_eq!(globex["env"], "staging");
    for stack in ["vpc", "frontends/production"] {
        let s = &acme["stacks"][stack];
        assert_eq!(s["deployed"], true, "{acme:#}");
        assert!(s["applied_at"].as_str().unwrap().starts_with("20"), "{acme:#}");
        assert_eq!(s["resources"], 1);
    }
    assert_eq!(acme["stacks"]["frontends/production"]["lock"]["who"], "runner@ci-7");
    assert!(acme["stacks"]["vpc"]["lock"].is_null());
    assert!(globex["stacks"]["frontends/staging"]["lock"].is_null());
    assert_eq!(acme["last_run"]["operation"], "deploy");
    assert_eq!(acme["last_run"]["status"], "ok");

    // Never deployed: no bucket, reported as such, not as an error.
    assert_eq!(initech["deployed"], false);
    assert!(initech["error"].is_null(), "{initech:#}");
    assert_eq!(initech["stacks"]["vpc"]["deployed"], false);
    assert_eq!(v["summary"]["total"], 3);
    assert_eq!(v["summary"]["deployed"], 2);
    assert_eq!(v["summary"]["locked"], 1);

    // The table, and the command that releases the lock (stamp never runs it).
    let t = status(&["status", "--all"]).ok();
    let line = |name: &str| t.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(line("acme").contains("LOCKED frontends/production") && line("acme").contains("v1"), "{}", t.stdout);
    assert!(line("initech").contains("not deployed"), "{}", t.stdout);
    assert!(
        t.stderr.contains("terraform -chdir=") && t.stderr.contains(" force-unlock 5e1d2c3b-aaaa-bbbb-cccc-000000000001"),
        "{}",
        t.stderr
    );
    assert!(t.stderr.contains("locked by runner@ci-7"), "{}", t.stderr);

    // A state that is not a state is an error for that customer, exit 1; the others still show.
    let junk = fleet.path().join("junk");
    std::fs::write(&junk, "not json").unwrap();
    fleet.aws(&["s3", "cp", junk.to_str().unwrap(), "s3://tfstate-123456789012-globex/globex/vpc"]);
    let bad = status(&["status", "--all"]).code(1);
    assert!(bad.stderr.contains("error: globex: s3://tfstate-123456789012-globex/globex/vpc is not a state"), "{}", bad.stderr);
    assert!(bad.stdout.lines().any(|l| l.starts_with("acme") && l.contains("v1")), "{}", bad.stdout);
}

/// The one rule for a command given no customer (fleet::selection::Use): the
/// commands that only read take every customer (deploy, plan, drift and destroy
/// refuse: tests/bad_input.rs).
#[test]
fn with_no_customer_named_the_commands_that_only_read_take_every_customer() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.customer("globex", "git_id = \"v2\"\nenv = \"staging\"\n");

    let v = fleet.stamp(&["status", "--json"]).ok().json();
    let names: Vec<&str> = v["customers"].as_array().unwrap().iter().map(|r| r["customer"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "globex"]);

    let m = fleet.stamp(&["matrix"]).ok().json();
    let names: Vec<&str> = m["include"].as_array().unwrap().iter().map(|r| r["customer"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "globex"]);

    let run = fleet.stamp(&["validate"]).ok();
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("2 customer(s) valid"), "{all}");

    fleet.stamp(&["render"]).ok();
    for c in ["acme", "globex"] {
        assert!(fleet.path().join(".stamp").join(c).join("terraform/vpc").is_dir(), "{c}'s working copies rendered");
    }
    assert!(fleet.buckets().is_empty(), "reading created nothing");
}
