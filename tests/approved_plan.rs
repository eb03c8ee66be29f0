//! Only what was reviewed is applied: `stamp plan --out FILE` records the plan, and
//! `stamp deploy --approved-plan FILE` refuses, before the apply, a stack whose plan
//! now destroys or replaces something the file does not list. Without an approved
//! plan an unattended deploy destroys and replaces nothing unless `--allow-destroy`
//! or `[fleet] allow_destroy` says so. Real stamp, stand-in stacks, the emulator.

mod common;

use std::path::Path;

use common::{Emulator, FLEET_TOML, FaultProxy, Fleet, Run, stage_status};
use serde_json::Value;

const BUCKET: &str = "tfstate-123456789012-acme";

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name} in {report:#}"))
}

fn acme(cidr: &str) -> String {
    format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"{cidr}\"\n")
}

/// The vpc state's serial and the CIDR block it holds.
fn vpc_state(fleet: &Fleet, bucket: &str, customer: &str) -> (u64, String) {
    let s = fleet.state(bucket, &format!("{customer}/vpc"));
    let cidr = s["resources"][0]["instances"][0]["attributes"]["input"]["value"]["cidr_block"].as_str().unwrap_or_default().to_owned();
    (s["serial"].as_u64().unwrap(), cidr)
}

fn plan_out(fleet: &Fleet, file: &Path, customers: &[&str]) -> Run {
    let mut args = vec!["plan"];
    args.extend(customers);
    args.extend(["--out", file.to_str().unwrap()]);
    fleet.stamp(&args)
}

#[test]
fn a_reviewed_replacement_is_applied_with_the_approved_plan() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", &acme("10.20.0.0/16"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();

    // The change replaces the network: the plan records it, and says so to the next steps.
    fleet.customer("acme", &acme("10.21.0.0/16"));
    let file = fleet.path().join("plan.json");
    let outputs = fleet.path().join("github-output");
    let args = ["plan", "acme", "--out", file.to_str().unwrap()];
    Run::from(fleet.stamp_cmd(&args).env("GITHUB_OUTPUT", &outputs).output().unwrap(), &args).ok();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(2), Some("plan")), "{doc:#}");
    common::check_schema("plan", &std::fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc["customers"].as_array().unwrap().len(), 1, "one customer, still a list: {doc:#}");
    let vpc = stage(&doc["customers"][0], "vpc");
    assert_eq!(vpc["destroys"], serde_json::json!(["replace terraform_data.network"]), "{doc:#}");
    assert_eq!(vpc["resources"], serde_json::json!([{"address": "terraform_data.network", "action": "replace"}]));
    assert_eq!(doc["summary"]["changes"]["replace"], 1, "{doc:#}");
    assert_eq!(std::fs::read_to_string(&outputs).unwrap(), "change_count=1\ndestroy_count=1\ncustomers=acme\n");

    // Deployed as approved: no terminal, no --auto-approve; the replacement is applied.
    let done = fleet.stamp(&["deploy", "acme", "--approved-plan", file.to_str().unwrap(), "--json"]).ok().report();
    assert_eq!(stage(&done, "vpc")["changes"]["replace"], 1, "{done:#}");
    assert_eq!(stage_status(&done, "frontends"), "ok");
    assert_eq!(vpc_state(&fleet, BUCKET, "acme").1, "10.21.0.0/16");
}

#[test]
fn a_destroy_the_approved_plan_does_not_list_is_refused_before_its_apply() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", &acme("10.20.0.0/16"));
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.30.0.0/16\"\n");
    fleet.stamp(&["deploy", "acme", "globex", "--auto-approve"]).ok();
    let before = (vpc_state(&fleet, BUCKET, "acme"), vpc_state(&fleet, "tfstate-123456789012-globex", "globex"));

    // Reviewed and approved: acme with nothing to change. globex is not in the file.
    let file = fleet.path().join("plan.json");
    plan_out(&fleet, &file, &["acme"]).ok();
    // Then, after the review, both customers' networks are to be replaced.
    fleet.customer("acme", &acme("10.21.0.0/16"));
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.31.0.0/16\"\n");

    let run = fleet.stamp(&["deploy", "acme", "globex", "--approved-plan", file.to_str().unwrap(), "--json"]).code(1);
    let reports = run.json();
    for c in ["acme", "globex"] {
        let r = reports["customers"].as_array().unwrap().iter().find(|r| r["customer"] == c).unwrap();
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["failed_stage"], "vpc", "{r:#}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains("not applied: the plan now would replace terraform_data.network"), "{error}");
        assert!(error.contains(&format!("does not list for {c} vpc")) && error.contains("--approved-plan FILE"), "{error}");
        assert!(r["stages"].as_array().unwrap().iter().all(|s| s["name"] != "frontends"), "{c}: nothing after the refusal ran: {r:#}");
    }
    // Nothing was applied: both states are as they were.
    assert_eq!((vpc_state(&fleet, BUCKET, "acme"), vpc_state(&fleet, "tfstate-123456789012-globex", "globex")), before);
    assert!(run.stderr.contains("hint: something changed since that plan was made"), "{}", run.stderr);
}

#[test]
fn without_an_approved_plan_an_unattended_deploy_destroys_nothing_unless_allowed() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", &acme("10.20.0.0/16"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    let before = vpc_state(&fleet, BUCKET, "acme");

    // --auto-approve applies creates and updates, never an unreviewed replacement.
    fleet.customer("acme", &acme("10.21.0.0/16"));
    let refused = fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(1);
    assert!(refused.stderr.contains("vpc: not applied: the plan would replace terraform_data.network"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--allow-destroy") && refused.stderr.contains("[fleet] allow_destroy = true"), "{}", refused.stderr);
    assert_eq!(vpc_state(&fleet, BUCKET, "acme"), before, "a refused replacement was applied");

    // Allowed for one run.
    let done = fleet.stamp(&["deploy", "acme", "--auto-approve", "--allow-destroy", "--json"]).ok().report();
    assert_eq!(stage(&done, "vpc")["changes"]["replace"], 1, "{done:#}");
    assert_eq!(vpc_state(&fleet, BUCKET, "acme").1, "10.21.0.0/16");

    // Allowed for the fleet, in stamp.toml.
    fleet.write_config(&FLEET_TOML.replace("[fleet]\n", "[fleet]\nallow_destroy = true\n"));
    fleet.customer("acme", &acme("10.22.0.0/16"));
    let run = fleet.stamp(&["deploy", "acme", "--auto-approve"]).ok();
    assert!(run.stderr.contains("[fleet] allow_destroy = true (") && run.stderr.contains("stamp.toml:3)"), "{}", run.stderr);
    assert_eq!(vpc_state(&fleet, BUCKET, "acme").1, "10.22.0.0/16");
}

#[test]
fn a_rerun_of_the_approved_plan_after_a_failed_apply_replaces_what_that_apply_left_tainted() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", &acme("10.20.0.0/16"));
    let file = fleet.path().join("plan.json");
    plan_out(&fleet, &file, &["acme"]).ok();

    // The frontends' create fails part-way (AWS refuses the load balancer): terraform
    // keeps the half-made resource, tainted.
    proxy.set_rules(serde_json::json!([{"body": "Action=CreateLoadBalancer", "action": "status", "status": 400,
                                         "code": "ValidationError", "message": "injected by tests/approved_plan.rs"}]));
    let failed = fleet.stamp(&["deploy", "acme", "--approved-plan", file.to_str().unwrap(), "--json"]).code(1).report();
    assert_eq!(failed["failed_stage"], "frontends", "{failed:#}");

    // "Re-run failed jobs": the same approved plan. The tainted resource must be
    // replaced to go on, whatever the plan listed: it is, and said to be tainted.
    proxy.set_rules(serde_json::json!([]));
    let done = fleet.stamp(&["deploy", "acme", "--approved-plan", file.to_str().unwrap(), "--json"]).ok().report();
    let fe = stage(&done, "frontends");
    assert_eq!(
        fe["resources"],
        serde_json::json!([{"address": "module.frontend.terraform_data.frontend", "action": "replace", "tainted": true}]),
        "{done:#}"
    );
}

#[test]
fn a_bad_approved_plan_is_refused_before_anything_starts() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", &acme("10.20.0.0/16"));
    let write = |name: &str, text: &str| {
        let p = fleet.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let one_report = r#"{"schema_version": 2, "customer": "acme", "operation": "plan", "stages": []}"#;
    let deploy_report = r#"{"schema_version": 1, "kind": "plan", "customers": [{"schema_version": 2, "customer": "acme",
        "operation": "deploy", "env": "production", "region": "eu-west-1", "status": "ok", "started_at": "", "duration_s": 1.0,
        "state_bucket": null, "stages": [], "outputs": {}, "log_dir": "/x"}], "summary": {}}"#;
    let cases = [
        (fleet.path().join("missing.json").to_str().unwrap().to_owned(), "cannot read it"),
        (write("text.json", "not json\n"), "not a plan file"),
        (write("report.json", one_report), "its \"kind\" is \"\", not \"plan\""),
        (write("v3.json", r#"{"schema_version": 3, "kind": "plan", "customers": []}"#), "schema_version 3 is not 1 or 2"),
        (
            write("customers.json", r#"{"schema_version": 1, "kind": "plan", "customers": [{"customer": 3}]}"#),
            "its customers cannot be read",
        ),
        (write("deploy.json", deploy_report), "the report of acme is a deploy, not a plan"),
    ];
    for (file, why) in cases {
        let run = fleet.stamp(&["deploy", "acme", "--approved-plan", &file]).code(2);
        assert!(run.stderr.contains(&format!("error: --approved-plan {file}: ")) && run.stderr.contains(why), "{why}:\n{}", run.stderr);
        assert!(run.stderr.contains("stamp plan CUSTOMERS --out FILE"), "{}", run.stderr);
    }
    fleet.stamp(&["deploy", "acme", "--approved-plan", "plan.json", "--allow-destroy"]).code(2).stderr_has("cannot be used with");
    fleet.stamp(&["plan", "acme", "--out", "no/such/dir/plan.json"]).code(2).stderr_has("the directory no/such/dir does not exist");
    fleet.stamp(&["plan", "acme", "--out", "."]).code(2).stderr_has("is a directory");
    assert!(fleet.buckets().is_empty(), "something was created: {:?}", fleet.buckets());
    assert!(!fleet.path().join(".stamp/acme/logs").exists(), "a stage started");
}
