//! Transient AWS failures are retried, each retry logged with its reason, and the
//! ones that would fail again are not; a state that cannot be read stops destroy
//! before any AMI is touched. Real stamp, terraform, AWS CLI and packer against
//! moto, behind the fault-injecting proxy (tests/support/fault_proxy.py); the
//! proxy's own log proves each fault was really applied.
//!
//! `STAMP_RETRY_BASE_MS=10` keeps the backoff short: the waits are still random and
//! growing, only smaller.

mod common;

use common::{Emulator, FaultProxy, Fleet, Run};
use serde_json::json;

const BUCKET: &str = "tfstate-123456789012-acme";

fn stamp(fleet: &Fleet, args: &[&str]) -> Run {
    let out = fleet.stamp_cmd(args).env("STAMP_RETRY_BASE_MS", "10").output().expect("run stamp");
    Run::from(out, args)
}

/// How many faults the proxy applied for rule `i`.
fn applied(proxy: &FaultProxy, i: usize) -> usize {
    proxy.faults().iter().filter(|f| f["rule"] == i).count()
}

fn all_logs(fleet: &Fleet) -> String {
    ["bucket", "vpc", "ami", "frontends"].iter().map(|s| fleet.log("acme", s)).collect::<Vec<_>>().join("\n")
}

/// moto, the fault proxy in front of it, and a fleet of one customer (acme) behind it.
fn acme_behind_a_proxy() -> (Emulator, FaultProxy, Fleet) {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", "git_id = \"v1\"\n");
    (emu, proxy, fleet)
}

#[test]
fn throttling_and_dropped_connections_are_retried_with_their_reason_and_the_deploy_succeeds() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    proxy.set_rules(json!([
        // stamp's SDK: HeadBucket (the first call of the bucket stage), twice.
        {"agent": "aws-sdk-rust", "method": "HEAD", "path": format!("/{BUCKET}"), "action": "status",
         "status": 503, "code": "SlowDown", "message": "Please reduce your request rate.", "times": 2},
        // stamp's SDK: the vpc state read back for its outputs, twice.
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/acme/vpc", "action": "status",
         "status": 503, "code": "SlowDown", "message": "Please reduce your request rate.", "times": 2},
        // The AWS CLI's describe-images (is there an AMI of this image already?), twice.
        {"agent": "aws-cli/", "body": "Action=DescribeImages", "action": "status",
         "status": 503, "code": "RequestLimitExceeded", "message": "Request limit exceeded.", "times": 2},
        // One connection dropped without an answer: the frontends state read back.
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/acme/frontends", "action": "drop", "times": 1},
    ]));
    let run = stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();
    let logs = all_logs(&fleet);
    for (i, n) in [(0, 2), (1, 2), (2, 2), (3, 1)] {
        assert_eq!(applied(&proxy, i), n, "rule {i}: {:#?}", proxy.faults());
    }
    // Each retry is in the log and on stderr (the stage's steps), with its reason.
    for needle in [
        "retrying HeadBucket in ",
        "(2/5): ",
        "(3/5): ",
        "retrying GetObject in ",
        "SlowDown (503) from S3",
        "retrying ec2 describe-images in ",
        "RequestLimitExceeded from EC2",
    ] {
        assert!(logs.contains(needle), "the logs lack {needle:?}:\n{logs}");
    }
    let dropped = logs.lines().find(|l| l.contains("retrying GetObject") && l.contains("connection")).unwrap_or_else(|| {
        panic!("no retry line for the dropped connection:\n{logs}");
    });
    assert!(dropped.contains("from S3"), "{dropped}");
    assert!(run.stderr.contains("retrying HeadBucket in ") && run.stderr.contains("retrying ec2 describe-images in "), "{}", run.stderr);
    // It really is deployed.
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self"]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 1, "{images:#}");

    // A read-only command keeps no stage log: its retries are noted on stderr.
    let before = proxy.faults().len();
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/acme/frontends/production?", "action": "status",
         "status": 503, "code": "SlowDown", "times": 1},
    ]));
    let status = stamp(&fleet, &["status", "acme"]).ok();
    assert_eq!(proxy.faults().len() - before, 1, "{:#?}", proxy.faults());
    assert!(
        status.stderr.contains("note: retrying GetObject in ") && status.stderr.contains("SlowDown (503) from S3"),
        "{}",
        status.stderr
    );
}

#[test]
fn no_such_bucket_right_after_stamps_own_create_is_retried() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    proxy.set_rules(json!([
        // The first HeadBucket (before the CreateBucket) gets the real 404; the two after
        // the create answer NoSuchBucket, as S3 may for a moment.
        {"agent": "aws-sdk-rust", "method": "HEAD", "path": format!("/{BUCKET}"), "action": "status",
         "status": 404, "code": "NoSuchBucket", "message": "The specified bucket does not exist", "after": 1, "times": 2},
        {"agent": "aws-sdk-rust", "method": "GET", "path": "?versioning", "action": "status",
         "status": 404, "code": "NoSuchBucket", "message": "The specified bucket does not exist", "times": 1},
    ]));
    stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();
    assert_eq!((applied(&proxy, 0), applied(&proxy, 1)), (2, 1), "{:#?}", proxy.faults());
    let log = fleet.log("acme", "bucket");
    assert!(log.contains("retrying HeadBucket in ") && log.contains("right after stamp created"), "{log}");
    assert!(log.contains("retrying GetBucketVersioning in ") && log.contains("NoSuchBucket (404) from S3"), "{log}");

    // Without a create of stamp's own, a missing bucket is an answer: plan says
    // "never deployed" at once (another customer's bucket, never created).
    fleet.customer("globex", "git_id = \"v1\"\n");
    let plan = stamp(&fleet, &["plan", "globex"]).ok();
    assert!(!fleet.log("globex", "bucket").contains("retrying"), "{}", plan.stderr);
}

#[test]
fn a_failed_apply_with_a_transient_cause_is_planned_again_and_applied() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    // The stand-in vpc's provisioner (tests/standin/terraform/standin_aws.py) makes
    // no retries of its own: terraform apply fails, its output names the code.
    proxy.set_rules(json!([
        {"body": "Action=DescribeVpcs", "action": "status", "status": 503, "code": "RequestLimitExceeded",
         "message": "Request limit exceeded.", "times": 1},
    ]));
    stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();
    assert_eq!(applied(&proxy, 0), 1, "{:#?}", proxy.faults());
    let log = fleet.log("acme", "vpc");
    assert!(log.contains("retrying terraform apply in ") && log.contains("RequestLimitExceeded"), "{log}");
    // The retry planned again before applying: two plans, two applies, and the
    // second apply is of the new plan.
    assert_eq!(log.matches(" plan -input=false").count(), 2, "{log}");
    assert_eq!(log.matches(" apply -input=false").count(), 2, "{log}");
}

#[test]
fn access_denied_on_a_state_stops_destroy_at_once_and_no_ami_is_touched() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();
    let ami = fleet.aws_json(&["ec2", "describe-images", "--owners", "self"])["Images"][0]["ImageId"].as_str().unwrap().to_owned();
    let still_there = |what: &str| {
        let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self", "--image-ids", &ami]);
        assert_eq!(images["Images"].as_array().unwrap().len(), 1, "{what}: the AMI was deregistered");
        let vpcs = fleet.aws_json(&["ec2", "describe-vpcs", "--filters", "Name=tag:stamp-standin,Values=acme"]);
        assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 1, "{what}: the vpc stack's network is gone: {vpcs:#}");
        for key in ["acme/vpc", "acme/frontends/production"] {
            let state = fleet.state(BUCKET, key);
            assert!(!state["resources"].as_array().unwrap().is_empty(), "{what}: {key} lost its resources");
        }
    };

    // AccessDenied: an answer that will not change. Once, no retry, exit 1.
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/acme/frontends", "action": "status",
         "status": 403, "code": "AccessDenied", "message": "Access Denied"},
    ]));
    let run = stamp(&fleet, &["destroy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("AccessDenied") && run.stderr.contains("s3:GetObject"), "{}", run.stderr);
    assert!(run.stderr.contains("destroy stopped before touching anything"), "{}", run.stderr);
    assert!(!run.stderr.contains("retrying") && !all_logs(&fleet).contains("retrying"), "{}", run.stderr);
    assert_eq!(proxy.faults().len(), 1, "{:#?}", proxy.faults());
    still_there("AccessDenied");

    // A 500 that lasts: retried a bounded number of times, then destroy stops.
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/acme/frontends", "action": "status",
         "status": 500, "code": "InternalError", "message": "We encountered an internal error."},
    ]));
    let before = proxy.faults().len();
    let run = stamp(&fleet, &["destroy", "acme", "--auto-approve"]).code(1);
    assert_eq!(proxy.faults().len() - before, 5, "{:#?}", proxy.faults());
    assert!(run.stderr.contains("InternalError") && run.stderr.contains("still after 5 attempts"), "{}", run.stderr);
    assert!(fleet.log("acme", "bucket").contains("giving up on GetObject after 5 attempts"), "{}", fleet.log("acme", "bucket"));
    still_there("a lasting 500");

    // A state that does not parse stops it too.
    proxy.set_rules(json!([]));
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), "{not json").unwrap();
    let good = fleet.aws(&["s3", "cp", &format!("s3://{BUCKET}/acme/frontends/production"), "-"]);
    fleet.aws(&["s3", "cp", &tmp.path().display().to_string(), &format!("s3://{BUCKET}/acme/frontends/production")]);
    let run = stamp(&fleet, &["destroy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("is not a state stamp can read") && run.stderr.contains("nothing was destroyed"), "{}", run.stderr);
    std::fs::write(tmp.path(), good).unwrap();
    fleet.aws(&["s3", "cp", &tmp.path().display().to_string(), &format!("s3://{BUCKET}/acme/frontends/production")]);
    still_there("a damaged state");
    // With the state readable again, destroy does its work.
    stamp(&fleet, &["destroy", "acme", "--auto-approve"]).ok();
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self", "--image-ids", &ami]);
    assert!(images["Images"].as_array().unwrap().is_empty(), "{images:#}");
}

#[test]
fn an_endpoint_that_refuses_is_reported_as_unreachable_without_retrying() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // A port the test holds, where nothing listens: every connection is refused.
    let held = common::HeldPort::new();
    let port = held.port;
    fleet.write_config(&common::FLEET_TOML.replace("{endpoint}", &format!("http://127.0.0.1:{port}")));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let run = stamp(&fleet, &["deploy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains(&format!("nothing answers at http://127.0.0.1:{port}")), "{}", run.stderr);
    assert!(!run.stderr.contains("retrying") && !all_logs(&fleet).contains("retrying"), "{}", run.stderr);
}

#[test]
fn an_ami_another_customer_may_run_is_kept_when_its_state_cannot_be_read() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    // Same git_id and template: one image, baked once, run by both.
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n");
    stamp(&fleet, &["deploy", "acme", "globex", "--auto-approve"]).ok();
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self"]);
    let images = images["Images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{images:#?}");
    let ami = images[0]["ImageId"].as_str().unwrap().to_owned();

    // Whether globex runs it cannot be read: acme's stacks go, the AMI stays.
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "GET", "path": "/globex/frontends", "action": "status",
         "status": 403, "code": "AccessDenied", "message": "Access Denied"},
    ]));
    let run = stamp(&fleet, &["destroy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("AccessDenied") && run.stderr.contains("cannot tell whether customer globex runs"), "{}", run.stderr);
    assert_eq!(applied(&proxy, 0), 1, "{:#?}", proxy.faults());
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self", "--image-ids", &ami]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 1, "the AMI globex runs was deregistered");

    // Readable again: destroy finishes, and the AMI is kept because globex runs it.
    proxy.set_rules(json!([]));
    stamp(&fleet, &["destroy", "acme", "--auto-approve"]).ok();
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self", "--image-ids", &ami]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 1, "the AMI globex runs was deregistered");
}

#[test]
fn an_interrupt_ends_the_wait_before_a_retry() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "HEAD", "path": format!("/{BUCKET}"), "action": "status",
         "status": 503, "code": "SlowDown"},
    ]));
    // Waits of up to 8 s (the cap) before each retry: the interrupt lands in one.
    let child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve"])
        .env("STAMP_RETRY_BASE_MS", "60000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !fleet.log("acme", "bucket").contains("retrying HeadBucket in ") {
        assert!(std::time::Instant::now() < deadline, "no retry began:\n{}", fleet.log("acme", "bucket"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let run = Run::from(child.wait_with_output().unwrap(), &["deploy", "acme"]).code(130);
    let log = fleet.log("acme", "bucket");
    assert!(log.contains("not retrying HeadBucket: interrupted"), "{log}\n{}", run.stderr);
    assert!(applied(&proxy, 0) < 5, "{:#?}", proxy.faults());
    assert!(fleet.buckets().is_empty(), "{:?}", fleet.buckets());
}

#[test]
fn a_bucket_of_another_account_is_told_apart_and_not_retried() {
    let (_emu, proxy, fleet) = acme_behind_a_proxy();
    // HeadBucket has no body: a 403 is all S3 says about a bucket it will not show.
    proxy.set_rules(json!([
        {"agent": "aws-sdk-rust", "method": "HEAD", "path": format!("/{BUCKET}"), "action": "status", "status": 403, "code": "Forbidden"},
    ]));
    let run = stamp(&fleet, &["deploy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains(&format!("state bucket name {BUCKET} is taken by another AWS account")), "{}", run.stderr);
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert_eq!(proxy.faults().len(), 1, "{:#?}", proxy.faults());
    assert!(fleet.buckets().is_empty(), "the bucket was created: {:?}", fleet.buckets());
    let run = stamp(&fleet, &["plan", "acme"]).code(1);
    assert!(run.stderr.contains("exists but this account cannot read it (403)"), "{}", run.stderr);
}

#[test]
fn a_held_state_lock_is_waited_for_not_retried_and_its_holder_and_release_are_named() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();
    // Another run's lock on the vpc state, as terraform's S3 backend writes it.
    let id = "4c1e3a52-8b0f-4f6e-9d7a-2b9e5c0f1a77";
    let lock = json!({"ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": "runner@ci-job-42",
        "Version": "1.11.4", "Created": "2026-11-25T23:00:00.000000Z", "Path": format!("{BUCKET}/acme/vpc")});
    let file = fleet.path().join("lock.json");
    std::fs::write(&file, lock.to_string()).unwrap();
    let object = format!("s3://{BUCKET}/acme/vpc.tflock");
    fleet.aws(&["s3", "cp", &file.to_string_lossy(), &object]);

    let started = std::time::Instant::now();
    let run = stamp(&fleet, &["deploy", "acme", "--auto-approve", "--lock-timeout", "3s"]).code(1);
    let took = started.elapsed();
    for needle in [
        "Error acquiring the state lock",
        &format!("{object} is held by runner@ci-job-42 (OperationTypeApply, since 2026-11-25T23:00:00.000000Z), lock ID {id}"),
        "stamp waited 3s (--lock-timeout)",
        &format!("force-unlock {id}"),
    ] {
        assert!(run.stderr.contains(needle), "lacks {needle:?}:\n{}", run.stderr);
    }
    // Waited the timeout once: lock contention is not a transient failure to retry.
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert!(fleet.log("acme", "vpc").contains("-lock-timeout=3s"));
    // stamp never releases a lock itself.
    assert!(fleet.aws(&["s3", "ls", &format!("s3://{BUCKET}/acme/")]).contains("vpc.tflock"));

    // Released (as the hint says, once no run holds it): the next deploy goes through.
    fleet.aws(&["s3", "rm", &object]);
    stamp(&fleet, &["deploy", "acme", "--auto-approve"]).ok();

    // A duration that is not one is refused before anything runs.
    let run = stamp(&fleet, &["plan", "acme", "--lock-timeout", "soon"]).code(2);
    assert!(run.stderr.contains("`soon` is not a duration") && run.stderr.contains("30s, 10m or 1h"), "{}", run.stderr);
}
