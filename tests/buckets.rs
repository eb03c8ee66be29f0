//! The state bucket on the emulator: the TLS-only policy over HTTPS (enforced by the
//! emulator, as AWS does), one bucket shared by customers deployed by separate stamp
//! processes at the same moment, and a name another account owns.

mod common;

use common::{Emulator, FLEET_TOML, Fleet, stage_status, tools};
use serde_json::Value;

const SHARED: &str = "[fleet]\nstate_bucket = \"stamp-shared-{{account_id}}\"\n";

fn shared_fleet(emu: &Emulator) -> Fleet {
    let fleet = Fleet::with_toml(emu, &FLEET_TOML.replacen("[fleet]\n", SHARED, 1));
    fleet.customer("acme", "git_id = \"v1\"\n").customer("globex", "git_id = \"v1\"\n");
    fleet
}

fn policy(fleet: &Fleet, bucket: &str) -> Option<Value> {
    let out = fleet.aws_raw(&["s3api", "get-bucket-policy", "--bucket", bucket]);
    out.status.success().then(|| {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        serde_json::from_str(v["Policy"].as_str().unwrap()).unwrap()
    })
}

fn denies_insecure_transport(p: &Value) -> bool {
    p["Statement"].as_array().unwrap().iter().any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
}

#[test]
fn over_https_the_state_bucket_gets_the_tls_only_policy_and_the_emulator_enforces_it() {
    let emu = Emulator::start_tls();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let report = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let bucket = "tfstate-123456789012-acme";
    let p = policy(&fleet, bucket).expect("no bucket policy");
    assert!(denies_insecure_transport(&p), "{p:#}");
    // Every state read and write went through the policy, over TLS.
    assert_eq!(stage_status(&report, "frontends"), "ok", "{report:#}");
    fleet.state(bucket, "acme/vpc");

    // Removed behind stamp's back, it is put back on the next deploy, and said so.
    fleet.aws(&["s3api", "delete-bucket-policy", "--bucket", bucket]);
    let again = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let detail = again["stages"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("re-applied") && detail.contains("TLS"), "{detail}");
    assert!(denies_insecure_transport(&policy(&fleet, bucket).unwrap()));

    // The same policy denies plain HTTP: on an emulator reached over HTTP, a bucket
    // with it refuses a write (so over HTTP stamp leaves the policy out, docs/moto.md
    // "Emulator gaps").
    let plain = Emulator::start();
    let other = Fleet::new(&plain);
    other.aws(&["s3", "mb", "s3://plain-http-bucket"]);
    let text = serde_json::to_string(&p).unwrap().replace(bucket, "plain-http-bucket");
    other.aws(&["s3api", "put-bucket-policy", "--bucket", "plain-http-bucket", "--policy", &text]);
    let put = other.aws_raw(&[
        "s3api",
        "put-object",
        "--bucket",
        "plain-http-bucket",
        "--key",
        "k",
        "--body",
        &other.path().join("stamp.toml").display().to_string(),
    ]);
    assert!(!put.status.success(), "a write over plain HTTP went through the TLS-only policy");
    assert!(String::from_utf8_lossy(&put.stderr).contains("403"), "{}", String::from_utf8_lossy(&put.stderr));
}

#[test]
fn two_stamp_processes_creating_one_shared_bucket_at_the_same_moment_both_succeed() {
    let emu = Emulator::start();
    let fleet = shared_fleet(&emu);
    let children: Vec<_> = ["acme", "globex"]
        .iter()
        .map(|c| (c.to_string(), fleet.stamp_cmd(&["deploy", c, "--auto-approve", "--json"]).output_async()))
        .collect();
    for (name, child) in children {
        let out = child.wait_with_output().unwrap();
        let run = common::Run::from(out, &["deploy", &name]).ok();
        let report = run.report();
        // One of them made it, the other found it made (or lost the race to `mb`:
        // BucketAlreadyOwnedByYou); both go on to deploy into it.
        assert!(["ok", "unchanged"].contains(&stage_status(&report, "bucket").as_str()), "{name}: {report:#}");
        assert_eq!(stage_status(&report, "frontends"), "ok", "{name}: {report:#}");
    }
    assert_eq!(fleet.buckets(), vec!["stamp-shared-123456789012".to_owned()]);
    for c in ["acme", "globex"] {
        fleet.state("stamp-shared-123456789012", &format!("{c}/vpc"));
    }
}

#[test]
fn a_state_bucket_name_another_account_owns_is_a_clear_error() {
    let emu = Emulator::start();
    let fleet = Fleet::with_toml(&emu, &FLEET_TOML.replacen("[fleet]\n", "[fleet]\nstate_bucket = \"stamp-taken-{{customer}}\"\n", 1));
    fleet.customer("acme", "git_id = \"v1\"\n");
    // Account 999999999999 creates the name first (moto tells accounts apart by a header).
    let create = std::process::Command::new(tools().join("../venv/bin/python"))
        .args([
            "-c",
            "import boto3, sys\n\
             c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='eu-west-1', aws_access_key_id='x', aws_secret_access_key='x')\n\
             c.meta.events.register('before-sign.s3.*', lambda request, **kw: request.headers.__setitem__('x-moto-account-id', '999999999999'))\n\
             c.create_bucket(Bucket='stamp-taken-acme', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n",
            &emu.url,
        ])
        .output()
        .unwrap();
    assert!(create.status.success(), "{}", String::from_utf8_lossy(&create.stderr));
    let run = fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("stamp-taken-acme") && run.stderr.contains("another AWS account"), "{}", run.stderr);
    assert!(run.stderr.contains("state_bucket"), "the hint names the key to change:\n{}", run.stderr);
    // Nothing of acme's was created under the other account's bucket.
    assert!(!fleet.log("acme", "vpc").contains("terraform apply"), "{}", fleet.log("acme", "vpc"));
}

trait OutputAsync {
    fn output_async(self) -> std::process::Child;
}

impl OutputAsync for std::process::Command {
    fn output_async(mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}
