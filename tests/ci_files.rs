//! The CI files stamp ships, checked without AWS: actionlint (with shellcheck on
//! every run script) on the workflows here and in examples/fleet-repo, the Travis
//! file's jobs, every step that runs stamp making it the step's entry process, the
//! jobs' wiring (plan, reviewer, canary, deploy, environments) as the runner
//! evaluates it, artifact names that survive a re-run, the drift issues script, and
//! the release archive installed by the stamp action with its checksum checked.
//! The runs against the emulator are in tests/ci_cancel.rs and tests/ci_fleet_repo.rs.

#[path = "support/gha.rs"]
mod gha;

use std::path::{Path, PathBuf};
use std::process::Command;

use gha::{GhStub, Runner, StepAt, release, repo, stripped_stamp, yaml};
use serde_json::{Value, json};

const WORKFLOWS: [&str; 4] = ["deploy.yml", "drift.yml", "pull-request.yml", "release.yml"];
/// The fleet workflows examples/fleet-repo carries (the release is stamp's own).
const FLEET_WORKFLOWS: [&str; 3] = ["deploy.yml", "drift.yml", "pull-request.yml"];

fn shellcheck() -> String {
    std::env::var("SHELLCHECK").unwrap_or_else(|_| "shellcheck".into())
}

fn actionlint() -> PathBuf {
    let a = repo().join(".tools/checks-venv/bin/actionlint");
    assert!(a.exists(), "{} is missing: run scripts/setup-tools.sh --checks (make test does)", a.display());
    a
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    v.sort();
    v
}

fn check_shell(name: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sh");
    std::fs::write(&file, format!("#!/bin/bash\n{script}\n")).unwrap();
    let out = Command::new(shellcheck()).arg(&file).output().expect("run shellcheck");
    assert!(out.status.success(), "{name}: shellcheck:\n{}\n--- script\n{script}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_shipped_workflow_and_the_fleet_repository_pass_actionlint_with_shellcheck() {
    for root in [repo(), repo().join("examples/fleet-repo")] {
        let files = yml_files(&root.join(".github/workflows"));
        let out = Command::new(actionlint()).current_dir(&root).arg("-shellcheck").arg(shellcheck()).args(&files).output().unwrap();
        assert!(
            out.status.success(),
            "actionlint found problems in {}:\n{}{}",
            root.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names: Vec<String> =
        yml_files(&repo().join(".github/workflows")).iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, WORKFLOWS);

    // The scripts the workflows and the action run.
    for s in [
        "scripts/install-stamp.sh",
        "scripts/release-archive.sh",
        ".github/scripts/drift-issues.sh",
        "examples/fleet-repo/packer/scripts/web.sh",
    ] {
        let out = Command::new(shellcheck()).arg(repo().join(s)).output().unwrap();
        assert!(out.status.success(), "{s}: shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
    }

    // The composite action (actionlint checks how it is called, not the file): its
    // run steps pass shellcheck and take inputs through env, never inline.
    let action = yaml(&repo().join("action.yml"));
    assert_eq!(action["runs"]["using"], "composite");
    for (k, _) in action["inputs"].as_object().unwrap() {
        assert!(
            ["stamp-version", "download-url", "terraform-version", "packer-version", "aws-role", "aws-region"].contains(&k.as_str()),
            "{k}"
        );
    }
    for step in action["runs"]["steps"].as_array().unwrap() {
        if let Some(run) = step["run"].as_str() {
            assert_eq!(step["shell"], "bash", "{step:#}");
            assert!(!run.contains("${{"), "an input inlined in a script can inject commands: {run}");
            check_shell("action.yml", run);
        }
    }

    // .travis.yml: its stages, and shellcheck on each job's commands.
    let travis = yaml(&repo().join(".travis.yml"));
    let stages: Vec<&str> = travis["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["validate", "deploy"]);
    let before: Vec<&str> = travis["before_script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for (i, job) in travis["jobs"]["include"].as_array().unwrap().iter().enumerate() {
        assert!(job["stage"].is_string(), "{job:#}");
        let script: Vec<&str> = job["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        check_shell(&format!(".travis.yml job {i}"), &[before.clone(), script].concat().join("\n"));
    }
}

/// The command words of a shell line that run stamp, each with whether `exec`
/// precedes it (a command position: the line's start or after ; && || | ( then
/// else do).
fn stamp_commands(line: &str) -> Vec<bool> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    if code.trim_start().starts_with('#') {
        return Vec::new();
    }
    let tokens: Vec<&str> = code.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if *t != "stamp" {
            continue;
        }
        let prev = if i == 0 { None } else { Some(tokens[i - 1]) };
        match prev {
            None | Some(";" | "&&" | "||" | "|" | "(" | "then" | "else" | "do" | "-") => found.push(false),
            Some("exec") => found.push(true),
            _ => {}
        }
    }
    found
}

fn assert_every_stamp_is_exec(what: &str, script: &str) -> usize {
    let mut n = 0;
    for line in script.lines() {
        for exec in stamp_commands(line) {
            assert!(exec, "{what}: stamp is not the step's entry process (use `exec stamp ...`):\n  {line}");
            n += 1;
        }
    }
    n
}

#[test]
fn every_step_that_runs_stamp_makes_it_the_entry_process() {
    // The check itself: it sees stamp where a shell runs it, and exec before it.
    assert_eq!(stamp_commands("stamp deploy acme --auto-approve"), [false]);
    assert_eq!(stamp_commands("  exec stamp deploy \"${c[@]}\""), [true]);
    assert_eq!(stamp_commands("if x; then stamp plan a; fi"), [false]);
    assert_eq!(stamp_commands("run: stamp deploy acme").len(), 0, "the caller strips `run:`");
    assert!(stamp_commands("echo the stamp action # stamp deploy").is_empty());

    let mut total = 0;
    for root in [repo(), repo().join("examples/fleet-repo")] {
        for wf in yml_files(&root.join(".github/workflows")) {
            let y = yaml(&wf);
            for (job, j) in y["jobs"].as_object().unwrap() {
                for step in j["steps"].as_array().unwrap() {
                    if let Some(run) = step["run"].as_str() {
                        total += assert_every_stamp_is_exec(&format!("{} job {job}", wf.display()), run);
                    }
                }
            }
        }
    }
    assert!(total >= 20, "the workflows run stamp in {total} places");

    // Travis runs a job's commands in one shell: `exec` there ends the job, so the
    // last command of a job runs stamp with exec, and any earlier stamp is one that
    // runs offline (validate, matrix) and holds nothing a cancel could leave behind.
    let travis = yaml(&repo().join(".travis.yml"));
    for job in travis["jobs"]["include"].as_array().unwrap() {
        let script: Vec<&str> = job["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let (last, earlier) = script.split_last().unwrap();
        assert!(assert_every_stamp_is_exec(".travis.yml, a job's last command", last) >= 1, "{last}");
        for cmd in earlier {
            for line in cmd.lines() {
                if !stamp_commands(line).is_empty() {
                    assert!(line.contains("stamp validate") || line.contains("stamp matrix"), ".travis.yml: {line}");
                }
            }
        }
    }

    // The workflow steps README and docs show.
    for doc in ["README.md", "docs/ci.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let mut in_yaml = false;
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("```") {
                in_yaml = t.starts_with("```yaml") || t.starts_with("```yml");
                continue;
            }
            if in_yaml {
                let code = t.trim_start_matches("- ").trim_start_matches("run:").trim_start_matches(" |");
                assert_every_stamp_is_exec(&format!("{doc} (a workflow example)"), code);
            }
        }
    }
}

#[test]
fn the_fleet_repository_carries_the_shipped_workflows_with_the_published_action() {
    for w in FLEET_WORKFLOWS {
        let here = std::fs::read_to_string(repo().join(".github/workflows").join(w)).unwrap();
        let there = std::fs::read_to_string(repo().join("examples/fleet-repo/.github/workflows").join(w)).unwrap();
        assert!(here.contains("      - uses: ./\n"), "{w} uses the action of this commit");
        assert_eq!(
            here.replace("      - uses: ./\n", "      - uses: OWNER/stamp@v1\n"),
            there,
            "examples/fleet-repo/.github/workflows/{w} must be .github/workflows/{w} with `uses: OWNER/stamp@v1`"
        );
    }
    assert_eq!(
        std::fs::read(repo().join(".github/scripts/drift-issues.sh")).unwrap(),
        std::fs::read(repo().join("examples/fleet-repo/.github/scripts/drift-issues.sh")).unwrap()
    );
    // A fleet repository holds no Rust and builds nothing: stamp comes from a release.
    let mut stack = vec![repo().join("examples/fleet-repo")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            assert!(!p.ends_with("Cargo.toml") && p.extension().is_none_or(|x| x != "rs"), "{}", p.display());
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml") {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(!text.contains("cargo "), "{}", p.display());
            }
        }
    }
}

fn matrix(entries: &[(&str, &str, bool)]) -> Value {
    let include: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, (customers, region, canary))| {
            json!({"job": (i + 1).to_string(), "customers": customers, "count": customers.split(' ').count(),
                   "region": region, "env": "production", "canary": canary})
        })
        .collect();
    json!({ "include": include })
}

#[test]
fn a_plan_with_destroys_waits_for_a_reviewer_and_each_deploy_job_runs_in_its_customers_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let wf = repo().join(".github/workflows/deploy.yml");
    let r = Runner::new(tmp.path(), &tmp.path().join("state"));
    let canary = matrix(&[("acme", "eu-west-1", true)]);
    let rest = matrix(&[("globex", "us-east-1", false), ("initech umbrella", "eu-west-1", false)]);
    let plan = |destroys: &str| {
        json!({"result": "success", "outputs": {"canary": canary.to_string(), "canary_count": "1", "rest": rest.to_string(),
               "rest_count": "2", "change_count": "5", "destroy_count": destroys}})
    };
    let needs = |destroys: &str, approve: &str, canary: &str| json!({"plan": plan(destroys), "approve": {"result": approve}, "canary": {"result": canary}});

    // The reviewer's job runs only for a plan that destroys or replaces.
    assert!(r.matrix(&wf, "approve", &needs("0", "", "")).is_empty());
    assert_eq!(r.matrix(&wf, "approve", &needs("2", "", "")).len(), 1);
    let approve = yaml(&wf)["jobs"]["approve"].clone();
    assert_eq!(approve["environment"], "stamp-destroy", "{approve:#}");

    // The canary: after no review needed (skipped) or an approval, never after a rejection.
    assert_eq!(r.matrix(&wf, "canary", &needs("0", "skipped", "")), canary["include"].as_array().unwrap().clone());
    assert_eq!(r.matrix(&wf, "canary", &needs("2", "success", "")).len(), 1);
    assert!(r.matrix(&wf, "canary", &needs("2", "failure", "")).is_empty(), "a rejected review deploys nothing");
    let failed_plan = json!({"plan": {"result": "failure", "outputs": {}}, "approve": {"result": "skipped"}});
    assert!(r.matrix(&wf, "canary", &failed_plan).is_empty());
    // The others: only after the canary succeeded.
    assert_eq!(r.matrix(&wf, "deploy", &needs("0", "skipped", "success")), rest["include"].as_array().unwrap().clone());
    assert!(r.matrix(&wf, "deploy", &needs("0", "skipped", "failure")).is_empty());
    assert!(r.matrix(&wf, "deploy", &needs("2", "failure", "skipped")).is_empty());

    // Each job applies the recorded plan, in its customer's environment (a job of
    // several customers in stamp-fleet), with the deploy role.
    let script = tmp.path().join("step.sh");
    for (job, entry, environment) in [
        ("canary", &canary["include"][0], "acme"),
        ("deploy", &rest["include"][0], "globex"),
        ("deploy", &rest["include"][1], "stamp-fleet"),
    ] {
        let step = r.render_step(StepAt { workflow: &wf, job, id: "deploy" }, &script, entry, &needs("2", "success", "success"), "success");
        assert_eq!(step.environment.as_deref(), Some(environment), "{job} {entry}");
        assert_eq!(step.argv, ["bash", "--noprofile", "--norc", "-eo", "pipefail", script.to_str().unwrap()]);
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            text.contains("exec stamp deploy \"${customers[@]}\" --parallel \"$PARALLEL\" --auto-approve --approved-plan plan/plan.json"),
            "{text}"
        );
        assert!(step.env.contains(&("CUSTOMERS".into(), entry["customers"].as_str().unwrap().into())), "{:?}", step.env);
    }
    let y = yaml(&wf);
    for job in ["canary", "deploy"] {
        let text = serde_json::to_string(&y["jobs"][job]).unwrap();
        assert!(text.contains("vars.STAMP_AWS_ROLE_ARN") && !text.contains("STAMP_PLAN_ROLE_ARN"), "{job}");
    }
    // The plan job: the read-only role, no environment, no secret of any customer.
    for (file, job) in
        [(".github/workflows/deploy.yml", "plan"), (".github/workflows/pull-request.yml", "plan"), (".github/workflows/drift.yml", "drift")]
    {
        let j = &yaml(&repo().join(file))["jobs"][job];
        let text = serde_json::to_string(j).unwrap();
        assert!(j.get("environment").is_none() && !text.contains("secrets."), "{file} {job}: {j:#}");
        assert!(text.contains("vars.STAMP_PLAN_ROLE_ARN") && !text.contains("STAMP_AWS_ROLE_ARN"), "{file} {job}");
    }
    // The canary and the other deploy jobs run the same steps.
    assert_eq!(y["jobs"]["canary"]["steps"], y["jobs"]["deploy"]["steps"]);
    // After a cancel or a failure, the status step runs; after success it does not.
    for (status, runs) in [("cancelled", true), ("failure", true), ("success", false)] {
        let step = r.render_step(
            StepAt { workflow: &wf, job: "deploy", id: "status" },
            &script,
            &rest["include"][0],
            &needs("0", "skipped", "success"),
            status,
        );
        assert_eq!(step.runs, runs, "job {status}");
    }
    assert!(std::fs::read_to_string(&script).unwrap().contains("exec stamp status \"${customers[@]}\""));
}

/// The upload steps of a job, alone in a workflow of their own, run as the runner
/// would in attempt `attempt` of the same run.
/// The rollout path: chosen by STAMP_ROLLOUT or the `rollout` input instead of the
/// canary and deploy jobs; its first job starts the rollout with the planned
/// customers, one job per later wave after it, one at a time and in order, each
/// resuming the record; nothing after a rejected review or a failed first wave.
#[test]
fn a_rollout_runs_a_job_per_wave_each_resuming_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let wf = repo().join(".github/workflows/deploy.yml");
    let mut r = Runner::new(tmp.path(), &tmp.path().join("state"));
    let canary = matrix(&[("acme", "eu-west-1", true)]);
    let rest = matrix(&[("globex initech", "eu-west-1", false)]);
    let plan = json!({"result": "success", "outputs": {"canary": canary.to_string(), "canary_count": "1", "rest": rest.to_string(),
                      "rest_count": "1", "change_count": "3", "destroy_count": "0", "selected": "acme globex initech"}});
    let needs = |approve: &str| json!({"plan": plan, "approve": {"result": approve}, "canary": {"result": "skipped"}});

    // Without the setting: the canary and deploy jobs, no rollout.
    assert!(r.matrix(&wf, "rollout", &needs("skipped")).is_empty());
    assert_eq!(r.matrix(&wf, "canary", &needs("skipped")).len(), 1);
    // With it (a repository variable, or the input of a run by hand): the rollout only.
    for (vars, inputs) in [(json!({"STAMP_ROLLOUT": "true"}), json!({})), (json!({}), json!({"rollout": true}))] {
        r.vars = vars;
        r.inputs = inputs;
        assert_eq!(r.matrix(&wf, "rollout", &needs("skipped")).len(), 1);
        assert!(r.matrix(&wf, "canary", &needs("skipped")).is_empty());
        assert!(
            r.matrix(&wf, "deploy", &json!({"plan": plan, "approve": {"result": "skipped"}, "canary": {"result": "success"}})).is_empty()
        );
        assert_eq!(r.matrix(&wf, "rollout", &needs("success")).len(), 1, "after an approval");
        assert!(r.matrix(&wf, "rollout", &needs("failure")).is_empty(), "a rejected review rolls out nothing");
    }
    let script = tmp.path().join("step.sh");
    let step = r.render_step(StepAt { workflow: &wf, job: "rollout", id: "rollout" }, &script, &json!({}), &needs("success"), "success");
    assert_eq!(step.environment.as_deref(), Some("stamp-fleet"));
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("exec stamp rollout \"${customers[@]}\" --waves 1 --parallel \"$PARALLEL\" --auto-approve \"${destroys[@]}\" --json > rollout.json"),
        "{text}"
    );
    assert!(step.env.contains(&("CUSTOMERS".into(), "acme globex initech".into())), "{:?}", step.env);
    assert!(step.env.contains(&("DESTROYS_APPROVED".into(), "true".into())), "{:?}", step.env);

    // The later waves: a job each, in order, one at a time, the first failure ending them.
    let first = |result: &str, waves: &str, count: &str| json!({"plan": plan, "rollout": {"result": result, "outputs": {"waves": waves, "waves_count": count}}});
    let waves = r#"{"include":[{"wave":2},{"wave":3}]}"#;
    assert_eq!(r.matrix(&wf, "rollout-waves", &first("success", waves, "2")), [json!({"wave": 2}), json!({"wave": 3})]);
    assert!(r.matrix(&wf, "rollout-waves", &first("success", r#"{"include":[]}"#, "0")).is_empty(), "one wave: done");
    assert!(r.matrix(&wf, "rollout-waves", &first("failure", waves, "2")).is_empty(), "a halted first wave");
    let strategy = &yaml(&wf)["jobs"]["rollout-waves"]["strategy"];
    assert_eq!((strategy["max-parallel"].clone(), strategy["fail-fast"].clone()), (json!(1), json!(true)), "{strategy:#}");
    let step = r.render_step(
        StepAt { workflow: &wf, job: "rollout-waves", id: "rollout" },
        &script,
        &json!({"wave": 2}),
        &first("success", waves, "2"),
        "success",
    );
    assert_eq!(step.environment.as_deref(), Some("stamp-fleet"));
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("exec stamp rollout --resume --waves 1 --parallel \"$PARALLEL\" --auto-approve"), "{text}");
}

fn uploads_of(job: &Value, workflow: &Path) {
    let uploads: Vec<Value> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@")))
        .cloned()
        .map(|mut s| {
            s.as_object_mut().unwrap().remove("if");
            s
        })
        .collect();
    assert!(!uploads.is_empty());
    let wf = json!({"name": "uploads", "on": "push", "jobs": {"j": {"runs-on": "ubuntu-24.04", "steps": uploads}}});
    std::fs::write(workflow, serde_json::to_string(&wf).unwrap()).unwrap();
}

#[test]
fn the_plan_and_log_artifacts_can_be_uploaded_again_by_a_rerun_and_outlive_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    for f in ["plan/plan.json", ".stamp/acme/logs/vpc.log", ".stamp/acme/last-run.json"] {
        std::fs::create_dir_all(ws.join(f).parent().unwrap()).unwrap();
        std::fs::write(ws.join(f), "{}").unwrap();
    }
    let y = yaml(&repo().join(".github/workflows/deploy.yml"));
    for job in ["plan", "canary", "deploy"] {
        let wf = tmp.path().join(format!("{job}.json"));
        uploads_of(&y["jobs"][job], &wf);
        let mut r = Runner::new(&ws, &tmp.path().join(format!("state-{job}")));
        let entry = json!({"job": "1", "customers": "acme", "count": 1});
        for attempt in [1, 2] {
            r.github = json!({"run_attempt": attempt});
            let run = r.job(&wf, "j", &entry, &json!({}));
            assert_eq!(run.result, "success", "{job}, attempt {attempt} (a re-run of failed jobs):\n{}", run.log);
            for d in &run.replaced {
                if job != "plan" {
                    assert!(d.contains("kept 30 day(s)"), "{d}");
                }
            }
        }
        // The stand-in refuses a second upload under one name without overwrite, as
        // upload-artifact does: the check above can fail.
        let mut again = Runner::new(&ws, &tmp.path().join(format!("state-{job}")));
        again.github = json!({"run_attempt": 1});
        let second = again.job(&wf, "j", &entry, &json!({}));
        assert_eq!(second.result == "success", job == "plan", "{job}: {}", second.log);
    }
    let plan_upload = y["jobs"]["plan"]["steps"].as_array().unwrap().iter().find(|s| s["with"]["name"] == "stamp-plan").unwrap().clone();
    assert!(plan_upload["with"]["retention-days"].as_u64().unwrap() >= 30, "{plan_upload:#}");
}

fn drift_report(customer: &str, state: &str, drifted: Value) -> Value {
    json!({"customer": customer, "env": "production", "region": "eu-west-1", "drift": state, "status": if state == "failed" { "failed" } else { "ok" },
           "stages": [{"name": "vpc", "status": "ok", "drifted": drifted}]})
}

#[test]
fn the_drift_job_opens_updates_and_closes_one_issue_per_drifted_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join(".github/scripts")).unwrap();
    std::fs::copy(repo().join(".github/scripts/drift-issues.sh"), ws.join(".github/scripts/drift-issues.sh")).unwrap();
    let gh = GhStub::new(
        json!({"issues": [{"number": 7, "title": "a question", "body": "", "labels": ["question"], "state": "open", "comments": []}]}),
    );
    let mut r = Runner::new(&ws, &tmp.path().join("state"));
    r.path.push(gh.bin());
    r.env.extend(gh.env());
    let wf = repo().join(".github/workflows/drift.yml");
    let script = tmp.path().join("issues.sh");
    // The step the drift job runs after `stamp drift --all --json > drift.json`, run
    // as the runner runs it.
    let nightly = |report: Value| {
        std::fs::write(ws.join("drift.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
        let step = r.render_step(StepAt { workflow: &wf, job: "drift", id: "issues" }, &script, &json!({}), &json!({}), "failure");
        assert!(step.runs, "the issues step runs when drift exits 3 (the step failed)");
        let out = Command::new(&step.argv[0])
            .args(&step.argv[1..])
            .current_dir(&ws)
            .envs(step.env.iter().cloned())
            .envs(gh.env())
            .env("PATH", format!("{}:{}", gh.bin().display(), std::env::var("PATH").unwrap()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let several = |customers: Vec<Value>| json!({"schema_version": 2, "kind": "drift", "customers": customers, "summary": {}});
    let tag = json!([{"address": "aws_vpc.this", "action": "update", "attributes": ["tags.env"]}]);

    // Night 1: acme drifted (an issue opens), globex is in sync (none), initech's
    // check failed (nothing is known: nothing changes).
    let said = nightly(several(vec![
        drift_report("acme", "drifted", tag.clone()),
        drift_report("globex", "in sync", json!([])),
        drift_report("initech", "failed", json!(null)),
    ]));
    assert!(said.contains("initech could not be checked (failed)"), "{said}");
    let issues = gh.issues();
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let acme = &issues[1];
    assert_eq!(
        (acme["title"].as_str(), acme["state"].as_str(), &acme["labels"]),
        (Some("stamp drift: acme"), Some("open"), &json!(["stamp-drift"]))
    );
    let body = acme["body"].as_str().unwrap();
    assert!(body.contains("- `vpc`: update `aws_vpc.this` (tags.env)") && body.contains("`stamp plan acme`"), "{body}");
    assert_eq!(gh.state()["labels"], json!(["stamp-drift"]));

    // Night 2: acme still drifts, otherwise: the same issue, its text replaced.
    let gone = json!([{"address": "aws_subnet.public[1]", "action": "create"}]);
    nightly(several(vec![drift_report("acme", "drifted", gone), drift_report("globex", "pending", json!([]))]));
    let issues = gh.issues();
    assert_eq!(issues.len(), 2, "still one issue for acme: {issues:#?}");
    assert!(issues[1]["body"].as_str().unwrap().contains("create `aws_subnet.public[1]`"), "{:#}", issues[1]);

    // Night 3: acme is back in sync: its issue closes, saying so. The unrelated
    // issue is never touched.
    nightly(several(vec![drift_report("acme", "in sync", json!([])), drift_report("globex", "in sync", json!([]))]));
    let issues = gh.issues();
    assert_eq!(issues[1]["state"], "closed");
    assert!(issues[1]["comments"][0].as_str().unwrap().starts_with("No drift any more: acme is in sync"), "{:#}", issues[1]);
    assert_eq!(issues[0]["state"], "open");
    assert!(gh.calls().iter().all(|c| !c["argv"].to_string().contains("\"7\"")), "{:#?}", gh.calls());

    // A fleet of one customer: the same document, with one customer.
    nightly(several(vec![drift_report("acme", "drifted", tag)]));
    let issues = gh.issues();
    assert_eq!(issues.len(), 3, "a new issue once the old one is closed: {issues:#?}");
    assert_eq!((issues[2]["title"].as_str(), issues[2]["state"].as_str()), (Some("stamp drift: acme"), Some("open")));
}

fn install_workflow(dir: &Path, version: &str, url: &Path) -> PathBuf {
    let wf = dir.join("install.yml");
    let text = format!(
        "name: install\non: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n      - id: stamp\n        uses: OWNER/stamp@v1\n        with:\n          stamp-version: \"{version}\"\n          download-url: {}\n          terraform-version: \"\"\n          packer-version: \"\"\n      - name: stamp on PATH\n        shell: bash\n        run: exec stamp --version\n",
        url.display()
    );
    std::fs::write(&wf, text).unwrap();
    wf
}

#[test]
fn the_stamp_action_installs_a_release_archive_and_refuses_one_whose_checksum_does_not_match() {
    if std::env::consts::ARCH != "x86_64" {
        return; // the archive below is built for x86_64 only
    }
    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("v{version}");
    let tmp = tempfile::tempdir().unwrap();
    let binary = stripped_stamp(tmp.path());
    let releases = tmp.path().join("releases");
    let out = release(&binary, &releases, &tag);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = releases.join("download").join(&tag);
    let archive = dir.join("stamp-x86_64-unknown-linux-gnu.tar.gz");
    let sum = std::fs::read_to_string(dir.join("stamp-x86_64-unknown-linux-gnu.tar.gz.sha256")).unwrap();
    assert!(sum.ends_with("  stamp-x86_64-unknown-linux-gnu.tar.gz\n"), "{sum}");
    let list = Command::new("tar").arg("-tzf").arg(&archive).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    for f in ["stamp", "LICENSE", "README.md", "CHANGELOG.md"] {
        assert!(names.lines().any(|l| l == format!("stamp-x86_64-unknown-linux-gnu/{f}")), "{names}");
    }
    // A tag that is not the binary's version is refused.
    let wrong = release(&binary, &tmp.path().join("wrong"), "v9.9.9");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("tag v9.9.9, but"), "{}", String::from_utf8_lossy(&wrong.stderr));

    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let mut r = Runner::new(&ws, &tmp.path().join("state"));
    r.actions.push(("OWNER/stamp".into(), repo()));
    let job = r.job(&install_workflow(tmp.path(), version, &releases), "j", &json!({}), &json!({})).succeeded();
    let said = Command::new(env!("CARGO_BIN_EXE_stamp")).arg("--version").output().unwrap();
    let said = String::from_utf8_lossy(&said.stdout).trim().to_owned();
    assert!(job.log.contains(&format!("installed {said} in ")), "{}", job.log);
    assert_eq!(job.steps[0]["outputs"]["stamp-version"], said.as_str());
    assert!(job.log.lines().any(|l| l == said), "the next step runs the installed stamp:\n{}", job.log);

    // A release v9.9.9 whose archive holds this version (tried further down).
    let other = releases.join("download/v9.9.9");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["stamp-x86_64-unknown-linux-gnu.tar.gz", "stamp-x86_64-unknown-linux-gnu.tar.gz.sha256"] {
        std::fs::copy(dir.join(f), other.join(f)).unwrap();
    }

    // One byte changed: the checksum refuses it and nothing is installed.
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let bad = r.job(&install_workflow(tmp.path(), version, &releases), "j", &json!({}), &json!({}));
    assert_eq!(bad.result, "failure", "{}", bad.log);
    assert!(bad.log.contains("checksum mismatch") && bad.log.contains("nothing was installed"), "{}", bad.log);
    assert_eq!(bad.steps[1]["outcome"], "skipped", "no later step runs");
    let leftovers: Vec<_> = walk(&tmp.path().join("state")).into_iter().filter(|p| p.ends_with("stamp-bin/stamp")).collect();
    assert_eq!(leftovers.len(), 1, "only the first job's install: {leftovers:?}");

    // A release whose archive holds another version is refused too.
    let mismatch = r.job(&install_workflow(tmp.path(), "9.9.9", &releases), "j", &json!({}), &json!({}));
    assert_eq!(mismatch.result, "failure");
    assert!(mismatch.log.contains(&format!("holds `{said}`, not stamp 9.9.9")), "{}", mismatch.log);

    // Without download-url: the releases of the repository the action was used
    // from, read from where the runner checked it out (.../_actions/OWNER/REPO/REF).
    let dest = tmp.path().join("dest");
    let out = Command::new(repo().join("scripts/install-stamp.sh"))
        .args([version, ""])
        .arg(&dest)
        .env("GITHUB_ACTION_PATH", "/home/runner/work/_actions/acme-corp/stamp/v1")
        .env("GITHUB_SERVER_URL", "http://127.0.0.1:9")
        .env_remove("ACTION_REPOSITORY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot download http://127.0.0.1:9/acme-corp/stamp/releases/download/v{version}/stamp-x86_64-unknown-linux-gnu.tar.gz"
        )),
        "{err}"
    );
    let out = Command::new(repo().join("scripts/install-stamp.sh")).args(["not-a-version", "/nowhere"]).arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stamp-version `not-a-version` is not a version"));
}

/// The shipped workflows, the Travis file and the examples install the release of
/// this commit's version (Cargo.toml): a release bumps them together, and the tests
/// that install a release archive of the build under test install that version.
#[test]
fn the_ci_files_pin_the_release_of_this_version() {
    let version = env!("CARGO_PKG_VERSION");
    let mut files: Vec<PathBuf> = FLEET_WORKFLOWS.iter().map(|w| repo().join(".github/workflows").join(w)).collect();
    files.extend(FLEET_WORKFLOWS.iter().map(|w| repo().join("examples/fleet-repo/.github/workflows").join(w)));
    for f in &files {
        assert_eq!(yaml(f)["env"]["STAMP_VERSION"], version, "{}", f.display());
    }
    let travis = std::fs::read_to_string(repo().join(".travis.yml")).unwrap();
    assert!(travis.contains(&format!("- STAMP_VERSION={version}\n")), ".travis.yml");
    for doc in ["README.md", "docs/ci.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        assert!(
            text.contains(&format!("stamp-version: {version}\n")) && text.contains(&format!("--tag v{version} stamp")),
            "{doc} shows {version}"
        );
    }
}

/// `cargo install --locked --git ... --tag vX.Y.Z stamp`, as README and docs/ci.md
/// give it: `--locked` builds with the committed Cargo.lock and refuses one that does
/// not match Cargo.toml; the package's binary is `stamp`; its license file ships.
#[test]
fn cargo_install_locked_builds_the_stamp_binary_from_the_committed_lock_file() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "Cargo.lock does not match Cargo.toml: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stamp = meta["packages"].as_array().unwrap().iter().find(|p| p["name"] == "stamp").unwrap();
    assert!(
        stamp["targets"].as_array().unwrap().iter().any(|t| t["name"] == "stamp" && t["kind"] == json!(["bin"])),
        "{:#}",
        stamp["targets"]
    );
    assert_eq!(stamp["license"], "MIT");
    assert!(std::fs::read_to_string(repo().join("LICENSE")).unwrap().contains("MIT License"));
    let tracked = Command::new("git").args(["ls-files", "--error-unmatch", "Cargo.lock"]).current_dir(repo()).output().unwrap();
    assert!(tracked.status.success(), "Cargo.lock must be committed for --locked");
    for doc in ["README.md", "docs/ci.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        assert!(text.contains("cargo install --locked --git https://github.com/OWNER/stamp --tag v"), "{doc}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// What docs/ci.md says of the workflows' triggers, concurrency and shell.
#[test]
fn the_workflows_triggers_concurrency_and_shell_are_the_documented_ones() {
    let wf = |name: &str| yaml(&repo().join(".github/workflows").join(name));
    for name in WORKFLOWS {
        assert_eq!(wf(name)["defaults"]["run"]["shell"], "bash", "{name}: run steps as bash --noprofile --norc -eo pipefail");
    }
    let deploy = wf("deploy.yml");
    assert_eq!(deploy["on"]["push"]["branches"], json!(["main"]));
    assert!(deploy["on"]["workflow_dispatch"]["inputs"]["customers"].is_object());
    assert_eq!(
        deploy["concurrency"],
        json!({"group": "stamp-deploy", "cancel-in-progress": false}),
        "one deploy at a time, never cut short"
    );
    let pr = wf("pull-request.yml");
    assert_eq!(pr["on"]["pull_request"]["branches"], json!(["main"]));
    assert_eq!(pr["concurrency"]["cancel-in-progress"], true, "a newer push replaces a plan");
    let drift = wf("drift.yml");
    assert_eq!(drift["on"]["schedule"], json!([{"cron": "17 3 * * *"}]));
    assert_eq!(drift["jobs"]["drift"]["permissions"]["issues"], "write");
    let release = wf("release.yml");
    assert_eq!(release["on"]["push"]["tags"], json!(["v*"]));
    let targets: Vec<&str> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]);
    assert_eq!(release["jobs"]["release"]["permissions"]["contents"], "write");

    // A pull request from a fork: no role, no plan (GitHub gives it no OIDC token).
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Runner::new(tmp.path(), &tmp.path().join("state"));
    let file = repo().join(".github/workflows/pull-request.yml");
    let script = tmp.path().join("plan.sh");
    for (head, planned) in [("OWNER/fleet", true), ("someone/fleet", false)] {
        r.github = json!({"event_name": "pull_request", "repository": "OWNER/fleet", "base_ref": "main",
                          "event": {"pull_request": {"number": 3, "head": {"repo": {"full_name": head}}}}});
        let step = r.render_step(StepAt { workflow: &file, job: "plan", id: "plan" }, &script, &json!({}), &json!({}), "success");
        assert_eq!(step.runs, planned, "a pull request from {head}");
    }
}

/// The OIDC subjects docs/ci.md names for each job are those the shipped trust
/// policies (docs/iam/) accept for that job's role, and a job assumes the deploy
/// role only from an environment (a job in an environment is named by it).
#[test]
fn each_job_assumes_its_role_under_the_oidc_subject_the_trust_policies_accept() {
    let guide = std::fs::read_to_string(repo().join("docs/ci.md")).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let trust = |f: &str| std::fs::read_to_string(repo().join("docs/iam").join(f)).unwrap();
    for (sub, file) in [
        ("repo:OWNER/REPO:pull_request", "trust-plan.json"),
        ("repo:OWNER/REPO:ref:refs/heads/main", "trust-plan.json"),
        ("repo:OWNER/REPO:environment:stamp-fleet", "trust-deploy-environments.json"),
        ("repo:OWNER/REPO:environment:CUSTOMER_1", "trust-deploy-environments.json"),
    ] {
        assert!(trust(file).contains(&format!("\"{sub}\"")), "docs/iam/{file} trusts {sub}");
    }
    for sub in [
        "`repo:OWNER/REPO:pull_request`",
        "`repo:OWNER/REPO:ref:refs/heads/main`",
        "`repo:OWNER/REPO:environment:<customer>`",
        "`environment:stamp-fleet`",
    ] {
        assert!(guide.contains(sub), "docs/ci.md names {sub}");
    }
    assert!(readme.contains("`repo:OWNER/REPO:environment:<customer>`"));
    let deploy = yaml(&repo().join(".github/workflows/deploy.yml"));
    for (name, job) in deploy["jobs"].as_object().unwrap() {
        if !serde_json::to_string(job).unwrap().contains("STAMP_AWS_ROLE_ARN") {
            continue;
        }
        let env = job["environment"].as_str().unwrap_or_default();
        if name.starts_with("rollout") {
            // A rollout's job deploys a wave of several customers.
            assert_eq!(env, "stamp-fleet", "{name}");
        } else {
            assert!(env.contains("matrix.customers") && env.contains("stamp-fleet"), "{name}");
        }
    }
}

/// A deploy job holds its customer's secrets only: with the workflows' commented
/// secret line in use, each job's deploy step gets the value of its own customer's
/// environment (the runner gives a job the secrets of the environment it names).
#[test]
fn a_deploy_job_gets_the_secret_of_its_customers_environment_only() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(".github/workflows/deploy.yml")).unwrap();
    let commented = "          # APP_SECRET: ${{ secrets.APP_SECRET }}\n";
    assert_eq!(text.matches(commented).count(), 2, "the canary and deploy steps carry the line");
    let wf = tmp.path().join("deploy.yml");
    std::fs::write(&wf, text.replace(commented, "          APP_SECRET: ${{ secrets.APP_SECRET }}\n")).unwrap();
    let mut r = Runner::new(tmp.path(), &tmp.path().join("state"));
    r.secrets = json!({"acme": {"APP_SECRET": "acme-value"}, "globex": {"APP_SECRET": "globex-value"}, "stamp-fleet": {}});
    let needs = json!({"plan": {"result": "success", "outputs": {}}, "approve": {"result": "skipped"}, "canary": {"result": "success"}});
    let script = tmp.path().join("deploy.sh");
    for (customers, count, want) in [("acme", 1, "acme-value"), ("globex", 1, "globex-value"), ("acme globex", 2, "")] {
        let entry = json!({"job": "1", "customers": customers, "count": count, "region": "eu-west-1", "env": "production"});
        let step = r.render_step(StepAt { workflow: &wf, job: "deploy", id: "deploy" }, &script, &entry, &needs, "success");
        let got = step.env.iter().find(|(k, _)| k == "APP_SECRET").map(|(_, v)| v.as_str());
        assert_eq!(got, Some(want), "the job of {customers}");
    }
    let plan = serde_json::to_string(&yaml(&wf)["jobs"]["plan"]).unwrap();
    assert!(!plan.contains("secrets."), "the plan job reads no secret");
}
