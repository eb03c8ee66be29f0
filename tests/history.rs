//! Releases, the deploy history, rollback and gc: the real stamp, terraform, packer
//! and AWS CLI with the stand-in stacks on the emulator. Deploys of v1 and v2 and a
//! failed one are recorded in the state bucket; `status` shows the current and the
//! previous release; `rollback` deploys v1's commit with v1's AMI without a bake;
//! `gc` deregisters the image no kept release names and never the one that runs.

mod common;

use common::{Emulator, FLEET_TOML, Fleet, app_commit, stage_status};
use serde_json::Value;

const BUCKET: &str = "tfstate-123456789012-acme";

fn history(fleet: &Fleet) -> Vec<Value> {
    let v = fleet.stamp(&["history", "acme", "--json"]).ok().json();
    v["customers"][0]["deploys"].as_array().unwrap().clone()
}

fn image_exists(fleet: &Fleet, ami: &str) -> bool {
    let out = fleet.aws_raw(&["ec2", "describe-images", "--image-ids", ami]);
    out.status.success()
        && serde_json::from_slice::<Value>(&out.stdout).unwrap()["Images"].as_array().is_some_and(|a| a.iter().any(|i| i["ImageId"] == ami))
}

fn snapshots(fleet: &Fleet, ami: &str) -> Vec<String> {
    let v = fleet.aws_json(&["ec2", "describe-images", "--image-ids", ami]);
    v["Images"][0]["BlockDeviceMappings"]
        .as_array()
        .map(|m| m.iter().filter_map(|b| b["Ebs"]["SnapshotId"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn deploys_are_recorded_and_rollback_deploys_the_previous_release_without_a_bake_and_gc_keeps_what_runs() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let v1 = "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.40.0.0/16\"\n";
    let v2 = "git_id = \"v2\"\n[vpc.vars]\ncidr_block = \"10.40.0.0/16\"\n";
    fleet.customer("acme", v1);
    fleet.customer("initech", "git_id = \"v1\"\n");
    // The fleet is a git repository: each release records its commit.
    let git = |args: &[&str]| {
        let mut c = std::process::Command::new("git");
        common::hermetic(&mut c);
        let out = c.current_dir(fleet.path()).args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"]).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "--quiet"]);
    std::fs::write(fleet.path().join(".gitignore"), ".stamp/\nvars/\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "fleet"]);
    let fleet_head = git(&["rev-parse", "HEAD"]);

    let one = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let ami1 = one["outputs"]["ami_id"].as_str().unwrap().to_owned();
    fleet.customer("acme", v2);
    // Under GitHub Actions: the actor and the run's page are recorded.
    let out = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve", "--json"])
        .env("GITHUB_ACTOR", "octocat")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/fleet")
        .env("GITHUB_RUN_ID", "42")
        .output()
        .unwrap();
    let two = common::Run::from(out, &["deploy", "acme"]).ok().report();
    let ami2 = two["outputs"]["ami_id"].as_str().unwrap().to_owned();
    assert_ne!(ami1, ami2, "v2 is another commit, so another image");
    // A deploy that fails (the smoke test: the stand-in's load balancer serves no
    // HTTP): recorded too, with its stage and message.
    fleet.customer("acme", &format!("{v2}[smoke]\nenabled = true\ntimeout = \"2s\"\n"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(1);
    fleet.customer("acme", v2);

    // history: newest first, with outcomes, releases, commits, AMIs and who.
    let h = history(&fleet);
    assert_eq!(h.len(), 3, "{h:#?}");
    let ops: Vec<(&str, &str)> = h.iter().map(|r| (r["operation"].as_str().unwrap(), r["outcome"]["result"].as_str().unwrap())).collect();
    assert_eq!(ops, [("deploy", "failed"), ("deploy", "ok"), ("deploy", "ok")]);
    assert_eq!(h[0]["outcome"]["stage"], "smoke", "{:#}", h[0]);
    assert!(h[0]["outcome"]["message"].as_str().unwrap().contains("did not answer"), "{:#}", h[0]);
    assert_eq!((h[1]["release"]["commit"].as_str(), h[1]["release"]["git_id"].as_str()), (Some(app_commit("v2").as_str()), Some("v2")));
    assert_eq!(
        (h[2]["release"]["commit"].as_str(), h[2]["release"]["ami"].as_str()),
        (Some(app_commit("v1").as_str()), Some(ami1.as_str()))
    );
    assert_eq!(h[1]["release"]["ami"], ami2.as_str());
    assert_eq!((h[1]["actor"].as_str(), h[1]["ci_url"].as_str()), (Some("octocat"), Some("https://github.com/acme/fleet/actions/runs/42")));
    let actor = h[2]["actor"].as_str().unwrap();
    assert!(actor.contains('@') && !actor.starts_with("unknown@") && h[2]["ci_url"].is_null(), "$USER@host: {:#}", h[2]);
    assert!(h[2]["release"]["image_key"].as_str().is_some_and(|k| !k.is_empty()), "{:#}", h[2]);
    // v1's deploy ran on the committed fleet; v2's customer file was not committed.
    assert_eq!(h[2]["release"]["fleet_commit"], fleet_head.as_str(), "{:#}", h[2]);
    assert_eq!(h[1]["release"]["fleet_commit"], format!("{fleet_head}+dirty"), "{:#}", h[1]);
    let (id1, id2) = (h[2]["release_id"].as_str().unwrap().to_owned(), h[1]["release_id"].as_str().unwrap().to_owned());
    let v1_release = h[2]["release"].clone();
    assert_ne!(id1, id2);
    let text = fleet.stamp(&["history", "acme", "--limit", "2"]).ok();
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and the newest two:\n{}", text.stdout);
    assert!(lines[1].contains("failed at smoke") && lines[2].contains(&format!("{id2} (current)")), "{}", text.stdout);
    assert!(lines[2].contains(&format!("v2@{}", &app_commit("v2")[..12])) && lines[2].contains("octocat"), "{}", text.stdout);

    // One object per deploy in the state bucket, as the AWS CLI reads them.
    let listed = fleet.aws_json(&["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "stamp/history/acme/"]);
    let keys: Vec<&str> = listed["Contents"].as_array().unwrap().iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let newest = fleet.state(BUCKET, keys[2]);
    assert_eq!(newest["outcome"]["result"], "failed", "the keys sort by time: {keys:?}");

    // status: the current release (the newest ok) and the one before.
    let status = fleet.stamp(&["status", "acme", "--json"]).ok().json();
    let row = &status["customers"][0];
    assert_eq!(
        (row["release"]["id"].as_str(), row["previous_release"]["id"].as_str()),
        (Some(id2.as_str()), Some(id1.as_str())),
        "{row:#}"
    );

    // An unknown --to, or a customer without an earlier release: exit 2, nothing runs.
    let bad = fleet.stamp(&["rollback", "acme", "--to", "nosuchrelease", "--auto-approve"]).code(2);
    assert!(bad.stderr.contains("--to nosuchrelease") && bad.stderr.contains(&id1) && bad.stderr.contains(&id2), "{}", bad.stderr);
    fleet.stamp(&["rollback", "initech", "--auto-approve"]).code(2).stderr_has("nothing to roll back to");
    assert_eq!(history(&fleet).len(), 3, "nothing ran");
    assert!(!fleet.path().join(".stamp/initech").exists());

    // rollback: v1's commit and v1's AMI, no packer run, recorded as a rollback.
    let back = fleet.stamp(&["rollback", "acme", "--auto-approve", "--json"]).ok();
    let report = back.report();
    assert_eq!(report["commit"], app_commit("v1").as_str(), "{report:#}");
    assert_eq!(report["outputs"]["ami_id"], ami1.as_str(), "{report:#}");
    assert_eq!(stage_status(&report, "ami"), "unchanged");
    let ami_log = fleet.log("acme", "ami");
    assert!(ami_log.contains("no bake") && !ami_log.contains("packer build"), "{ami_log}");
    let fe = fleet.state(BUCKET, "acme/frontends/production");
    assert_eq!(fe["outputs"]["ami_id"]["value"], ami1.as_str(), "the frontends run v1's image again");
    let h = history(&fleet);
    assert_eq!((h[0]["operation"].as_str(), h[0]["outcome"]["result"].as_str()), (Some("rollback"), Some("ok")));
    // v1's release again, but for the fleet's commit: the customer file (v2) is not committed.
    for k in ["commit", "git_id", "ami", "image_key", "template_hash", "stacks_hash", "settings_hash"] {
        assert_eq!(h[0]["release"][k], v1_release[k], "{k}: {:#}", h[0]);
    }
    assert_eq!(h[0]["release"]["fleet_commit"], format!("{fleet_head}+dirty"));
    let id_back = h[0]["release_id"].as_str().unwrap().to_owned();
    let status = fleet.stamp(&["status", "acme", "--json"]).ok().json();
    let row = &status["customers"][0];
    assert_eq!(
        (row["release"]["id"].as_str(), row["previous_release"]["id"].as_str()),
        (Some(id_back.as_str()), Some(id2.as_str())),
        "{row:#}"
    );

    // gc with keep_releases = 1: v2's image is no kept release's and nobody runs it.
    fleet.write_config(&format!("{FLEET_TOML}\n[rollout]\nkeep_releases = 1\n"));
    let snaps2 = snapshots(&fleet, &ami2);
    fleet.stamp(&["gc"]).code(2).stderr_has("--auto-approve");
    let dry = fleet.stamp(&["gc", "--dry-run"]).ok();
    assert!(dry.stdout.contains(&format!("delete {ami2}")) && dry.stdout.contains(&format!("keep   {ami1}")), "{}", dry.stdout);
    assert!(image_exists(&fleet, &ami2), "--dry-run deletes nothing");
    let gc = fleet.stamp(&["gc", "--auto-approve"]).ok();
    assert!(gc.stderr.contains(&format!("deregistered {ami2}")), "{}", gc.stderr);
    assert!(!image_exists(&fleet, &ami2) && image_exists(&fleet, &ami1), "the running image stays");
    for s in snaps2 {
        let out = fleet.aws_raw(&["ec2", "describe-snapshots", "--snapshot-ids", &s]);
        assert!(!out.status.success(), "snapshot {s} of {ami2} is gone");
    }
    let again = fleet.stamp(&["gc", "--auto-approve"]).ok();
    assert!(again.stderr.contains("nothing to delete"), "{}", again.stderr);

    // Back to v2, whose image gc deleted: its recorded commit is baked again.
    let forward = fleet.stamp(&["rollback", "acme", "--to", &id2, "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&forward, "ami"), "ok", "{forward:#}");
    let ami3 = forward["outputs"]["ami_id"].as_str().unwrap();
    assert!(ami3 != ami2 && ami3 != ami1, "{forward:#}");
    let tags = fleet.aws_json(&["ec2", "describe-images", "--image-ids", ami3]);
    let tags = tags["Images"][0]["Tags"].as_array().unwrap().clone();
    let commit = tags.iter().find(|t| t["Key"] == "stamp:commit").map(|t| t["Value"].clone());
    assert_eq!(commit, Some(Value::from(app_commit("v2"))), "{tags:?}");
    assert!(fleet.log("acme", "ami").contains("is not registered any more: baking its commit"), "{}", fleet.log("acme", "ami"));
}
