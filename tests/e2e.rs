//! End to end, with the real aws CLI, terraform and packer against an emulated AWS:
//! two customers deployed, deployed again, planned, read back and destroyed.

mod common;

use common::{Emulator, Fleet, stage_status};
use serde_json::Value;

/// Managed resources in a state (data sources such as terraform_remote_state aside).
fn resources(state: &Value) -> usize {
    state["resources"].as_array().map(|a| a.iter().filter(|r| r["mode"] == "managed").count()).unwrap_or(0)
}

fn output(state: &Value, name: &str) -> Value {
    state["outputs"][name]["value"].clone()
}

fn image_ids(fleet: &Fleet) -> Vec<String> {
    let v = fleet.aws_json(&["ec2", "describe-images", "--owners", "self"]);
    let mut ids: Vec<String> = v["Images"].as_array().unwrap().iter().map(|i| i["ImageId"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[test]
fn two_customers_deploy_redeploy_plan_outputs_destroy() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.20.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v2\"\nenv = \"staging\"\n");

    // First deploys.
    let acme = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let globex = fleet.stamp(&["deploy", "globex", "--auto-approve", "--json"]).ok().report();
    for (report, stage) in [(&acme, "bucket"), (&acme, "vpc"), (&acme, "ami"), (&acme, "frontends"), (&globex, "frontends")] {
        assert_eq!(stage_status(report, stage), "ok", "{report:#}");
    }

    // The bucket, hardened, and the state objects at the documented keys.
    let bucket = acme["state_bucket"].as_str().unwrap().to_owned();
    assert_eq!(bucket, "tfstate-123456789012-acme");
    let mut buckets = fleet.buckets();
    buckets.sort();
    assert_eq!(buckets, vec!["tfstate-123456789012-acme".to_string(), "tfstate-123456789012-globex".to_string()]);
    let versioning = fleet.aws_json(&["s3api", "get-bucket-versioning", "--bucket", &bucket]);
    assert_eq!(versioning["Status"], "Enabled");
    let enc = fleet.aws_json(&["s3api", "get-bucket-encryption", "--bucket", &bucket]);
    assert_eq!(enc["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256");
    let pab = fleet.aws_json(&["s3api", "get-public-access-block", "--bucket", &bucket]);
    assert_eq!(pab["PublicAccessBlockConfiguration"]["BlockPublicAcls"], true);
    assert_eq!(pab["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"], true);

    let acme_vpc = fleet.state(&bucket, "acme/vpc");
    let acme_fe = fleet.state(&bucket, "acme/frontends/production");
    let globex_vpc = fleet.state("tfstate-123456789012-globex", "globex/vpc");
    let globex_fe = fleet.state("tfstate-123456789012-globex", "globex/frontends/staging");
    for s in [&acme_vpc, &acme_fe, &globex_vpc, &globex_fe] {
        assert_eq!(resources(s), 1);
    }

    // Outputs passed between stages: the AMI packer registered and the VPC id.
    let ami = acme["outputs"]["ami_id"].as_str().unwrap().to_owned();
    let vpc_id = output(&acme_vpc, "vpc_id");
    assert!(vpc_id.as_str().unwrap().starts_with("vpc-"));
    assert_ne!(vpc_id, output(&globex_vpc, "vpc_id"), "customers share nothing");
    let images = fleet.aws_json(&["ec2", "describe-images", "--image-ids", &ami]);
    assert_eq!(images["Images"][0]["ImageId"], ami.as_str());
    let tags: Vec<(String, String)> = images["Images"][0]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].as_str().unwrap().to_owned()))
        .collect();
    assert!(tags.contains(&("stamp:customer".into(), "acme".into())), "{tags:?}");
    // The git_id as written, and the commit it named: packer got only the commit.
    assert!(tags.contains(&("stamp:git_id".into(), "v1".into())), "{tags:?}");
    assert!(tags.contains(&("stamp:commit".into(), common::app_commit("v1"))), "{tags:?}");
    // Packer tags the image itself as it registers it (the template's `tags` with
    // the `image_key` variable): no window where an AMI exists untagged.
    assert!(tags.iter().any(|(k, v)| k == "stamp:image_key" && v.len() == 16), "{tags:?}");
    assert!(tags.iter().any(|(k, _)| k == "stamp:template_hash"), "{tags:?}");
    let ami_log = fleet.log("acme", "ami");
    assert!(!ami_log.contains("the template did not tag"), "stamp had to add the image's key tags after the build:\n{ami_log}");
    assert!(ami_log.contains("from the template's tags"), "{ami_log}");
    assert_eq!(output(&acme_fe, "ami_id"), ami.as_str());
    let fe_resource = acme_fe["resources"].as_array().unwrap().iter().find(|r| r["mode"] == "managed").unwrap();
    let fe_input = &fe_resource["instances"][0]["attributes"]["input"]["value"];
    assert_eq!(fe_input["vpc_id"], vpc_id, "frontends state holds the vpc id: {fe_input:#}");
    assert_eq!(fe_input["ami_id"], ami.as_str());
    let url = acme["outputs"]["frontends"]["public_url"].as_str().unwrap();
    assert!(url.starts_with("http://") && url.contains("elb.amazonaws.com"), "{url}");

    // The packer variables file from the vpc outputs.
    let vars: Value = serde_json::from_str(&std::fs::read_to_string(fleet.path().join("vars/acme.json")).unwrap()).unwrap();
    assert_eq!(vars["build_vpc"], vpc_id);
    assert_eq!(vars["build_subnet"], output(&acme_vpc, "build_subnet_id"));
    assert_eq!(vars["git_id"], common::app_commit("v1"), "packer is given the commit v1 names, never the name");
    assert_eq!(vars["aws_endpoint"], fleet.endpoint.as_str());
    // Every variable of the brief's vars/travis.json is recorded.
    for k in ["region", "source_ami", "instance_type", "build_vpc", "build_subnet", "git_id", "ssh_username"] {
        assert!(vars.get(k).is_some(), "vars/acme.json lacks {k}: {vars:#}");
    }
    assert_eq!(vars["instance_type"], "t3.small", "the template's default");

    // Full tool output in the stage logs.
    let vpc_log = fleet.log("acme", "vpc");
    assert!(vpc_log.contains("terraform init") && vpc_log.contains("\"type\":\"apply_complete\""), "{vpc_log}");
    assert!(fleet.log("acme", "ami").contains(",artifact,0,id,eu-west-1:ami-"));

    // Deploy again: nothing changes, the AMI is reused.
    let before = image_ids(&fleet);
    let again = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&again, "vpc"), "unchanged");
    assert_eq!(stage_status(&again, "ami"), "unchanged");
    assert_eq!(stage_status(&again, "frontends"), "unchanged");
    assert_eq!(again["outputs"]["ami_id"], ami.as_str());
    assert_eq!(stage_status(&again, "bucket"), "unchanged", "a hardened bucket is only checked: {again:#}");

    // Someone weakens the bucket by hand: the next deploy says so and puts it back.
    fleet.aws(&["s3api", "delete-public-access-block", "--bucket", &bucket]);
    fleet.aws(&["s3api", "delete-bucket-encryption", "--bucket", &bucket]);
    let fixed = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok();
    let report = fixed.report();
    assert_eq!(stage_status(&report, "bucket"), "ok", "{report:#}");
    let detail = report["stages"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("re-applied default encryption, public access block"), "{detail}");
    assert!(fixed.stderr.contains("had been changed or removed"), "{}", fixed.stderr);
    let pab = fleet.aws_json(&["s3api", "get-public-access-block", "--bucket", &bucket]);
    assert_eq!(pab["PublicAccessBlockConfiguration"]["IgnorePublicAcls"], true);
    let enc = fleet.aws_json(&["s3api", "get-bucket-encryption", "--bucket", &bucket]);
    assert_eq!(enc["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256");

    // Plan: no changes, builds nothing.
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!(stage_status(&plan, "vpc"), "unchanged");
    assert_eq!(stage_status(&plan, "ami"), "skipped");
    assert_eq!(stage_status(&plan, "frontends"), "unchanged");
    assert_eq!(image_ids(&fleet), before, "plan and redeploy build no AMI");
    let text = fleet.stamp(&["plan", "acme"]).ok();
    assert!(text.stdout.contains("no changes"), "{}", text.stdout);

    // A changed input shows up in the plan.
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.21.0.0/16\"\n");
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!(stage_status(&plan, "vpc"), "ok");
    assert!(plan["stages"][1]["detail"].as_str().unwrap().contains("1 to replace"), "{plan:#}");
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.20.0.0/16\"\n");

    // Outputs read back from S3, the same as the deploy reported.
    let outs = fleet.stamp(&["outputs", "acme", "--json"]).ok().report()["outputs"].clone();
    assert_eq!(outs["vpc"]["vpc_id"], vpc_id);
    assert_eq!(outs["frontends/production"]["public_url"], url);
    assert_eq!(outs["frontends/production"]["database_secret_arn"], "(sensitive)");
    let shown = fleet.stamp(&["outputs", "acme", "--json", "--show-sensitive"]).ok().report()["outputs"].clone();
    let secret = shown["frontends/production"]["database_secret_arn"].as_str().unwrap();
    assert!(secret.starts_with("arn:aws:secretsmanager:"));
    // A sensitive output is never in a stage log (CI uploads them), nor in a report.
    for stage in ["bucket", "vpc", "ami", "frontends", "smoke"] {
        assert!(!fleet.log("acme", stage).contains(secret), "the {stage} log holds the sensitive output");
    }
    let last = std::fs::read_to_string(fleet.path().join(".stamp/acme/last-run.json")).unwrap();
    assert!(!last.contains(secret), "last-run.json holds the sensitive output");

    // List shows both.
    let list = fleet.stamp(&["list"]).ok();
    assert!(list.stdout.contains("acme") && list.stdout.contains("globex") && list.stdout.contains("staging"), "{}", list.stdout);

    // Destroy: frontends first, then vpc; the stacks are empty, the AMIs gone.
    let destroyed = fleet.stamp(&["destroy", "acme", "--auto-approve", "--json"]).ok().report();
    let order: Vec<&str> = destroyed["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(order, vec!["bucket", "frontends", "vpc", "ami"]);
    // One log per stage and run: the state reads did not replace the bucket check's log.
    let bucket_log = fleet.log("acme", "bucket");
    assert!(bucket_log.contains("HeadBucket") && bucket_log.contains("GetObject"), "{bucket_log}");
    assert_eq!(resources(&fleet.state(&bucket, "acme/vpc")), 0);
    assert_eq!(resources(&fleet.state(&bucket, "acme/frontends/production")), 0);
    let vpcs = fleet.aws_json(&["ec2", "describe-vpcs", "--filters", "Name=tag:stamp-standin,Values=acme"]);
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 0);
    assert!(!image_ids(&fleet).contains(&ami));
    // globex is untouched.
    assert_eq!(resources(&fleet.state("tfstate-123456789012-globex", "globex/vpc")), 1);
    fleet.stamp(&["outputs", "acme"]).code(1).stderr_has("not deployed");
    // Destroying again is a no-op, not an error.
    let again = fleet.stamp(&["destroy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&again, "vpc"), "skipped");
}

#[test]
fn render_writes_every_generated_file_and_runs_nothing() {
    let emu = Emulator::start();
    let fleet = Fleet::with_toml(&emu, &format!("{}\n", common::FLEET_TOML.replace("[aws]\n", "[aws]\naccount_id = \"210987654321\"\n")));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let run = fleet.stamp(&["render", "acme"]).ok();
    let work = fleet.path().join(".stamp/acme");
    let backend = std::fs::read_to_string(work.join("terraform/vpc/stamp_backend.tf")).unwrap();
    assert!(backend.contains("bucket                      = \"tfstate-210987654321-acme\""), "{backend}");
    assert!(backend.contains("key                         = \"acme/vpc\""));
    assert!(backend.contains("use_lockfile"));
    let vars = std::fs::read_to_string(work.join("terraform/vpc/stamp.tfvars.json")).unwrap();
    assert!(vars.contains("\"customer\": \"acme\""), "{vars}");
    let db = std::fs::read_to_string(work.join("app/config/database.yml")).unwrap();
    assert!(db.contains("production"), "{db}");
    assert!(run.stderr.contains("after the first deploy"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty(), "render creates nothing");
    // Render runs neither terraform nor packer, so it does not need them; deploy does.
    let without =
        common::FLEET_TOML.replace("{tools}/packer", "/nonexistent/packer").replace("{tools}/terraform", "/nonexistent/terraform");
    fleet.write_config(&without.replace("[aws]\n", "[aws]\naccount_id = \"210987654321\"\n"));
    fleet.stamp(&["render", "acme"]).ok();
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("/nonexistent/terraform does not exist");
    assert!(fleet.buckets().is_empty());
}

#[test]
fn doctor_reports_tools_versions_and_credentials() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let run = fleet.stamp(&["doctor"]).ok();
    assert!(run.stdout.contains("ok   terraform") && run.stdout.contains("Terraform v1."), "{}", run.stdout);
    assert!(run.stdout.contains("ok   packer") && run.stdout.contains("Packer v"), "{}", run.stdout);
    assert!(run.stdout.contains("credentials work, account 123456789012"), "{}", run.stdout);
    // A tool that is not there, and an endpoint that does not answer.
    fleet.write_config(&common::FLEET_TOML.replace("{tools}/packer", "/nonexistent/packer").replace("{endpoint}", "http://127.0.0.1:9"));
    let run = fleet.stamp(&["doctor"]).code(1);
    assert!(run.stdout.contains("FAIL packer") && run.stdout.contains("/nonexistent/packer"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL aws"), "{}", run.stdout);
}

#[test]
fn packer_1_10_or_newer_gets_the_amazon_plugin_installed_once() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let fake = common::repo().join("tests/fakes/packer-1.11-without-amazon-plugin");
    fleet.write_config(&common::FLEET_TOML.replace("{tools}/packer", &fake.display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let log = fleet.path().join("packer-calls.txt");
    let deploy = |rebuild: bool| {
        let mut args = vec!["deploy", "acme", "--auto-approve", "--json"];
        if rebuild {
            args.push("--rebuild-ami");
        }
        let out = fleet.stamp_cmd(&args).env("FAKE_PACKER_LOG", &log).env("REAL_PACKER", common::tool("packer")).output().unwrap();
        common::Run::from(out, &args).ok().report()
    };
    let report = deploy(false);
    assert_eq!(stage_status(&report, "ami"), "ok");
    deploy(true);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.matches("plugins install github.com/hashicorp/amazon").count(), 1, "{calls}");
    assert_eq!(calls.lines().filter(|l| l.starts_with("build ")).count(), 2, "{calls}");
}

#[test]
fn an_image_the_template_does_not_tag_is_tagged_by_stamp_after_the_build() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // The stand-in template without stamp's tags, as a user's own template may be.
    let dir = fleet.path().join("packer");
    std::fs::create_dir_all(&dir).unwrap();
    let mut t: Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo().join("tests/standin/packer/template.json")).unwrap()).unwrap();
    t["builders"][0]["tags"] = serde_json::json!({ "Name": "app" });
    std::fs::write(dir.join("template.json"), serde_json::to_string_pretty(&t).unwrap()).unwrap();
    fleet.write_config(
        &common::FLEET_TOML.replace("{repo}/tests/standin/packer/template.json", &dir.join("template.json").display().to_string()),
    );
    fleet.customer("acme", "git_id = \"v1\"\n");
    let report = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let ami = report["outputs"]["ami_id"].as_str().unwrap().to_owned();
    let images = fleet.aws_json(&["ec2", "describe-images", "--image-ids", &ami]);
    let keys: Vec<&str> = images["Images"][0]["Tags"].as_array().unwrap().iter().map(|t| t["Key"].as_str().unwrap()).collect();
    for k in ["stamp:customer", "stamp:git_id", "stamp:commit", "stamp:template_hash", "stamp:image_key"] {
        assert!(keys.contains(&k), "{k} missing: {keys:?}");
    }
    let log = fleet.log("acme", "ami");
    assert!(log.contains("create-tags") && log.contains("the template did not tag"), "{log}");
    // Found again by its tags: the next deploy reuses it.
    let again = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!(again["outputs"]["ami_id"], ami.as_str());
}
