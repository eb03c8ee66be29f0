//! `stamp matrix`: the GitHub Actions matrix of the selected customers, and with
//! `--changed-since` only those a change could deploy differently. Each test builds a
//! real git repository holding a fleet, commits changes and runs the binary: no
//! emulator, no tool but git. The shipped CI files are checked in tests/ci_files.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A git repository in a temporary directory, with a fleet at `fleet` inside it.
struct Repo {
    dir: tempfile::TempDir,
    fleet: PathBuf,
}

/// git, isolated from the user's and the machine's configuration.
fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "stamp tests")
        .env("GIT_AUTHOR_EMAIL", "tests@example.com")
        .env("GIT_COMMITTER_NAME", "stamp tests")
        .env("GIT_COMMITTER_EMAIL", "tests@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    c
}

const FLEET: &str = r#"
[fleet]
region = "eu-west-1"
envs = ["production", "staging"]
app_repo = "https://example.com/app.git"
canary = ["initech"]
"#;

impl Repo {
    /// The standard layout, the fleet at the top of the repository, committed on `main`.
    fn new() -> Self {
        Self::with_fleet_at("")
    }

    fn with_fleet_at(sub: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fleet = if sub.is_empty() { dir.path().to_path_buf() } else { dir.path().join(sub) };
        let r = Repo { dir, fleet };
        r.git(&["init", "-q", "-b", "main"]);
        r.write("stamp.toml", FLEET);
        r.customer("acme", "production", "eu-west-1", &["eu"]);
        r.customer("globex", "staging", "us-east-1", &["us"]);
        r.customer("initech", "production", "eu-west-1", &["eu", "tier-1"]);
        r.customer("umbrella", "staging", "eu-west-1", &[]);
        for (f, t) in [
            ("terraform/vpc/main.tf", "# vpc\n"),
            ("terraform/frontends/production/main.tf", "module \"frontend\" { source = \"../../modules/frontend\" }\n"),
            ("terraform/frontends/staging/main.tf", "module \"frontend\" { source = \"../../modules/frontend\" }\n"),
            ("terraform/modules/frontend/main.tf", "# module\n"),
            ("packer/template.json", "{}\n"),
            ("packer/scripts/app.sh", "#!/bin/sh\n"),
            ("templates/app/config/database.yml.erb", "production: {}\n"),
            ("README.md", "# fleet\n"),
            ("docs/notes.md", "notes\n"),
        ] {
            r.write(f, t);
        }
        r.commit("the fleet");
        r
    }

    fn customer(&self, name: &str, env: &str, region: &str, tags: &[&str]) {
        let tags: Vec<String> = tags.iter().map(|t| format!("{t:?}")).collect();
        self.write(
            &format!("customers/{name}.toml"),
            &format!("env = \"{env}\"\nregion = \"{region}\"\ngit_id = \"v1\"\ntags = [{}]\n", tags.join(", ")),
        );
    }

    /// Writes a file relative to the fleet root.
    fn write(&self, rel: &str, text: &str) {
        let p = self.fleet.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn append(&self, rel: &str, text: &str) {
        let p = self.fleet.join(rel);
        let old = std::fs::read_to_string(&p).unwrap();
        std::fs::write(p, old + text).unwrap();
    }

    fn git(&self, args: &[&str]) -> String {
        let out = git_cmd(self.dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Commits everything; returns the new commit.
    fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    fn stamp(&self, args: &[&str]) -> Output {
        stamp_in(&self.fleet, args)
    }

    /// `stamp matrix ARGS`, which must succeed: the matrix and stderr.
    fn matrix(&self, args: &[&str]) -> (Value, String) {
        let mut all = vec!["matrix"];
        all.extend_from_slice(args);
        let out = self.stamp(&all);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "stamp {all:?} failed: {stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "one compact line: {stdout}");
        (serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}")), stderr)
    }

    /// The customers of `stamp matrix ARGS`, in output order.
    fn names(&self, args: &[&str]) -> Vec<String> {
        names(&self.matrix(args).0)
    }
}

fn stamp_in(dir: &Path, args: &[&str]) -> Output {
    common::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_stamp"))).current_dir(dir).args(args).env("CI", "true").output().unwrap()
}

fn names(m: &Value) -> Vec<String> {
    m["include"].as_array().unwrap().iter().map(|r| r["customer"].as_str().unwrap().to_owned()).collect()
}

const ALL: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

#[test]
fn without_changed_since_every_selected_customer_with_env_and_region() {
    let r = Repo::new();
    let (m, _) = r.matrix(&[]);
    assert_eq!(
        m,
        serde_json::json!({"include": [
            {"customer": "acme", "env": "production", "region": "eu-west-1"},
            {"customer": "globex", "env": "staging", "region": "us-east-1"},
            {"customer": "initech", "env": "production", "region": "eu-west-1"},
            {"customer": "umbrella", "env": "staging", "region": "eu-west-1"},
        ]})
    );
    assert_eq!(r.names(&["--all"]), ALL);
    assert_eq!(r.names(&["--tag", "eu"]), ["acme", "initech"]);
    assert_eq!(r.names(&["--tag", "us", "--tag", "tier-1"]), ["globex", "initech"]);
    // Names: sorted by name, whatever the command-line order.
    assert_eq!(r.names(&["umbrella", "acme"]), ["acme", "umbrella"]);
    // The compact form GitHub's fromJSON reads.
    let out = r.stamp(&["matrix", "acme"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"include\":[{\"customer\":\"acme\",\"env\":\"production\",\"region\":\"eu-west-1\"}]}\n"
    );
}

/// One change, committed after `base`: which customers it puts in the matrix.
fn after_change(change: impl FnOnce(&Repo), args: &[&str]) -> (Vec<String>, String) {
    let r = Repo::new();
    let base = r.head();
    change(&r);
    r.commit("a change");
    let mut all = vec!["--changed-since", base.as_str()];
    all.extend_from_slice(args);
    let (m, stderr) = r.matrix(&all);
    (names(&m), stderr)
}

#[test]
fn a_customer_file_changes_that_customer() {
    let (n, stderr) = after_change(|r| r.append("customers/globex.toml", "# more\n"), &[]);
    assert_eq!(n, ["globex"]);
    assert!(stderr.contains("globex") && stderr.contains("customers/globex.toml"), "the reason is shown: {stderr}");
    // A new customer is deployed.
    let (n, _) = after_change(|r| r.customer("hooli", "staging", "eu-west-1", &[]), &[]);
    assert_eq!(n, ["hooli"]);
    // Two customer files in one change.
    let (n, _) = after_change(
        |r| {
            r.append("customers/umbrella.toml", "#\n");
            r.append("customers/acme.toml", "#\n");
        },
        &[],
    );
    assert_eq!(n, ["acme", "umbrella"]);
}

#[test]
fn a_removed_customer_is_not_deployed_but_named_for_destroy() {
    let r = Repo::new();
    let base = r.head();
    r.git(&["rm", "-q", "customers/globex.toml"]);
    r.commit("globex leaves");
    let (m, stderr) = r.matrix(&["--changed-since", &base]);
    assert_eq!(names(&m), Vec::<String>::new());
    assert!(stderr.contains("note: customer `globex` was removed") && stderr.contains("stamp destroy globex"), "{stderr}");
    assert!(stderr.contains(&format!("git show {base}:customers/globex.toml")), "{stderr}");

    // A rename is a removal and an addition.
    let base = r.head();
    r.git(&["mv", "customers/umbrella.toml", "customers/umbrella-corp.toml"]);
    r.commit("rename umbrella");
    let (m, stderr) = r.matrix(&["--changed-since", &base]);
    assert_eq!(names(&m), ["umbrella-corp"]);
    assert!(stderr.contains("customer `umbrella` was removed"), "{stderr}");
}

#[test]
fn an_env_stack_changes_the_customers_of_that_env() {
    let (n, _) = after_change(|r| r.append("terraform/frontends/staging/main.tf", "# x\n"), &[]);
    assert_eq!(n, ["globex", "umbrella"]);
    let (n, _) = after_change(|r| r.write("terraform/frontends/production/.terraform.lock.hcl", "# lock\n"), &[]);
    assert_eq!(n, ["acme", "initech"]);
    // An env no customer is on.
    let (n, _) = after_change(|r| r.write("terraform/frontends/qa/main.tf", "# qa\n"), &[]);
    assert!(n.is_empty(), "{n:?}");
}

#[test]
fn shared_inputs_change_every_customer() {
    for (what, change) in [
        ("vpc stack", Box::new(|r: &Repo| r.append("terraform/vpc/main.tf", "# x\n")) as Box<dyn FnOnce(&Repo)>),
        ("modules", Box::new(|r: &Repo| r.append("terraform/modules/frontend/main.tf", "# x\n"))),
        ("packer template", Box::new(|r: &Repo| r.write("packer/template.json", "{\"builders\": []}\n"))),
        ("a file beside the template", Box::new(|r: &Repo| r.append("packer/scripts/app.sh", "echo\n"))),
        ("app templates", Box::new(|r: &Repo| r.append("templates/app/config/database.yml.erb", "#\n"))),
        ("the fleet file", Box::new(|r: &Repo| r.append("stamp.toml", "# a comment\n"))),
    ] {
        let (n, _) = after_change(change, &[]);
        assert_eq!(n, ALL, "{what}");
    }
    // ... but only the selected ones.
    let (n, _) = after_change(|r| r.append("terraform/vpc/main.tf", "# x\n"), &["--tag", "eu"]);
    assert_eq!(n, ["acme", "initech"]);
    let (n, _) = after_change(|r| r.append("terraform/vpc/main.tf", "# x\n"), &["umbrella"]);
    assert_eq!(n, ["umbrella"]);
}

#[test]
fn other_files_change_nothing() {
    let (n, stderr) = after_change(
        |r| {
            r.append("README.md", "more\n");
            r.write("docs/notes.md", "other notes\n");
            r.write("customers/README.md", "one file per customer\n");
            r.write("templates/other/x.txt", "x\n");
        },
        &[],
    );
    assert!(n.is_empty(), "{n:?}");
    assert!(stderr.contains("0 of 4 selected customer(s) affected by 4 file(s)"), "{stderr}");
    // A tag filter applies to a customer whose file changed too.
    let (n, _) = after_change(|r| r.append("customers/globex.toml", "#\n"), &["--tag", "eu"]);
    assert!(n.is_empty(), "{n:?}");
    // Nothing changed at all.
    let r = Repo::new();
    let (m, _) = r.matrix(&["--changed-since", "HEAD"]);
    assert_eq!(m, serde_json::json!({"include": []}));
}

#[test]
fn changes_since_the_merge_base_committed_only() {
    let r = Repo::new();
    let base = r.head();
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.append("customers/acme.toml", "#\n");
    r.commit("acme on the branch");
    r.git(&["checkout", "-q", "main"]);
    r.append("terraform/vpc/main.tf", "# main moved on\n");
    r.commit("vpc on main");
    r.git(&["checkout", "-q", "feature"]);
    // main's own change since the branch point is not the branch's.
    assert_eq!(r.names(&["--changed-since", "main"]), ["acme"]);
    // Several commits since REF add up.
    r.append("terraform/frontends/staging/main.tf", "#\n");
    r.commit("staging");
    assert_eq!(r.names(&["--changed-since", &base]), ["acme", "globex", "umbrella"]);
    // Uncommitted changes do not count.
    r.append("terraform/vpc/main.tf", "# not committed\n");
    r.append("customers/initech.toml", "# not committed\n");
    assert_eq!(r.names(&["--changed-since", &base]), ["acme", "globex", "umbrella"]);
}

#[test]
fn a_fleet_in_a_subdirectory_with_paths_outside_it() {
    let r = Repo::with_fleet_at("ops/fleet");
    // The stacks one level up, shared with other fleets.
    std::fs::rename(r.fleet.join("terraform"), r.dir.path().join("ops/terraform")).unwrap();
    r.write("stamp.toml", &format!("{FLEET}\n[paths]\nterraform = \"../terraform\"\n"));
    let base = r.commit("move the stacks");
    r.write("../../customers/acme.toml", "# another fleet's layout at the top: not this fleet's\n");
    r.append("customers/initech.toml", "#\n");
    r.commit("changes");
    assert_eq!(r.names(&["--changed-since", &base]), ["initech"]);
    let base = r.head();
    std::fs::write(r.dir.path().join("ops/terraform/frontends/staging/main.tf"), "# changed\n").unwrap();
    r.commit("staging stack");
    assert_eq!(r.names(&["--changed-since", &base]), ["globex", "umbrella"]);
    // Run from elsewhere with --config: the same answer.
    let out =
        stamp_in(r.dir.path(), &["--config", "ops/fleet/stamp.toml", "matrix", "--changed-since", &format!("{base}~1"), "--tag", "us"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names(&m), ["globex"]);
}

#[test]
fn canaries_are_marked_in_deploys_order() {
    let r = Repo::new();
    let (m, _) = r.matrix(&["--canary", "1"]);
    let flags: Vec<(String, bool)> = m["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["customer"].as_str().unwrap().to_owned(), e["canary"].as_bool().unwrap()))
        .collect();
    // [fleet] canary = ["initech"] first.
    assert_eq!(flags, [("acme".into(), false), ("globex".into(), false), ("initech".into(), true), ("umbrella".into(), false)]);
    // The configured canary is not among the changed customers: name order.
    let base = r.head();
    r.append("terraform/frontends/staging/main.tf", "#\n");
    r.commit("staging");
    let (m, _) = r.matrix(&["--changed-since", &base, "--canary", "1"]);
    assert_eq!(m["include"][0]["customer"], "globex");
    assert_eq!(m["include"][0]["canary"], true);
    assert_eq!(m["include"][1]["canary"], false);
    // Names given: the command line's order.
    let (m, _) = r.matrix(&["umbrella", "acme", "--canary", "1"]);
    assert_eq!(m["include"][0]["canary"], false);
    assert_eq!(m["include"][1]["customer"], "umbrella");
    assert_eq!(m["include"][1]["canary"], true);
}

#[test]
fn an_unknown_revision_is_refused_naming_it() {
    let r = Repo::new();
    let out = r.stamp(&["matrix", "--changed-since", "origin/nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no matrix on an error");
    assert!(stderr.contains("unknown git revision `origin/nope`") && stderr.contains("fetch-depth: 0"), "{stderr}");
    let out = r.stamp(&["matrix", "--changed-since", "--all"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_revision_without_common_history_is_refused() {
    let r = Repo::new();
    r.git(&["checkout", "-q", "--orphan", "unrelated"]);
    r.commit("another history");
    r.git(&["checkout", "-q", "main"]);
    let out = r.stamp(&["matrix", "--changed-since", "unrelated"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("unrelated...HEAD") && stderr.contains("common ancestor"), "{stderr}");
}

#[test]
fn outside_a_git_repository_is_refused() {
    let r = Repo::new();
    std::fs::remove_dir_all(r.dir.path().join(".git")).unwrap();
    // Without --changed-since git is not needed.
    assert_eq!(r.names(&[]), ALL);
    let out = r.stamp(&["matrix", "--changed-since", "main"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("is not in a git repository") && stderr.contains("--changed-since main"), "{stderr}");
}

#[test]
fn an_invalid_customer_file_is_refused_naming_it() {
    let r = Repo::new();
    r.write("customers/globex.toml", "env = \"staging\"\ngit_id = 3\n");
    let out = r.stamp(&["matrix"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("customers/globex.toml") && stderr.contains("git_id"), "{stderr}");
    // A selection that leaves it out is fine (--tag reads every file: not that one).
    assert_eq!(r.names(&["acme", "initech"]), ["acme", "initech"]);
}
