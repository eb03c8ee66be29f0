//! The IAM policies shipped in docs/iam/ cover what stamp and the stacks do: every
//! request of a deploy, a plan of the deployed customer and a destroy, made by
//! stamp, terraform, packer and the AWS CLI against the emulator through the fault
//! proxy, is mapped to its IAM action (tests/support/iam.rs) and checked against
//! the plan role (the plan) and the deploy role (deploy and destroy). The stand-in
//! stacks here; the real stacks, whose plan makes the EC2, ELB, RDS... calls, in
//! tests/real_stacks.rs (`make test-aws`). Also: the trust policies' subjects.

mod common;
#[path = "support/iam.rs"]
mod iam;

use common::{Emulator, FaultProxy, Fleet, repo};
use iam::{Call, Policy};
use serde_json::Value;

fn policy(name: &str) -> Policy {
    Policy::load(&repo().join("docs/iam").join(name))
}

#[test]
fn the_plan_role_covers_a_plan_of_a_deployed_customer_and_the_deploy_role_a_deploy_and_destroy() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let (plan_role, deploy_role) = (policy("plan-role-policy.json"), policy("deploy-role-policy.json"));
    let requests = || proxy.requests();

    let (run, deploy) = iam::recorded(requests, || fleet.stamp(&["deploy", "acme", "--auto-approve"]));
    run.ok();
    let (run, plan) = iam::recorded(requests, || fleet.stamp(&["plan", "acme"]));
    run.ok();
    let (run, destroy) = iam::recorded(requests, || fleet.stamp(&["destroy", "acme", "--auto-approve"]));
    run.ok();

    // A plan reads: no write of any kind to S3 (no state, no .tflock lock object).
    let writes = iam::s3_writes(&plan);
    assert!(writes.is_empty(), "the plan wrote to S3:\n{}", iam::listing(&writes));
    assert!(plan.iter().any(|c| c.action == "s3:GetObject" && c.resource.ends_with("/acme/vpc")), "{plan:#?}");
    iam::assert_cover(&[
        (&plan_role, "stamp plan", &plan),
        (&deploy_role, "stamp deploy", &deploy),
        (&deploy_role, "stamp destroy", &destroy),
    ]);

    // The plan role can write nothing the deploy wrote: no state, no lock, no bucket.
    for c in deploy.iter().chain(&destroy) {
        let op = c.action.split(':').nth(1).unwrap();
        let read = ["Get", "List", "Describe", "Head"].iter().any(|p| op.starts_with(p));
        assert!(read || !plan_role.allows(c), "the plan role allows a write the deploy made: {c:?}");
    }
    for a in ["s3:PutObject", "s3:DeleteObject", "s3:CreateBucket", "ec2:CreateVpc", "ec2:RunInstances"] {
        assert!(!plan_role.allows_action(a), "the plan role allows {a}");
    }
    // The state buckets only: another bucket of the account is not the roles' business.
    let other = Call { action: "s3:GetObject".into(), resource: "arn:aws:s3:::payroll-123456789012/2026.csv".into() };
    assert!(!plan_role.allows(&other) && !deploy_role.allows(&other));
}

/// The OIDC trust policies: GitHub's token issuer, the audience, and exactly the
/// subjects each role is for.
#[test]
fn the_trust_policies_name_the_github_subjects_of_each_role() {
    let subjects = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(repo().join("docs/iam").join(file)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let st = &v["Statement"][0];
        assert_eq!(st["Effect"], "Allow", "{file}");
        assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity", "{file}");
        assert_eq!(st["Principal"]["Federated"], "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com", "{file}");
        assert_eq!(st["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"], "sts.amazonaws.com", "{file}");
        let sub = &st["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"];
        match sub {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_owned()).collect(),
            _ => panic!("{file}: no exact sub condition: {v:#}"),
        }
    };
    assert_eq!(subjects("trust-plan.json"), ["repo:OWNER/REPO:pull_request", "repo:OWNER/REPO:ref:refs/heads/main"]);
    assert_eq!(subjects("trust-deploy-main.json"), ["repo:OWNER/REPO:ref:refs/heads/main"]);
    let envs = subjects("trust-deploy-environments.json");
    assert!(!envs.is_empty() && envs.iter().all(|s| s.starts_with("repo:OWNER/REPO:environment:")), "{envs:?}");
}
