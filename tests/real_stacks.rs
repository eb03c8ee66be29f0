//! The real stacks (terraform/, on the real hashicorp/aws provider) and the real
//! packer template (its emulator builder), deployed through `stamp deploy` against
//! an emulated AWS: every stage, then what was created is checked with the AWS CLI,
//! a second plan and deploy of the unchanged customer change nothing, and destroy
//! leaves nothing of the customer behind. A few minutes each (the provider polls the
//! load balancer and the database), so they run in their own suite:
//! `make test-aws` (= cargo test --test real_stacks -- --ignored).

mod common;
#[path = "support/iam.rs"]
mod iam;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{Emulator, FaultProxy, Fleet, stage_status};
use serde_json::Value;

const REAL_FLEET_TOML: &str = r#"
[fleet]
region = "eu-west-1"
default_env = "production"
envs = ["production", "staging"]
app_repo = "{app_repo}"

[paths]
terraform = "{repo}/terraform"
packer = "{repo}/packer/template.json"
app_templates = "{repo}/templates/app"

[aws]
endpoint = "{endpoint}"

[tools]
terraform = "{tools}/terraform"
packer = "{tools}/packer"
aws = "{tools}/aws"

[packer]
only = ["emulator"]

[smoke]
# moto's load balancers serve no HTTP: nothing answers at public_url in the
# emulator, so the check after the frontends is off here (on AWS it is on).
enabled = false
"#;

/// Resources that must never change when nothing changed: a new launch template
/// version rolls every instance of the customer.
const NEVER_ON_REDEPLOY: &[&str] = &["module.frontend.aws_launch_template.app", "module.frontend.aws_autoscaling_group.app"];

fn real_fleet(emu: &Emulator) -> Fleet {
    Fleet::with_toml(emu, REAL_FLEET_TOML)
}

/// Runs terraform in a customer's working copy, with stamp's environment for it.
fn terraform(fleet: &Fleet, dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(common::tool("terraform"));
    fleet.trust(&mut cmd);
    let out = cmd
        .current_dir(dir)
        .args(args)
        .env("AWS_ENDPOINT_URL", &fleet.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("TF_CLI_CONFIG_FILE", common::tools().join("../terraformrc"))
        .env("TF_IN_AUTOMATION", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "terraform {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The in-place updates a plan of the working copy `stamp plan` prepared would make
/// (stamp removes its own saved plans: they hold every value in clear):
/// (address, attribute) pairs whose planned value differs from the state's.
fn planned_updates(fleet: &Fleet, customer: &str, stack: &str) -> BTreeSet<(String, String)> {
    let dir = fleet.path().join(".stamp").join(customer).join("terraform").join(stack);
    terraform(fleet, &dir, &["plan", "-input=false", "-lock-timeout=60s", "-var-file=stamp.tfvars.json", "-out=check.tfplan"]);
    let plan: Value = serde_json::from_str(&terraform(fleet, &dir, &["show", "-json", "check.tfplan"])).unwrap();
    std::fs::remove_file(dir.join("check.tfplan")).unwrap();
    let mut updates = BTreeSet::new();
    for rc in plan["resource_changes"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = rc["change"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        if actions == ["no-op"] || actions == ["read"] {
            continue;
        }
        let address = rc["address"].as_str().unwrap().to_owned();
        assert_eq!(actions, ["update"], "{address} would be {actions:?} on an unchanged customer");
        let (before, after) = (&rc["change"]["before"], &rc["change"]["after"]);
        let unknown = &rc["change"]["after_unknown"];
        for (k, b) in before.as_object().unwrap() {
            let changed = after.get(k).is_some_and(|a| a != b) || unknown.get(k).is_some_and(|u| u == &Value::Bool(true));
            if changed && k != "tags_all" {
                updates.insert((address.clone(), k.clone()));
            }
        }
    }
    updates
}

fn tag<'a>(tags: &'a Value, key: &str, key_field: &str, value_field: &str) -> Option<&'a str> {
    tags.as_array()?.iter().find(|t| t[key_field] == key).and_then(|t| t[value_field].as_str())
}

/// Every AWS resource the tagging API knows with `customer = <customer>`.
fn tagged_with(fleet: &Fleet, customer: &str) -> Vec<Value> {
    let v = fleet.aws_json(&["resourcegroupstaggingapi", "get-resources", "--tag-filters", &format!("Key=customer,Values={customer}")]);
    v["ResourceTagMappingList"].as_array().cloned().unwrap_or_default()
}

/// Deploys `customer` in `env` with every stage, checks it with the AWS CLI,
/// redeploys it, and returns the deploy report.
fn deploy_and_check(fleet: &Fleet, customer: &str, env: &str) -> Value {
    let report = fleet.stamp(&["deploy", customer, "--auto-approve", "--json"]).ok().report();
    for stage in ["bucket", "vpc", "ami", "frontends"] {
        assert_eq!(stage_status(&report, stage), "ok", "{report:#}");
    }
    let vpc_id = report["outputs"]["vpc"]["vpc_id"].as_str().unwrap().to_owned();
    let ami = report["outputs"]["ami_id"].as_str().unwrap().to_owned();
    let fe = &report["outputs"]["frontends"];

    // The VPC and its four subnets, tagged.
    let vpcs = fleet.aws_json(&["ec2", "describe-vpcs", "--vpc-ids", &vpc_id]);
    let tags = &vpcs["Vpcs"][0]["Tags"];
    assert_eq!(tag(tags, "customer", "Key", "Value"), Some(customer), "{vpcs:#}");
    assert_eq!(tag(tags, "env", "Key", "Value"), Some(env), "{vpcs:#}");
    let subnets = fleet.aws_json(&["ec2", "describe-subnets", "--filters", &format!("Name=vpc-id,Values={vpc_id}")]);
    assert_eq!(subnets["Subnets"].as_array().unwrap().len(), 4, "two public, two private: {subnets:#}");

    // The load balancer, its listener and target group.
    let dns = fe["load_balancer_dns_name"].as_str().unwrap();
    assert_eq!(fe["public_url"], format!("http://{dns}"));
    let lbs = fleet.aws_json(&["elbv2", "describe-load-balancers"]);
    let lb = lbs["LoadBalancers"].as_array().unwrap().iter().find(|l| l["DNSName"] == dns).expect("the load balancer").clone();
    assert_eq!(lb["VpcId"], vpc_id.as_str());
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap();
    let listeners = fleet.aws_json(&["elbv2", "describe-listeners", "--load-balancer-arn", lb_arn]);
    let listener = &listeners["Listeners"][0];
    assert_eq!(listener["Port"], 80, "{listeners:#}");
    let tg_arn = listener["DefaultActions"][0]["TargetGroupArn"].as_str().expect("forwards to a target group");
    let tgs = fleet.aws_json(&["elbv2", "describe-target-groups", "--target-group-arns", tg_arn]);
    assert_eq!(tgs["TargetGroups"][0]["VpcId"], vpc_id.as_str());
    let lb_tags = fleet.aws_json(&["elbv2", "describe-tags", "--resource-arns", lb_arn]);
    assert_eq!(tag(&lb_tags["TagDescriptions"][0]["Tags"], "customer", "Key", "Value"), Some(customer));

    // The auto-scaling group, behind the target group, on a launch template that
    // runs the AMI stamp's packer stage baked.
    let asg_name = fe["autoscaling_group_name"].as_str().unwrap();
    let asgs = fleet.aws_json(&["autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", asg_name]);
    let asg = &asgs["AutoScalingGroups"][0];
    assert!(asg["TargetGroupARNs"].as_array().unwrap().iter().any(|t| t == tg_arn), "{asg:#}");
    assert_eq!(tag(&asg["Tags"], "customer", "Key", "Value"), Some(customer));
    assert_eq!(tag(&asg["Tags"], "env", "Key", "Value"), Some(env));
    let lt_id = asg["LaunchTemplate"]["LaunchTemplateId"].as_str().expect("a launch template");
    let versions = fleet.aws_json(&["ec2", "describe-launch-template-versions", "--launch-template-id", lt_id, "--versions", "$Latest"]);
    assert_eq!(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"], ami.as_str(), "{versions:#}");
    let image = fleet.aws_json(&["ec2", "describe-images", "--image-ids", &ami]);
    assert_eq!(tag(&image["Images"][0]["Tags"], "stamp:customer", "Key", "Value"), Some(customer), "{image:#}");

    // The database, and the secrets (the RDS-managed master password, SECRET_KEY_BASE).
    let endpoint = fe["database_endpoint"].as_str().unwrap();
    let db_id = format!("{customer}-{env}");
    let dbs = fleet.aws_json(&["rds", "describe-db-instances", "--db-instance-identifier", &db_id]);
    let db = &dbs["DBInstances"][0];
    assert_eq!(format!("{}:{}", db["Endpoint"]["Address"].as_str().unwrap(), db["Endpoint"]["Port"]), endpoint);
    assert_eq!(db["Engine"], "mysql");
    assert_eq!(db["StorageEncrypted"], true);
    assert_eq!(db["DeletionProtection"], env == "production");
    assert_eq!(tag(&db["TagList"], "customer", "Key", "Value"), Some(customer));
    // The output names the secret RDS manages (an ARN, not the secret itself).
    assert_eq!(fe["database_secret_arn"], db["MasterUserSecret"]["SecretArn"], "{db:#}");
    let secrets = fleet.aws_json(&["secretsmanager", "list-secrets"]);
    let ours: Vec<&Value> = secrets["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| tag(&s["Tags"], "customer", "Key", "Value") == Some(customer) || s["ARN"] == db["MasterUserSecret"]["SecretArn"])
        .collect();
    assert_eq!(ours.len(), 2, "the master password and SECRET_KEY_BASE: {secrets:#}");

    // Everything the tagging API knows of this customer carries its env too, but
    // the AMI and its snapshot: an image serves the customer, whatever the env.
    let tagged = tagged_with(fleet, customer);
    assert!(tagged.len() >= 10, "{tagged:#?}");
    for r in &tagged {
        assert_eq!(tag(&r["Tags"], "managed_by", "Key", "Value"), Some("stamp"), "{r:#}");
        let arn = r["ResourceARN"].as_str().unwrap();
        if arn.contains(":image/") || arn.contains(":snapshot/") {
            assert_eq!(tag(&r["Tags"], "stamp:customer", "Key", "Value").or(tag(&r["Tags"], "customer", "Key", "Value")), Some(customer));
            continue;
        }
        assert_eq!(tag(&r["Tags"], "env", "Key", "Value"), Some(env), "{r:#}");
    }

    // A second deploy of the unchanged customer: the vpc has no changes, the AMI is
    // reused, and the frontends plan shows only the emulator's read-back gaps.
    let plan = fleet.stamp(&["plan", customer, "--json"]).ok().report();
    assert_eq!(stage_status(&plan, "vpc"), "unchanged", "{plan:#}");
    // moto 5.2.1 reads back ten values differently from AWS (docs/moto.md "Emulator gaps");
    // scripts/moto_server.py restores the AWS behaviour on each, so any update is ours.
    let updates = planned_updates(fleet, customer, &format!("frontends/{env}"));
    assert!(updates.is_empty(), "updates on an unchanged customer: {updates:?}");
    for never in NEVER_ON_REDEPLOY {
        assert!(!updates.iter().any(|(a, _)| a == never), "{never} changes on an unchanged customer: {updates:?}");
    }
    let started = std::time::Instant::now();
    let again = fleet.stamp(&["deploy", customer, "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&again, "vpc"), "unchanged");
    assert_eq!(stage_status(&again, "ami"), "unchanged");
    assert_eq!(stage_status(&again, "frontends"), "unchanged", "{again:#}");
    assert_eq!(again["outputs"]["ami_id"], ami.as_str());
    let versions_after = fleet.aws_json(&["ec2", "describe-launch-template-versions", "--launch-template-id", lt_id]);
    assert_eq!(
        versions_after["LaunchTemplateVersions"].as_array().unwrap().len(),
        versions["LaunchTemplateVersions"].as_array().unwrap().len().max(1),
        "a redeploy made a new launch template version"
    );
    // Generous: seconds of work, the rest is tool start-up on a loaded 2-core machine.
    assert!(started.elapsed().as_secs() < 90, "an unchanged redeploy took {:?}", started.elapsed());
    report
}

/// Nothing tagged with the customer is left but what docs/deploying-on-aws.md says a destroy keeps:
/// the final database snapshot, KMS keys pending deletion, secrets in their recovery window.
fn assert_nothing_left(fleet: &Fleet, customer: &str) {
    let mut left = Vec::new();
    for r in tagged_with(fleet, customer) {
        let arn = r["ResourceARN"].as_str().unwrap();
        // RDS snapshots: the final one (kept on purpose) and, on moto only, the
        // automated one (AWS deletes it with the instance; docs/moto.md "Emulator gaps").
        if arn.contains(":rds:") && arn.contains(":snapshot:") {
            assert!(arn.contains(&format!(":snapshot:{customer}-")) || arn.contains(&format!(":snapshot:rds:{customer}-")), "{arn}");
            continue;
        }
        if arn.contains(":kms:") {
            let key = fleet.aws_json(&["kms", "describe-key", "--key-id", arn]);
            assert_eq!(key["KeyMetadata"]["KeyState"], "PendingDeletion", "{arn}");
            continue;
        }
        if arn.contains(":secretsmanager:") {
            let s = fleet.aws_raw(&["secretsmanager", "describe-secret", "--secret-id", arn]);
            if s.status.success() {
                let v: Value = serde_json::from_slice(&s.stdout).unwrap();
                assert!(v.get("DeletedDate").is_some(), "secret {arn} is not scheduled for deletion: {v:#}");
            }
            continue;
        }
        if arn.contains(":instance/") {
            let id = arn.rsplit('/').next().unwrap();
            let i = fleet.aws_json(&["ec2", "describe-instances", "--instance-ids", id]);
            let state = i["Reservations"][0]["Instances"][0]["State"]["Name"].as_str().unwrap_or("terminated");
            assert!(state == "terminated" || state == "shutting-down", "{arn} is {state}");
            continue;
        }
        // AWS, like moto, lists a deleted NAT gateway for a while, in state `deleted`.
        if arn.contains(":natgateway/") {
            let id = arn.rsplit('/').next().unwrap();
            let n = fleet.aws_json(&["ec2", "describe-nat-gateways", "--nat-gateway-ids", id]);
            let state = n["NatGateways"][0]["State"].as_str().unwrap_or("deleted");
            assert!(state == "deleted" || state == "deleting", "{arn} is {state}");
            continue;
        }
        left.push(arn.to_owned());
    }
    assert!(left.is_empty(), "left after destroy: {left:#?}");
    let vpcs = fleet.aws_json(&["ec2", "describe-vpcs", "--filters", &format!("Name=tag:customer,Values={customer}")]);
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 0, "{vpcs:#}");
    let asgs = fleet.aws_json(&["autoscaling", "describe-auto-scaling-groups"]);
    assert!(
        !asgs["AutoScalingGroups"].as_array().unwrap().iter().any(|a| tag(&a["Tags"], "customer", "Key", "Value") == Some(customer)),
        "{asgs:#}"
    );
    let dbs = fleet.aws_json(&["rds", "describe-db-instances"]);
    assert!(
        !dbs["DBInstances"].as_array().unwrap().iter().any(|d| d["DBInstanceIdentifier"].as_str().unwrap().starts_with(customer)),
        "{dbs:#}"
    );
    let images =
        fleet.aws_json(&["ec2", "describe-images", "--owners", "self", "--filters", &format!("Name=tag:stamp:customer,Values={customer}")]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 0, "{images:#}");
}

#[test]
#[ignore = "real stacks on the real provider, minutes: make test-aws"]
fn staging_customer_deploys_redeploys_and_destroys_with_the_real_stacks() {
    // Over HTTPS, as on AWS: the state bucket gets its TLS-only policy, which the
    // emulator enforces, and every tool trusts the emulator's CA through AWS_CA_BUNDLE.
    let emu = Emulator::start_tls();
    let fleet = real_fleet(&emu);
    fleet.customer("initech", "env = \"staging\"\ngit_id = \"v1.0.0\"\n[vpc.vars]\ncidr_block = \"10.30.0.0/16\"\n");
    deploy_and_check(&fleet, "initech", "staging");
    let policy = fleet.aws_json(&["s3api", "get-bucket-policy", "--bucket", "tfstate-123456789012-initech"]);
    assert!(policy["Policy"].as_str().unwrap().contains("aws:SecureTransport"), "{policy:#}");

    let destroyed = fleet.stamp(&["destroy", "initech", "--auto-approve", "--json"]).ok().report();
    let order: Vec<&str> = destroyed["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(order, vec!["bucket", "frontends", "vpc", "ami"]);
    assert_nothing_left(&fleet, "initech");
    // The final snapshot RDS took is kept, as docs/deploying-on-aws.md says.
    let snaps = fleet.aws_json(&["rds", "describe-db-snapshots", "--snapshot-type", "manual"]);
    assert!(snaps["DBSnapshots"].as_array().unwrap().iter().any(|s| s["DBInstanceIdentifier"] == "initech-staging"), "{snaps:#}");
}

#[test]
#[ignore = "real stacks on the real provider, minutes: make test-aws"]
fn production_customer_is_protected_from_destroy_until_the_operator_says_so() {
    let emu = Emulator::start();
    let fleet = real_fleet(&emu);
    fleet.customer("hooli", "env = \"production\"\ngit_id = \"v2.0.0\"\n[vpc.vars]\ncidr_block = \"10.40.0.0/16\"\n");
    deploy_and_check(&fleet, "hooli", "production");
    let before = tagged_with(&fleet, "hooli").len();

    // Refused before anything is destroyed, with the commands that lift the protection.
    let refused = fleet.stamp(&["destroy", "hooli", "--auto-approve"]).code(1).stderr_has("deletion protection is on");
    assert!(refused.stderr.contains("nothing was destroyed"), "{}", refused.stderr);
    assert_eq!(tagged_with(&fleet, "hooli").len(), before, "a refused destroy destroyed something");
    let commands: Vec<String> = refused.stderr.lines().map(str::trim).filter(|l| l.starts_with("aws ")).map(String::from).collect();
    assert_eq!(commands.len(), 2, "one command for the database, one for the load balancer:\n{}", refused.stderr);

    // The operator runs them (as printed), then destroys for good.
    for c in &commands {
        let args: Vec<&str> = c.split_whitespace().skip(1).collect();
        let out = Command::new(common::tool("aws"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_PAGER", "")
            .output()
            .unwrap();
        assert!(out.status.success(), "{c}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let destroyed = fleet.stamp(&["destroy", "hooli", "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&destroyed, "frontends"), "ok");
    assert_eq!(stage_status(&destroyed, "vpc"), "ok");
    assert_nothing_left(&fleet, "hooli");
}

#[test]
#[ignore = "real stacks on the real provider, minutes: make test-aws"]
fn placeholder_plans_then_drift_names_what_changed_outside_terraform() {
    let emu = Emulator::start();
    let fleet = real_fleet(&emu);
    fleet.customer("umbrella", "env = \"staging\"\ngit_id = \"v3.0.0\"\n[vpc.vars]\ncidr_block = \"10.50.0.0/16\"\n");

    // Never deployed: both real stacks are planned (the frontends with placeholder
    // vpc outputs and AMI, which pass the stack's validation), and nothing is created.
    let plan = fleet.stamp(&["plan", "umbrella", "--json"]).ok().report();
    let stage = |r: &Value, name: &str| r["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let vpc = stage(&plan, "vpc");
    assert!(vpc["changes"]["add"].as_u64().unwrap() > 5, "{vpc:#}");
    assert!(vpc["resources"].as_array().unwrap().iter().any(|r| r["address"] == "aws_vpc.this" && r["action"] == "create"), "{vpc:#}");
    let fe = stage(&plan, "frontends");
    assert_eq!(fe["placeholders"], serde_json::json!(["vpc_outputs", "ami"]), "{fe:#}");
    assert!(fe["changes"]["add"].as_u64().unwrap() > 5, "{fe:#}");
    assert!(fleet.buckets().is_empty(), "a plan created a bucket: {:?}", fleet.buckets());
    assert!(
        fleet.aws_json(&["ec2", "describe-vpcs", "--filters", "Name=tag:customer,Values=umbrella"])["Vpcs"].as_array().unwrap().is_empty()
    );

    let report = fleet.stamp(&["deploy", "umbrella", "--auto-approve", "--json"]).ok().report();
    let vpc_id = report["outputs"]["vpc"]["vpc_id"].as_str().unwrap().to_owned();

    // Just deployed: nothing drifted (exit 0).
    let clean = fleet.stamp(&["drift", "umbrella", "--json"]).ok().report();
    assert_eq!(clean["drift"], "in sync", "{clean:#}");

    // A tag changed by hand on the VPC is drift: exit 3, and the resource is named.
    fleet.aws(&["ec2", "create-tags", "--resources", &vpc_id, "--tags", "Key=env,Value=tampered"]);
    let drifted = fleet.stamp(&["drift", "umbrella"]).code(3);
    assert!(drifted.stdout.contains("!!   ~ update   umbrella vpc: aws_vpc.this"), "{}", drifted.stdout);
    assert!(drifted.stderr.contains("drift found: umbrella"), "{}", drifted.stderr);
    let data = fleet.stamp(&["drift", "umbrella", "--json"]).code(3).report();
    assert_eq!(data["drift"], "drifted");
    let vpc = stage(&data, "vpc");
    assert!(vpc["drifted"].as_array().unwrap().iter().any(|r| r["address"] == "aws_vpc.this"), "{vpc:#}");
    // What a deploy would do about it is pending: put the tag back.
    assert!(vpc["resources"].as_array().unwrap().iter().any(|r| r["address"] == "aws_vpc.this" && r["action"] == "update"), "{vpc:#}");
}

/// The IAM policies of docs/iam/ against the real stacks: every request of a deploy,
/// of a deploy of a new revision, of a rollback to the first (whose launch template
/// then runs the first AMI again) and of a destroy (covered by the deploy role) and of a plan of the deployed customer
/// (the plan role: the provider's Describe/Get/List calls, the state read, no write)
/// is recorded by the fault proxy and mapped to its IAM action (tests/support/iam.rs).
#[test]
#[ignore = "real stacks on the real provider, minutes: make test-aws"]
fn the_iam_roles_cover_a_real_stacks_deploy_plan_rollback_and_destroy() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet { dir: tempfile::tempdir().unwrap(), endpoint: proxy.url.clone() };
    fleet.write_config(REAL_FLEET_TOML);
    std::fs::create_dir_all(fleet.path().join("customers")).unwrap();
    fleet.customer("wayne", "env = \"staging\"\ngit_id = \"v1.0.0\"\n[vpc.vars]\ncidr_block = \"10.60.0.0/16\"\n");
    let policy = |name: &str| iam::Policy::load(&common::repo().join("docs/iam").join(name));
    let (plan_role, deploy_role) = (policy("plan-role-policy.json"), policy("deploy-role-policy.json"));
    let requests = || proxy.requests();

    let (run, deploy) = iam::recorded(requests, || fleet.stamp(&["deploy", "wayne", "--auto-approve", "--json"]));
    let v1_ami = run.ok().report()["outputs"]["ami_id"].as_str().unwrap().to_owned();
    let (run, plan) = iam::recorded(requests, || fleet.stamp(&["plan", "wayne", "--json"]));
    let report = run.ok().report();
    assert_eq!(stage_status(&report, "vpc"), "unchanged", "{report:#}");
    // A new revision: a new AMI, a new launch template version, an instance refresh.
    fleet.customer("wayne", "env = \"staging\"\ngit_id = \"v2.0.0\"\n[vpc.vars]\ncidr_block = \"10.60.0.0/16\"\n");
    let (run, rollout) = iam::recorded(requests, || fleet.stamp(&["deploy", "wayne", "--auto-approve", "--json"]));
    let report = run.ok().report();
    assert_eq!(stage_status(&report, "frontends"), "ok", "{report:#}");
    assert_ne!(report["outputs"]["ami_id"], v1_ami.as_str(), "v2.0.0 is another image");
    // Rolled back: v1's AMI again, without a bake, on a new launch template version.
    let (run, rollback) = iam::recorded(requests, || fleet.stamp(&["rollback", "wayne", "--auto-approve", "--json"]));
    let back = run.ok().report();
    assert_eq!(stage_status(&back, "ami"), "unchanged", "{back:#}");
    assert!(!fleet.log("wayne", "ami").contains("packer build"), "no bake");
    let asg_name = back["outputs"]["frontends"]["autoscaling_group_name"].as_str().unwrap();
    let asgs = fleet.aws_json(&["autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", asg_name]);
    let lt_id = asgs["AutoScalingGroups"][0]["LaunchTemplate"]["LaunchTemplateId"].as_str().expect("a launch template").to_owned();
    let versions = fleet.aws_json(&["ec2", "describe-launch-template-versions", "--launch-template-id", &lt_id, "--versions", "$Latest"]);
    assert_eq!(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"], v1_ami.as_str(), "{versions:#}");
    let (run, destroy) = iam::recorded(requests, || fleet.stamp(&["destroy", "wayne", "--auto-approve"]));
    run.ok();

    let writes = iam::s3_writes(&plan);
    assert!(writes.is_empty(), "the plan wrote to S3:\n{}", iam::listing(&writes));
    for service in ["ec2:", "elasticloadbalancing:", "rds:", "iam:", "kms:"] {
        assert!(plan.iter().any(|c| c.action.starts_with(service)), "the plan made no {service} call: {plan:#?}");
    }
    iam::assert_cover(&[
        (&plan_role, "stamp plan (real stacks)", &plan),
        (&deploy_role, "stamp deploy (real stacks)", &deploy),
        (&deploy_role, "stamp deploy of a new revision (real stacks)", &rollout),
        (&deploy_role, "stamp rollback (real stacks)", &rollback),
        (&deploy_role, "stamp destroy (real stacks)", &destroy),
    ]);
}
