//! An image is a commit, not a name: the real stamp, terraform, packer and AWS CLI on
//! the emulator, with an app repository the test makes and commits to between
//! deploys. A branch that moved bakes again; one that did not reuses its image; a
//! ref the repository lacks, or a repository that cannot be read, is refused before
//! anything is created.

mod common;

use common::{Emulator, FLEET_TOML, Fleet, GitRepo, stage_status};
use serde_json::Value;

/// A fleet whose app repository is `repo`.
fn fleet_of(emu: &Emulator, repo: &GitRepo) -> Fleet {
    Fleet::with_toml(emu, &FLEET_TOML.replace("{app_repo}", &repo.path().display().to_string()))
}

/// The tags of an AMI, as a map.
fn image_tags(fleet: &Fleet, ami: &str) -> serde_json::Map<String, Value> {
    let v = fleet.aws_json(&["ec2", "describe-images", "--image-ids", ami]);
    v["Images"][0]["Tags"].as_array().unwrap().iter().map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].clone())).collect()
}

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

#[test]
fn a_branch_that_moved_bakes_again_and_one_that_did_not_reuses_its_image() {
    let emu = Emulator::start();
    let app = GitRepo::new();
    let first = app.commit("first");
    let fleet = fleet_of(&emu, &app);
    fleet.customer("acme", "git_id = \"main\"\n");

    let one = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!((one["git_id"].as_str(), one["commit"].as_str()), (Some("main"), Some(first.as_str())), "{one:#}");
    assert_eq!(stage_status(&one, "ami"), "ok");
    let ami1 = one["outputs"]["ami_id"].as_str().unwrap().to_owned();
    let tags = image_tags(&fleet, &ami1);
    assert_eq!(tags["stamp:commit"], first.as_str(), "{tags:?}");
    assert_eq!(tags["stamp:git_id"], "main", "{tags:?}");
    let vars: Value = serde_json::from_str(&std::fs::read_to_string(fleet.path().join("vars/acme.json")).unwrap()).unwrap();
    assert_eq!(vars["git_id"], first.as_str(), "packer is given the commit, never the branch: {vars:#}");

    // The branch did not move: the same image.
    let two = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!(stage_status(&two, "ami"), "unchanged", "{two:#}");
    assert_eq!(two["outputs"]["ami_id"], ami1.as_str());
    assert!(stage(&two, "ami")["detail"].as_str().unwrap().contains(&format!("main at {}", &first[..12])), "{two:#}");

    // A new commit on main: a new image of it, and the frontends run it.
    let second = app.commit("second");
    let three = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    assert_eq!(three["commit"], second.as_str());
    assert_eq!(stage_status(&three, "ami"), "ok", "the moved branch was baked again: {three:#}");
    let ami2 = three["outputs"]["ami_id"].as_str().unwrap().to_owned();
    assert_ne!(ami2, ami1);
    assert_eq!(image_tags(&fleet, &ami2)["stamp:commit"], second.as_str());
    let fe = fleet.state("tfstate-123456789012-acme", "acme/frontends/production");
    assert_eq!(fe["outputs"]["ami_id"]["value"], ami2.as_str(), "the frontends run the new image");

    // status shows both, from the AMI the frontends run.
    let status = fleet.stamp(&["status", "acme", "--json"]).ok().json();
    let row = &status["customers"][0];
    assert_eq!((row["revision"].as_str(), row["commit"].as_str()), (Some("main"), Some(second.as_str())), "{row:#}");
    let table = fleet.stamp(&["status", "acme"]).ok();
    assert!(table.stdout.contains(&format!("main@{}", &second[..12])), "{}", table.stdout);

    // plan shows both, and that a deploy would bake the commit main names now.
    let third = app.commit("third");
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!((plan["git_id"].as_str(), plan["commit"].as_str()), (Some("main"), Some(third.as_str())), "{plan:#}");
    let detail = stage(&plan, "ami")["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("baked from main at commit {}", &second[..12]))
            && detail.contains(&format!("main names {} now: a deploy bakes that commit", &third[..12])),
        "{detail}"
    );
    let text = fleet.stamp(&["plan", "acme"]).ok();
    assert!(text.stdout.contains(&format!("app main at commit {} ({third})", &third[..12])), "{}", text.stdout);
}

#[test]
fn a_ref_the_repository_lacks_or_a_repository_that_cannot_be_read_is_refused_before_anything_is_created() {
    let emu = Emulator::start();
    let app = GitRepo::new();
    let first = app.commit("first");
    app.git(&["tag", "v1"]);
    app.commit("second");
    app.git(&["branch", "v1"]);
    let fleet = fleet_of(&emu, &app);
    let repo = app.path().display().to_string();

    // A ref the repository does not have: exit 2, the file, line, key, repository and ref.
    fleet.customer("acme", "env = \"production\"\ngit_id = \"nope\"\n");
    for args in [&["deploy", "acme", "--auto-approve"][..], &["plan", "acme"], &["render", "acme"]] {
        let run = fleet.stamp(args).code(2);
        for needle in ["customers/acme.toml:2", "git_id `nope`", &format!("{repo} has no branch or tag `nope`"), "nothing was started"] {
            assert!(run.stderr.contains(needle), "stamp {args:?}: stderr lacks {needle:?}:\n{}", run.stderr);
        }
    }
    // A short hash is not a ref: the hint says a commit is named in full.
    fleet.customer("acme", &format!("git_id = \"{}\"\n", &first[..10]));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("full hash (40 hex digits)");
    // A branch and a tag of one name, on different commits: which one is meant?
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("is both a branch").stderr_has("`refs/tags/v1`");

    // A repository that cannot be read: exit 2, where app_repo is set and git's own words.
    let gone = fleet.path().join("no-such-repository");
    fleet.write_config(&FLEET_TOML.replace("{app_repo}", &gone.display().to_string()));
    fleet.customer("acme", "git_id = \"main\"\n");
    let line = FLEET_TOML.lines().position(|l| l.starts_with("app_repo")).unwrap() + 1;
    let run = fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2);
    for needle in [
        format!("stamp.toml:{line}"),
        format!("app_repo `{}` cannot be read to look up git_id `main`", gone.display()),
        "does not appear to be a git repository".to_owned(),
    ] {
        assert!(run.stderr.contains(&needle), "stderr lacks {needle:?}:\n{}", run.stderr);
    }
    assert!(fleet.buckets().is_empty(), "nothing was created: {:?}", fleet.buckets());
    assert!(!fleet.path().join(".stamp/acme/logs").exists(), "no stage started");

    // A full commit hash needs no lookup: planned with the repository unreachable.
    fleet.customer("acme", &format!("git_id = \"{first}\"\n"));
    let plan = fleet.stamp(&["plan", "acme", "--json"]).ok().report();
    assert_eq!(plan["commit"], first.as_str());
}

/// What the build instance runs (packer/files/app-checkout.sh, from 30-app.sh), with
/// the real git: exactly the commit it is given, even one no ref points at any more
/// (fetched by its hash); a branch name or a repository git would read as an option
/// is refused before git runs.
#[test]
fn the_build_instance_checks_out_exactly_the_commit_it_is_given_and_nothing_else() {
    let app = GitRepo::new();
    let first = app.commit("first");
    let second = app.commit("second");
    // main moves on without `second`: no ref points at it any more.
    app.git(&["reset", "--quiet", "--hard", &first]);
    let third = app.commit("third");
    let work = tempfile::tempdir().unwrap();
    let checkout = |repo: &str, git_id: &str, dir: &str| {
        let mut c = std::process::Command::new("bash");
        common::hermetic(&mut c);
        let out = c
            .arg(common::repo().join("packer/files/app-checkout.sh"))
            .env("APP_REPO", repo)
            .env("GIT_ID", git_id)
            .env("APP_DIR", work.path().join(dir))
            .current_dir(work.path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let repo = app.path().display().to_string();
    for commit in [&second, &third] {
        let (code, out, err) = checkout(&repo, commit, "app");
        assert_eq!((code, out.as_str()), (Some(0), commit.as_str()), "{err}");
        assert_eq!(std::fs::read_to_string(work.path().join("app/REVISION")).unwrap(), if commit == &second { "second" } else { "third" });
    }
    let (code, _, err) = checkout(&repo, "main", "by-name");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("GIT_ID=main is not a full commit hash"), "{err}");
    let pwned = work.path().join("pwned");
    let (code, _, err) = checkout(&format!("--upload-pack=touch {}", pwned.display()), &third, "hostile");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a repository address") && !pwned.exists(), "{err}");
    assert!(!work.path().join("by-name").exists() && !work.path().join("hostile").exists(), "git never ran");
}
