//! CI output: the real stamp, the real tools and the emulator, run as GitHub Actions
//! (GITHUB_ACTIONS=true, a step summary and an output file) and as Travis
//! (TRAVIS=true): groups that never mix customers, secrets masked before they could
//! be printed, failures and configuration errors as annotations, the step summary
//! appended, a deploy's outputs, balanced folds.

mod common;

use std::path::Path;

use common::{Emulator, Fleet, Run, repo};

/// The stand-in's sensitive output `database_secret_arn` for acme (production).
const SECRET_OUTPUT: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme-production-db";
/// A value acme's customer file gives the stand-in's `sensitive = true` input.
const SECRET_INPUT: &str = "db.hush-4f2a9c";

/// stamp as a GitHub Actions step: the workspace is the repository (annotation
/// paths become relative to it), the summary and output files are `dir`'s.
fn github(fleet: &Fleet, dir: &Path, args: &[&str]) -> Run {
    let out = fleet
        .stamp_cmd(args)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", repo())
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("output"))
        .output()
        .expect("run stamp");
    Run::from(out, args)
}

/// Checks that groups open and close in turn (never nested, all closed) and that
/// every line of a group is its customer's; returns the groups' customers in order.
fn groups(stderr: &str) -> Vec<String> {
    let mut open: Option<String> = None;
    let mut seen = Vec::new();
    for line in stderr.lines() {
        if let Some(title) = line.strip_prefix("::group::") {
            assert!(open.is_none(), "a group opened inside another: {line}\n{stderr}");
            let customer = title.split(" · ").next().unwrap().to_owned();
            seen.push(customer.clone());
            open = Some(customer);
        } else if line == "::endgroup::" {
            assert!(open.take().is_some(), "an endgroup without a group\n{stderr}");
        } else if let Some(c) = &open {
            assert!(line.contains(&format!("] {c} ")), "a line in {c}'s group is not {c}'s: {line}\n{stderr}");
        }
    }
    assert!(open.is_none(), "a group was left open\n{stderr}");
    seen
}

/// `secret` appears first in its `::add-mask::` line, and nowhere but in such lines.
fn masked_first(run: &Run, secret: &str) {
    let mask = format!("::add-mask::{secret}");
    let first = run.stderr.lines().position(|l| l.contains(secret)).unwrap_or_else(|| panic!("{secret} never announced:\n{}", run.stderr));
    assert_eq!(run.stderr.lines().nth(first), Some(mask.as_str()), "the first line with {secret} is not its mask:\n{}", run.stderr);
    for l in run.stderr.lines().filter(|l| l.contains(secret)) {
        assert_eq!(l, mask, "{secret} printed outside a mask:\n{}", run.stderr);
    }
    assert!(!run.stdout.contains(secret), "{secret} on stdout:\n{}", run.stdout);
}

#[test]
fn github_actions_groups_masks_annotations_summary_and_outputs() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let files = tempfile::tempdir().unwrap();
    fleet.customer(
        "acme",
        &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n[frontends.vars]\ndb_instance_class = \"{SECRET_INPUT}\"\n"),
    );
    fleet.customer(
        "broken",
        "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n[frontends.vars]\ninstance_type = \"fail.standin\"\n",
    );
    std::fs::write(files.path().join("summary.md"), "## an earlier step\n\n").unwrap();

    // Two customers side by side: one group per customer and stage, never mixed.
    let run = github(&fleet, files.path(), &["deploy", "acme", "broken", "--parallel", "2", "--auto-approve"]).code(1);
    let seen = groups(&run.stderr);
    for c in ["acme", "broken"] {
        assert!(seen.iter().filter(|s| *s == c).count() >= 3, "{c}: bucket, vpc and frontends groups at least: {seen:?}\n{}", run.stderr);
    }
    masked_first(&run, SECRET_OUTPUT);
    masked_first(&run, SECRET_INPUT);
    // The failed stage: its tail inside its group, then an annotation on the stack.
    let error = run.stderr.lines().find(|l| l.starts_with("::error ")).unwrap_or_else(|| panic!("no ::error annotation:\n{}", run.stderr));
    assert!(
        error.starts_with("::error file=tests/standin/terraform/frontends/production,title=broken%3A frontends/production stack FAILED::"),
        "{error}"
    );
    assert!(error.contains("fails on purpose") && error.contains("%0A"), "the message holds the tail, escaped: {error}");
    let group = run.stderr.find("::group::broken · frontends/production stack — FAILED").expect("broken's failed group");
    let end = group + run.stderr[group..].find("::endgroup::").unwrap();
    assert!(run.stderr[group..end].contains("fails on purpose"), "{}", run.stderr);
    assert!(run.stderr[end..].starts_with("::endgroup::\n::error "), "the annotation follows the group:\n{}", run.stderr);
    // The step summary was appended to, with the fleet table.
    let summary = std::fs::read_to_string(files.path().join("summary.md")).unwrap();
    assert!(summary.starts_with("## an earlier step\n\n### `stamp deploy`: 2 customers\n"), "{summary}");
    assert!(
        summary.contains("| customer | env | region | result | bucket | vpc | ami | frontends | smoke | time | public URL |"),
        "{summary}"
    );
    assert!(summary.contains("| **acme** | production | eu-west-1 | ✅ done | ✅ done |"), "{summary}");
    assert!(
        summary.contains("| **broken** | production | eu-west-1 | ❌ FAILED |") && summary.contains("❌ FAILED (exit status 1)"),
        "{summary}"
    );
    assert!(summary.contains("- ❌ **broken**: FAILED at stage frontends"), "{summary}");
    assert!(summary.contains(": 1 ok, 1 failed, 0 interrupted, 0 not started**"), "{summary}");
    assert!(!summary.contains(SECRET_OUTPUT) && !summary.contains(SECRET_INPUT), "{summary}");
    assert!(!files.path().join("output").exists(), "only a one-customer deploy writes outputs");

    // One customer: its outputs for the next steps, never the sensitive ones.
    let run = github(&fleet, files.path(), &["deploy", "acme", "--auto-approve"]).ok();
    masked_first(&run, SECRET_OUTPUT);
    groups(&run.stderr);
    let output = std::fs::read_to_string(files.path().join("output")).unwrap();
    let line = |k: &str| output.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(String::from);
    assert!(line("public_url").is_some_and(|u| u.starts_with("http://")), "{output}");
    assert!(line("ami_id").is_some_and(|u| u.starts_with("ami-")), "{output}");
    assert!(line("vpc_id").is_some_and(|u| u.starts_with("vpc-")), "{output}");
    assert_eq!(line("customer").as_deref(), Some("acme"));
    assert_eq!(line("status").as_deref(), Some("unchanged"), "{output}");
    assert!(!output.contains(SECRET_OUTPUT) && !output.contains("database_secret_arn") && !output.contains(SECRET_INPUT), "{output}");
    let summary = std::fs::read_to_string(files.path().join("summary.md")).unwrap();
    assert_eq!(summary.matches("### `stamp deploy`").count(), 2, "a second section, appended: {summary}");

    // Shown on request, but masked first, on the stream the values go to.
    let run = github(&fleet, files.path(), &["outputs", "acme", "--show-sensitive"]).ok();
    let mask = run.stdout.find(&format!("::add-mask::{SECRET_OUTPUT}\n")).unwrap_or_else(|| panic!("no mask:\n{}", run.stdout));
    assert!(run.stdout.find(&format!("= {SECRET_OUTPUT}")).is_some_and(|shown| shown > mask), "{}", run.stdout);

    // --json: stdout stays JSON; the workflow commands are on stderr.
    let run = github(&fleet, files.path(), &["plan", "acme", "--json"]).ok();
    assert_eq!(run.report()["customer"], "acme");
    assert!(!run.stdout.contains("::"), "{}", run.stdout);
    assert!(run.stderr.contains("::group::acme · "), "{}", run.stderr);
    masked_first(&run, SECRET_OUTPUT);
    let summary = std::fs::read_to_string(files.path().join("summary.md")).unwrap();
    assert!(summary.contains("### `stamp plan`: 1 customer\n"), "{summary}");

    // Travis: balanced folds, plain lines, no GitHub commands.
    let out = fleet.stamp_cmd(&["plan", "acme", "broken", "--parallel", "2"]).env("TRAVIS", "true").output().unwrap();
    let run = Run::from(out, &["plan", "acme", "broken", "--parallel", "2"]);
    assert!(!run.stderr.contains("::"), "{}", run.stderr);
    let mut open: Option<&str> = None;
    let mut folds = 0;
    for l in run.stderr.lines() {
        if let Some(id) = l.strip_prefix("travis_fold:start:") {
            assert!(open.is_none(), "nested fold {id}:\n{}", run.stderr);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{id}");
            open = Some(id);
            folds += 1;
        } else if let Some(id) = l.strip_prefix("travis_fold:end:") {
            assert_eq!(open.take(), Some(id), "unbalanced fold:\n{}", run.stderr);
        } else if let Some(id) = open
            && l.starts_with('[')
        {
            let customer = id.split('.').next().unwrap();
            assert!(l.contains(&format!("] {customer} ")), "a line in {id}'s fold is not {customer}'s: {l}");
        }
    }
    assert!(open.is_none() && folds >= 4, "{folds} folds:\n{}", run.stderr);
}

#[test]
fn configuration_errors_are_annotations_on_their_file_and_line() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let files = tempfile::tempdir().unwrap();
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.customer("typo", "git_id = \"v1\"\nregoin = \"eu-west-1\"\n");
    let file = fleet.path().join("customers/typo.toml");

    let run = github(&fleet, files.path(), &["validate", "--all"]).code(2);
    let prefix = format!("::error file={},line=2,col=1,title=stamp%3A configuration error::", file.display());
    let annotation = run.stderr.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix}...:\n{}", run.stderr));
    assert!(annotation.contains("regoin"), "{annotation}");
    assert!(run.stderr.contains("error: typo: ") && run.stderr.contains("line 2"), "the normal message too:\n{}", run.stderr);
    assert_eq!(run.stderr.matches("::error ").count(), 1, "acme is valid:\n{}", run.stderr);

    // The same before a deploy: nothing starts, the annotation points at the line.
    let run = github(&fleet, files.path(), &["deploy", "acme", "typo", "--auto-approve"]).code(2);
    assert!(run.stderr.lines().any(|l| l.starts_with(&prefix)), "{}", run.stderr);
    assert!(!run.stderr.contains("::group::"), "nothing started:\n{}", run.stderr);

    // A problem that is no file's line: annotated on the customer file.
    let run = github(&fleet, files.path(), &["deploy", "acme", "--env", "nowhere", "--auto-approve"]).code(2);
    let prefix = format!("::error file={},title=stamp%3A usage error::", fleet.path().join("customers/acme.toml").display());
    assert!(run.stderr.lines().any(|l| l.starts_with(&prefix) && l.contains("nowhere")), "{}", run.stderr);
}
