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

/// After a cancelled or failed deploy a workflow step runs `stamp status`: under
/// GitHub Actions its table goes to the job summary, with the held lock, its holder
/// and the exact commands to check and release it, which work as printed.
#[test]
fn status_under_github_actions_puts_the_table_and_a_held_lock_in_the_job_summary() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    let lock = r#"{"ID":"5e1d2c3b-aaaa-bbbb-cccc-000000000003","Operation":"OperationTypeApply","Who":"runner@ci-7","Version":"1.11.4","Created":"2026-11-25T10:00:00Z"}"#;
    let lock_file = fleet.path().join("lock.json");
    std::fs::write(&lock_file, lock).unwrap();
    let object = "s3://tfstate-123456789012-acme/acme/frontends/production.tflock";
    fleet.aws(&["s3", "cp", lock_file.to_str().unwrap(), object]);

    let summary = fleet.path().join("summary.md");
    std::fs::write(&summary, "## the deploy step\n\n").unwrap();
    let args = ["status", "acme"];
    let out = fleet
        .stamp_cmd(&args)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_WORKSPACE", fleet.path())
        .output()
        .unwrap();
    Run::from(out, &args).ok();
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## the deploy step\n\n### `stamp status`: 1 customer, 1 with a state lock held\n"), "appended: {md}");
    assert!(
        md.contains("| CUSTOMER | ENV | REGION | REVISION | AMI | RELEASE | PREVIOUS | VPC | FRONTENDS | LOCK | LAST RUN | URL |"),
        "{md}"
    );
    let row = md.lines().find(|l| l.starts_with("| acme |")).unwrap_or_else(|| panic!("no row: {md}"));
    // The revision: the git_id the image was baked for, and the commit it named.
    let revision = format!("| production | eu-west-1 | v1@{} |", &common::app_commit("v1")[..12]);
    assert!(row.contains(&revision) && row.contains("| LOCKED frontends/production | deploy ok |"), "{row}");
    assert!(
        md.contains(
            "**acme** frontends/production: the state lock is held by runner@ci-7 (OperationTypeApply, since 2026-11-25T10:00:00Z, \
             lock ID 5e1d2c3b-aaaa-bbbb-cccc-000000000003)"
        ),
        "{md}"
    );
    // The commands, as printed, in the order given: check, then release.
    let blocks: Vec<&str> = md.split("```sh\n").skip(1).map(|b| b.split("\n```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 2, "{md}");
    let check: Vec<&str> = blocks[0].lines().collect();
    assert_eq!(check[0], "stamp status acme");
    assert_eq!(check[1], format!("aws s3 cp {object} - --region eu-west-1 --endpoint-url {}", fleet.endpoint));
    let release = blocks[1];
    let dir = fleet.path().join(".stamp/acme/terraform/frontends/production");
    assert_eq!(release, format!("terraform -chdir={} force-unlock 5e1d2c3b-aaaa-bbbb-cccc-000000000003", dir.display()));

    // They work as printed: the check shows the lock, the release removes it.
    let shell = |command: &str, input: &str| {
        let mut c = std::process::Command::new("bash");
        fleet.trust(&mut c);
        let path = format!("{}:{}", common::tools().display(), std::env::var("PATH").unwrap_or_default());
        let mut child = c
            .args(["-c", command])
            .current_dir(fleet.path())
            .env("PATH", path)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_PAGER", "")
            .env("TF_CLI_CONFIG_FILE", common::tools().join("../terraformrc"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{command}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(shell(check[1], "").contains("5e1d2c3b-aaaa-bbbb-cccc-000000000003"));
    shell(release, "yes\n");
    assert!(!fleet.aws_raw(&["s3", "ls", object]).status.success(), "the lock is still there");
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
