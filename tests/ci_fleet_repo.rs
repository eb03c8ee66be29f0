//! examples/fleet-repo as a user's fleet repository would run it on GitHub Actions,
//! offline: copied into a temporary git repository, its workflows' jobs run step by
//! step by tests/support/gha_runner.py as the runner runs them (run: steps through
//! `bash --noprofile --norc -eo pipefail`, the stamp action's steps likewise,
//! GITHUB_OUTPUT/ENV/PATH/STEP_SUMMARY honoured, `${{ }}` substituted), against the
//! emulator with the real terraform, the real hashicorp/aws provider and packer.
//! stamp is installed by the action from a release archive of the stamp under test,
//! built as release.yml builds one.
//!
//! What the test does that GitHub would do otherwise, and says so:
//! - actions/checkout: not run, the temporary repository is the checkout;
//! - hashicorp/setup-terraform, hashicorp/setup-packer: the test's terraform and
//!   packer (.tools/bin) put on PATH, with the provider mirror's CLI configuration;
//! - aws-actions/configure-aws-credentials: no OIDC here; the emulator's endpoint
//!   (STAMP_AWS_ENDPOINT) and test keys written to GITHUB_ENV instead;
//! - actions/upload-artifact, download-artifact: a directory per artifact;
//! - the stamp action's download-url: the local release directory;
//! - `gh` (GitHub's API, issues): a stand-in that records calls
//!   (tests/fakes/gh-stub-github-is-not-reachable-offline);
//! - stamp.toml: the template's `emulator` builder (no SSH in an emulated EC2), no
//!   smoke test (the emulator's load balancers serve no HTTP), `app_repo` a local
//!   repository with a `main` branch (github.com cannot be reached to look up
//!   `git_id`), and a rollout's soak of 2 s instead of 10 minutes; nothing else changes.

mod common;
#[path = "support/gha.rs"]
mod gha;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Emulator;
use gha::{GhStub, JobRun, Runner, release, repo, stripped_stamp};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "fleet")
        .env("GIT_AUTHOR_EMAIL", "fleet@example.com")
        .env("GIT_COMMITTER_NAME", "fleet")
        .env("GIT_COMMITTER_EMAIL", "fleet@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The only edits: the emulator's builder, no smoke test and a local app repository
/// (see the module doc).
fn for_the_emulator(fleet: &Path) {
    let file = fleet.join("stamp.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let local = format!("app_repo = \"{}\"", common::app_repo().display());
    let edited = text
        .replace("only = [\"aws\"]", "only = [\"emulator\"]")
        .replace("[smoke]\n", "[smoke]\nenabled = false\n")
        .replace("app_repo = \"https://github.com/OWNER/website.git\"", &local)
        .replace("soak = \"10m\"", "soak = \"2s\"");
    assert!(edited.contains("soak = \"2s\""), "stamp.toml has no [rollout] soak to shorten");
    assert!(edited.contains(&local), "stamp.toml names no app_repo to replace");
    assert_ne!(text, edited);
    std::fs::write(file, edited).unwrap();
}

struct FleetRepo {
    emu: Emulator,
    dir: tempfile::TempDir,
    gh: GhStub,
    releases: PathBuf,
    /// The commit of the last successful deploy, and the pushed one.
    base: String,
    head: String,
}

impl FleetRepo {
    fn new() -> Self {
        let emu = Emulator::start();
        let dir = tempfile::tempdir().unwrap();
        let repo_dir = dir.path().join("repo");
        copy_tree(&repo().join("examples/fleet-repo"), &repo_dir);
        for_the_emulator(&repo_dir);
        git(&repo_dir, &["init", "-q", "-b", "main"]);
        git(&repo_dir, &["add", "-A"]);
        git(&repo_dir, &["commit", "-qm", "the fleet"]);
        let base = git(&repo_dir, &["rev-parse", "HEAD"]);
        // The push: acme's file changes (only acme is to be deployed).
        let acme = repo_dir.join("customers/acme.toml");
        let text = std::fs::read_to_string(&acme).unwrap().replace("max_size = 4", "max_size = 3");
        std::fs::write(&acme, text).unwrap();
        git(&repo_dir, &["commit", "-qam", "acme: at most 3 web servers"]);
        let head = git(&repo_dir, &["rev-parse", "HEAD"]);
        git(&repo_dir, &["update-ref", "refs/remotes/origin/main", &base]);

        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let releases = dir.path().join("releases");
        let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
        let out = release(&stripped_stamp(&bin), &releases, &tag);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // GitHub's API: the last successful deploy run was at `base`.
        let gh =
            GhStub::new(json!({"api": {"repos/OWNER/fleet/actions/workflows/deploy.yml/runs": {"workflow_runs": [{"head_sha": base}]}}}));
        Self { emu, dir, gh, releases, base, head }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn workflow(&self, name: &str) -> PathBuf {
        self.path().join(".github/workflows").join(name)
    }

    /// The runner for one workflow run (its artifacts in `state`).
    fn runner(&self, state: &str, github: Value) -> Runner {
        let mut r = Runner::new(&self.path(), &self.dir.path().join(state));
        let tools = common::tools();
        r.github = github;
        r.vars = json!({
            "STAMP_PLAN_ROLE_ARN": "arn:aws:iam::123456789012:role/stamp-plan",
            "STAMP_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/stamp-deploy",
        });
        r.aws_env = json!({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "STAMP_AWS_ENDPOINT": self.emu.url});
        r.tool_dirs.push(tools.clone());
        r.actions.push(("OWNER/stamp".into(), repo()));
        r.action_inputs.push(("OWNER/stamp".into(), "download-url".into(), format!("file://{}", self.releases.display())));
        r.path.push(self.gh.bin());
        r.env.extend(self.gh.env());
        // What setup-terraform's registry gives on GitHub, the provider mirror gives here.
        r.env.push(("TF_CLI_CONFIG_FILE".into(), tools.join("../terraformrc").display().to_string()));
        for k in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
            "STAMP_AWS_ENDPOINT",
            "AWS_CA_BUNDLE",
            "STAMP_CONFIG",
        ] {
            r.unset.push(k.into());
        }
        r
    }

    fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new(common::tool("aws"))
            .args(["--endpoint-url", &self.emu.url, "--region", "eu-west-1", "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        if out.stdout.is_empty() { Value::Null } else { serde_json::from_slice(&out.stdout).unwrap() }
    }

    fn state(&self, key: &str) -> Value {
        self.state_of("acme", key)
    }

    fn state_of(&self, customer: &str, key: &str) -> Value {
        let out = Command::new(common::tool("aws"))
            .args([
                "--endpoint-url",
                &self.emu.url,
                "--region",
                "eu-west-1",
                "s3",
                "cp",
                &format!("s3://tfstate-123456789012-{customer}/{key}"),
                "-",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "no state {key}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn replaced(job: &JobRun, what: &str) -> bool {
    job.replaced.iter().any(|r| r.starts_with(what))
}

#[test]
fn the_fleet_repository_plans_a_pull_request_deploys_the_push_and_opens_an_issue_for_drift() {
    let f = FleetRepo::new();

    // A pull request: validated, and the customers it changes planned with the
    // read-only role. Nothing is applied.
    let pr = f.runner(
        "run-pr",
        json!({"event_name": "pull_request", "base_ref": "main", "head_ref": "acme-size", "ref_name": "7/merge", "sha": f.head,
               "repository": "OWNER/fleet",
               "event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": "OWNER/fleet"}}}}}),
    );
    let job = pr.job(&f.workflow("pull-request.yml"), "plan", &json!({}), &json!({})).succeeded();
    eprintln!("pull request, what the test replaced:\n  {}", job.replaced.join("\n  "));
    assert!(
        replaced(&job, "actions/checkout@") && replaced(&job, "hashicorp/setup-terraform@") && replaced(&job, "actions/upload-artifact@")
    );
    assert!(!replaced(&job, "hashicorp/setup-packer@"), "a plan job installs no packer");
    assert!(
        job.replaced.iter().any(|r| r.contains("instead of assuming arn:aws:iam::123456789012:role/stamp-plan")),
        "{:#?}",
        job.replaced
    );
    assert!(job.log.contains("installed stamp ") && job.log.contains("(sha256 "), "{}", job.log);
    assert!(job.log.contains("2 customer(s) valid"), "{}", job.log);
    let matrix: Value =
        serde_json::from_str(job.step("Customers this pull request changes")["outputs"]["matrix"].as_str().unwrap()).unwrap();
    assert_eq!(matrix["include"][0]["customers"], "acme", "{matrix:#}");
    let plan = job.step("Plan them");
    assert_eq!(plan["outputs"]["customers"], "acme", "{plan:#}");
    assert_eq!(plan["outputs"]["destroy_count"], "0");
    assert!(job.summary.contains("acme"), "the plan in the job summary:\n{}", job.summary);
    let pr_plan: Value =
        serde_json::from_str(&std::fs::read_to_string(f.dir.path().join("run-pr/artifacts/stamp-plan-pr-7/plan.json")).unwrap()).unwrap();
    assert_eq!(pr_plan["kind"], "plan");
    let buckets = f.aws(&["s3api", "list-buckets"]);
    assert_eq!(buckets["Buckets"], json!([]), "a plan creates nothing");

    // The merge: the deploy workflow on the push.
    let push = f.runner(
        "run-deploy",
        json!({"event_name": "push", "ref_name": "main", "sha": f.head, "repository": "OWNER/fleet",
               "workflow_ref": "OWNER/fleet/.github/workflows/deploy.yml@refs/heads/main"}),
    );
    let deploy = f.workflow("deploy.yml");
    let plan = push.job(&deploy, "plan", &json!({}), &json!({})).succeeded();
    let asked: Vec<String> = f.gh.calls().iter().map(|c| c["argv"][1].as_str().unwrap_or_default().to_owned()).collect();
    assert!(
        asked.iter().any(|p| p.starts_with("repos/OWNER/fleet/actions/workflows/deploy.yml/runs?branch=main&event=push&status=success")),
        "{asked:?}"
    );
    assert!(plan.log.contains(&format!("{}...HEAD", f.base)), "changed since the last successful deploy:\n{}", plan.log);
    assert_eq!(plan.output("canary_count"), "1");
    assert_eq!(plan.output("rest_count"), "0", "only acme changed");
    assert_eq!(plan.output("destroy_count"), "0");
    assert_ne!(plan.output("change_count"), "0");
    let needs_plan = json!({"result": plan.result, "outputs": plan.outputs});
    // No destroy: no reviewer; the canary job runs acme in its environment.
    assert!(push.matrix(&deploy, "approve", &json!({"plan": needs_plan})).is_empty());
    let needs = json!({"plan": needs_plan, "approve": {"result": "skipped"}});
    let entries = push.matrix(&deploy, "canary", &needs);
    assert_eq!(entries.len(), 1);
    let canary = push.job(&deploy, "canary", &entries[0], &needs).succeeded();
    eprintln!("deploy, what the test replaced:\n  {}", canary.replaced.join("\n  "));
    assert_eq!(canary.environment.as_deref(), Some("acme"));
    assert!(
        canary.replaced.iter().any(|r| r.contains("instead of assuming arn:aws:iam::123456789012:role/stamp-deploy")),
        "{:#?}",
        canary.replaced
    );
    assert!(replaced(&canary, "hashicorp/setup-packer@") && replaced(&canary, "actions/download-artifact@"));
    assert_eq!(canary.step("Deploy acme")["outcome"], "success");
    assert_eq!(canary.step("Status after a cancel or a failure")["outcome"], "skipped");
    assert!(canary.summary.contains("acme"), "the deploy in the job summary:\n{}", canary.summary);
    assert!(f.dir.path().join("run-deploy/artifacts/stamp-logs-1-attempt-1/acme/logs/frontends.log").exists());
    let rest = json!({"plan": {"result": "success", "outputs": plan.outputs}, "approve": {"result": "skipped"}, "canary": {"result": canary.result}});
    assert!(push.matrix(&deploy, "deploy", &rest).is_empty(), "nobody else to deploy");

    // acme runs in the emulator: its load balancer, from the image stamp baked.
    let fe = f.state("acme/frontends/production");
    let types: Vec<&str> = fe["resources"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    for t in ["aws_lb", "aws_autoscaling_group", "aws_launch_template"] {
        assert!(types.contains(&t), "{types:?}");
    }
    assert!(fe["outputs"]["public_url"]["value"].as_str().unwrap().starts_with("http://acme-production-web"), "{:#}", fe["outputs"]);
    let globex = f.aws(&["s3api", "list-buckets"]);
    assert_eq!(globex["Buckets"].as_array().unwrap().len(), 1, "globex was not deployed: {globex:#}");

    // Someone changes a tag of acme's VPC by hand: the nightly drift job finds it,
    // puts the table in the job summary and opens an issue.
    let vpc_id = f.state("acme/vpc")["outputs"]["vpc_id"]["value"].as_str().unwrap().to_owned();
    f.aws(&["ec2", "create-tags", "--resources", &vpc_id, "--tags", "Key=env,Value=tampered"]);
    let nightly = f.runner(
        "run-drift",
        json!({"event_name": "schedule", "ref_name": "main", "sha": f.head, "repository": "OWNER/fleet", "run_id": 99}),
    );
    let drift = nightly.job(&f.workflow("drift.yml"), "drift", &json!({}), &json!({}));
    assert_eq!(drift.result, "failure", "drift found fails the job:\n{}", drift.log);
    assert_eq!(drift.step("Drift of every customer")["outcome"], "failure");
    assert_eq!(drift.step("One issue per drifted customer")["outcome"], "success", "{}", drift.log);
    assert!(drift.summary.contains("acme") && drift.summary.contains("drifted"), "{}", drift.summary);
    let issues = f.gh.issues();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0]["title"], "stamp drift: acme");
    let body = issues[0]["body"].as_str().unwrap();
    assert!(body.contains("`aws_vpc.this`") && body.contains("env"), "{body}");
    assert!(body.contains("https://github.com/OWNER/fleet/actions/runs/99"), "{body}");

    // A rollout, run by hand (`rollout` ticked, every customer): the plan job, then a
    // job per wave ([rollout] waves = ["1", "100%"]: acme, the canary; then globex),
    // the second resuming the record the first left in S3, from a workspace without
    // the first job's .stamp/ (a new job on another runner).
    let mut by_hand = f.runner(
        "run-rollout",
        json!({"event_name": "workflow_dispatch", "ref_name": "main", "sha": f.head, "repository": "OWNER/fleet",
               "workflow_ref": "OWNER/fleet/.github/workflows/deploy.yml@refs/heads/main"}),
    );
    by_hand.inputs = json!({"customers": "all", "rollout": true});
    let plan = by_hand.job(&deploy, "plan", &json!({}), &json!({})).succeeded();
    assert_eq!(plan.output("selected"), "acme globex");
    assert_eq!(plan.output("destroy_count"), "0");
    let plan_done = json!({"result": plan.result, "outputs": plan.outputs});
    let needs = json!({"plan": plan_done, "approve": {"result": "skipped"}});
    assert!(by_hand.matrix(&deploy, "canary", &needs).is_empty(), "a rollout instead of the canary and deploy jobs");
    let wave1 = by_hand.job(&deploy, "rollout", &json!({}), &needs).succeeded();
    assert_eq!(wave1.environment.as_deref(), Some("stamp-fleet"));
    assert!(wave1.log.contains("next wave: 2, its customers: globex"), "{}", wave1.log);
    assert_eq!(wave1.output("waves_count"), "1");
    assert!(f.dir.path().join("run-rollout/artifacts/stamp-logs-rollout-wave-1-attempt-1/acme/logs/frontends.log").exists());
    let buckets = f.aws(&["s3api", "list-buckets"]);
    assert!(!buckets.to_string().contains("tfstate-123456789012-globex"), "wave 1 is acme alone: {buckets:#}");
    std::fs::remove_dir_all(f.path().join(".stamp")).unwrap();
    let after_first = json!({"plan": plan_done, "rollout": {"result": wave1.result, "outputs": wave1.outputs}});
    let entries = by_hand.matrix(&deploy, "rollout-waves", &after_first);
    assert_eq!(entries, [json!({"wave": 2})]);
    let wave2 = by_hand.job(&deploy, "rollout-waves", &entries[0], &after_first).succeeded();
    assert_eq!(wave2.step("Resume the rollout, wave 2")["outcome"], "success");
    assert_eq!(wave2.step("The rollout after a cancel or a failure")["outcome"], "skipped");
    assert!(f.dir.path().join("run-rollout/artifacts/stamp-logs-rollout-wave-2-attempt-1/globex/logs/frontends.log").exists());
    assert!(!f.path().join(".stamp/acme").exists(), "the second wave did not deploy acme again");
    let fe = f.state_of("globex", "globex/frontends/staging");
    assert!(fe["outputs"]["public_url"]["value"].as_str().unwrap().starts_with("http://globex-staging-web"), "{:#}", fe["outputs"]);
}
