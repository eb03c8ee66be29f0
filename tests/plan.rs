//! `stamp plan` and `stamp drift` against the emulator and the stand-in stacks:
//! counts and actions read from terraform's JSON plan, placeholder plans for a
//! customer that is not deployed yet (which create nothing), replacements listed
//! loudly with totals, and drift's exit codes.

mod common;

use common::{Emulator, Fleet, stage_status};
use serde_json::Value;

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name} in {report:#}"))
}

fn image_count(fleet: &Fleet) -> usize {
    fleet.aws_json(&["ec2", "describe-images", "--owners", "self"])["Images"].as_array().unwrap().len()
}

#[test]
fn a_never_deployed_customer_gets_placeholder_plans_and_nothing_is_created() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n");

    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!(plan["schema_version"], 2);
    let vpc = stage(&plan, "vpc");
    assert_eq!(vpc["status"], "ok", "{plan:#}");
    assert_eq!(vpc["changes"], serde_json::json!({"add": 1, "change": 0, "destroy": 0, "replace": 0}));
    assert_eq!(vpc["resources"], serde_json::json!([{"address": "terraform_data.network", "action": "create"}]));
    assert_eq!(vpc["empty_state"], true, "{vpc:#}");
    assert!(vpc.get("placeholder").is_none(), "the vpc's inputs are all real: {vpc:#}");
    let fe = stage(&plan, "frontends");
    assert_eq!(fe["placeholder"], true, "{fe:#}");
    assert_eq!(fe["placeholders"], serde_json::json!(["vpc_outputs", "ami"]));
    assert_eq!(fe["changes"]["add"], 1);
    assert_eq!(fe["resources"][0]["address"], "module.frontend.terraform_data.frontend");
    assert!(fe["detail"].as_str().unwrap().contains("placeholder vpc outputs / AMI: the real plan comes after `stamp deploy`"), "{fe:#}");
    assert_eq!(stage_status(&plan, "ami"), "skipped");

    // The text says it too, and a fleet's table marks and totals it.
    let text = fleet.stamp(&["plan", "acme"]).ok();
    assert!(text.stdout.contains("* frontends: planned with placeholder vpc outputs / AMI"), "{}", text.stdout);
    assert!(text.stdout.contains("+ create   terraform_data.network"), "{}", text.stdout);
    let table = fleet.stamp(&["plan", "acme", "globex"]).ok();
    assert!(table.stdout.contains("+2 ~0 -0 -/+0 *"), "{}", table.stdout);
    assert!(table.stdout.lines().any(|l| l.starts_with("TOTAL") && l.ends_with("+4 ~0 -0 -/+0")), "{}", table.stdout);
    assert!(table.stdout.contains("* globex frontends: planned with placeholder"), "{}", table.stdout);
    let data = fleet.stamp(&["plan", "acme", "globex", "--json"]).ok().json();
    assert_eq!(data["summary"]["changes"], serde_json::json!({"add": 4, "change": 0, "destroy": 0, "replace": 0}));
    assert_eq!(data["summary"]["placeholder_plans"], 2);

    // Nothing was created: no bucket (so no state), no AMI, no scratch copy left.
    assert!(fleet.buckets().is_empty(), "{:?}", fleet.buckets());
    assert_eq!(image_count(&fleet), 0);
    let work = fleet.path().join(".stamp/acme");
    let left: Vec<String> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.starts_with(".placeholder-plan")), "{left:?}");
    assert!(!work.join("terraform/vpc/stamp.tfplan").exists());

    // Drift: never deployed is "not deployed", not drift (exit 0), and creates nothing either.
    let drift = fleet.stamp(&["drift", "acme", "--json"]).ok().report();
    assert_eq!(drift["drift"], "not deployed", "{drift:#}");
    assert!(fleet.buckets().is_empty());
}

#[test]
fn plan_after_deploy_is_empty_a_replacement_is_loud_and_drift_is_zero() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.20.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "globex", "--auto-approve"]).ok();
    let bucket = "tfstate-123456789012-acme";
    let state_before = fleet.state(bucket, "acme/vpc");
    let images = image_count(&fleet);

    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    for s in ["vpc", "frontends"] {
        let st = stage(&plan, s);
        assert_eq!(st["status"], "unchanged", "{plan:#}");
        assert_eq!(st["changes"], serde_json::json!({"add": 0, "change": 0, "destroy": 0, "replace": 0}));
        assert!(st.get("placeholder").is_none() && st.get("resources").is_none(), "{st:#}");
    }

    // Nothing drifted and nothing pending: exit 0.
    let drift = fleet.stamp(&["drift", "--all"]).ok();
    assert!(drift.stdout.contains("2 customer(s)") && drift.stdout.contains("0 drifted, 0 pending, 2 in sync"), "{}", drift.stdout);
    let d = fleet.stamp(&["drift", "acme", "--json"]).ok().report();
    assert_eq!(d["drift"], "in sync");
    assert_eq!(stage(&d, "vpc")["drifted"], serde_json::json!([]));

    // A new CIDR block replaces the network: listed as a replacement, loudly, with totals.
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.21.0.0/16\"\n");
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    let vpc = stage(&plan, "vpc");
    assert_eq!(vpc["changes"], serde_json::json!({"add": 0, "change": 0, "destroy": 0, "replace": 1}));
    assert_eq!(vpc["resources"], serde_json::json!([{"address": "terraform_data.network", "action": "replace"}]));
    assert_eq!(vpc["destroys"], serde_json::json!(["replace terraform_data.network"]));
    let text = fleet.stamp(&["plan", "acme"]).ok();
    assert!(text.stdout.contains("!! -/+ replace  terraform_data.network"), "{}", text.stdout);
    assert!(text.stdout.contains("!! 1 resource(s) would be destroyed or replaced"), "{}", text.stdout);
    assert!(!text.stdout.contains("\x1b["), "no colour without a terminal");
    let table = fleet.stamp(&["plan", "--all"]).ok();
    assert!(table.stdout.lines().any(|l| l.starts_with("TOTAL") && l.ends_with("+0 ~0 -0 -/+1")), "{}", table.stdout);
    assert!(table.stdout.contains("!! -/+ replace  acme vpc: terraform_data.network"), "{}", table.stdout);
    let data = fleet.stamp(&["plan", "--all", "--json"]).ok().json();
    assert_eq!(data["summary"]["changes"]["replace"], 1);

    // A configuration change is pending, not drift: drift still exits 0.
    let d = fleet.stamp(&["drift", "acme", "--json"]).ok().report();
    assert_eq!(d["drift"], "pending", "{d:#}");
    assert_eq!(stage(&d, "vpc")["resources"], serde_json::json!([{"address": "terraform_data.network", "action": "replace"}]));

    // plan and drift wrote no state, built nothing; drift left no saved plan behind.
    assert_eq!(fleet.state(bucket, "acme/vpc")["serial"], state_before["serial"]);
    assert_eq!(image_count(&fleet), images);
    for dir in ["terraform/vpc", "terraform/frontends/production"] {
        for f in ["stamp-drift.tfplan", "stamp-refresh.tfplan"] {
            assert!(!fleet.path().join(".stamp/acme").join(dir).join(f).exists(), "{dir}/{f} left behind");
        }
    }
}

#[test]
fn a_customer_whose_ami_is_not_deployed_plans_frontends_with_a_placeholder_ami() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // The vpc applied and no frontends state (as after a deploy that stopped at the bake).
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    fleet.aws(&["s3", "rm", "s3://tfstate-123456789012-acme/acme/frontends/production"]);
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!(stage(&plan, "vpc")["status"], "unchanged", "{plan:#}");
    let fe = stage(&plan, "frontends");
    assert_eq!(fe["placeholders"], serde_json::json!(["ami"]), "{fe:#}");
    assert!(fe["detail"].as_str().unwrap().contains("placeholder AMI: the real plan comes after `stamp deploy`"), "{fe:#}");
    // The deploy that follows plans for real and applies with the real AMI.
    let done = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let ami = done["outputs"]["ami_id"].as_str().unwrap();
    assert_ne!(ami, "ami-00000000000000000");
    assert_eq!(fleet.state("tfstate-123456789012-acme", "acme/frontends/production")["outputs"]["ami_id"]["value"], ami);
}

#[test]
fn a_plan_takes_no_state_lock_and_names_the_run_that_holds_one() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    let bucket = "tfstate-123456789012-acme";

    // Another run holds the vpc's lock (a deploy applying it, or one that was killed).
    let lock = r#"{"ID":"5e1d2c3b-aaaa-bbbb-cccc-000000000002","Operation":"OperationTypeApply","Who":"runner@ci-7","Version":"1.11.4","Created":"2026-11-25T10:00:00Z"}"#;
    let lock_file = fleet.path().join("lock.json");
    std::fs::write(&lock_file, lock).unwrap();
    fleet.aws(&["s3", "cp", lock_file.to_str().unwrap(), &format!("s3://{bucket}/acme/vpc.tflock")]);

    // The plan neither waits for that lock nor fails on it: it takes none. It says who holds it.
    let plan = fleet.stamp(&["plan", "acme", "--json", "--lock-timeout", "2s"]).ok().report();
    let vpc = stage(&plan, "vpc");
    assert_eq!(vpc["status"], "unchanged", "{plan:#}");
    assert_eq!(
        vpc["lock_held"],
        serde_json::json!({"who": "runner@ci-7", "operation": "OperationTypeApply", "created": "2026-11-25T10:00:00Z",
                           "id": "5e1d2c3b-aaaa-bbbb-cccc-000000000002"}),
        "{vpc:#}"
    );
    assert!(stage(&plan, "frontends").get("lock_held").is_none(), "only the vpc's lock is held: {plan:#}");
    let text = fleet.stamp(&["plan", "acme", "--lock-timeout", "2s"]).ok();
    assert!(
        text.stdout.contains(
            "lock: acme vpc: the state lock is held by runner@ci-7 (OperationTypeApply, since 2026-11-25T10:00:00Z, lock ID 5e1d2c3b-aaaa-bbbb-cccc-000000000002)"
        ),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("state lock held by runner@ci-7"), "the stage's detail says it too: {}", text.stdout);

    // The lock is the other run's, untouched; and no plan wrote a lock of its own to S3
    // (the log of every terraform plan shows -lock=false).
    let left = fleet.aws(&["s3", "cp", &format!("s3://{bucket}/acme/vpc.tflock"), "-"]);
    assert!(left.contains("5e1d2c3b-aaaa-bbbb-cccc-000000000002"), "{left}");
    assert!(
        fleet.aws_raw(&["s3api", "head-object", "--bucket", bucket, "--key", "acme/frontends/production.tflock"]).status.code() != Some(0)
    );
    for s in ["vpc", "frontends"] {
        let log = fleet.log("acme", s);
        let plans: Vec<&str> = log.lines().filter(|l| l.contains("] $ ") && l.contains(" plan ")).collect();
        assert!(!plans.is_empty() && plans.iter().all(|l| l.contains(" -lock=false")), "{s}: {plans:#?}");
    }
}
