//! A cancel of the shipped deploy workflow, delivered as GitHub Actions delivers it.
//!
//! The runner signals only a step's entry process: SIGINT to it, SIGTERM 7.5 s
//! later, and at 10 s SIGKILL to the whole process tree (and every process the job
//! started). The deploy step is taken from .github/workflows/deploy.yml (its
//! `${{ }}` substituted by tests/support/gha_runner.py, as the runner does), written
//! to a file and run as `bash --noprofile --norc -eo pipefail FILE` with the env the
//! step declares, for a job of two customers deployed one after the other, against
//! the emulator and the stand-in stacks, with the plan the plan step recorded. The
//! cancel comes while acme's frontends apply is busy saving its state, which the
//! test's fault proxy holds for 6 s. Then: stamp printed at once what was running and
//! how to check and release the lock, terraform saved what it created, no lock is
//! left, nothing was started after the cancel (the stand-ins log when each resource
//! starts; the proxy sees every create), and the status step (`if: cancelled() ||
//! failure()`) puts `stamp status` into the job summary. The same checks fail for the
//! old step, `stamp deploy ...` under bash without `exec`: bash passes the SIGINT to
//! nobody, stamp never hears of the cancel and starts the next customer.

mod common;
#[path = "support/gha.rs"]
mod gha;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Emulator, FaultProxy, Fleet};
use gha::{Runner, StepAt};
use serde_json::{Value, json};

const BUCKET: &str = "tfstate-123456789012-acme";
/// How long the proxy holds acme's frontends state upload: less than the 10 s
/// before the runner's SIGKILL, so terraform can finish if it is let to.
const HELD_FOR: u64 = 6;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pipe read on a thread of its own, so the test sees what was printed so far.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn of(mut r: impl Read + Send + 'static) -> Self {
        let c = Self::default();
        let buf = c.0.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        c
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The processes of a session (the step's, and every process it started: tools
/// run in process groups of their own, never in sessions of their own).
fn session_members(sid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command's closing parenthesis: state ppid pgrp session ...
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[0] != "Z" && f[3].parse::<i32>() == Ok(sid) {
            out.push(pid);
        }
    }
    out
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process of the test's own step.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The runner's environment for a step: the default variables it sets, files for
/// the step's outputs and summary, the step's own env, stamp first on PATH.
fn runner_env(fleet: &Fleet, files: &Path, step_env: &[(String, String)]) -> Vec<(String, String)> {
    let stamp_dir = PathBuf::from(env!("CARGO_BIN_EXE_stamp")).parent().unwrap().to_path_buf();
    let mut env = vec![
        ("GITHUB_ACTIONS".to_owned(), "true".to_owned()),
        ("CI".into(), "true".into()),
        ("GITHUB_WORKSPACE".into(), fleet.path().display().to_string()),
        ("GITHUB_OUTPUT".into(), files.join("output").display().to_string()),
        ("GITHUB_STEP_SUMMARY".into(), files.join("summary").display().to_string()),
        ("GITHUB_RUN_ATTEMPT".into(), "1".into()),
        ("PATH".into(), format!("{}:{}", stamp_dir.display(), std::env::var("PATH").unwrap())),
    ];
    env.extend(step_env.iter().cloned());
    env
}

/// A command with the environment the harness gives stamp (the emulator, the
/// terraform CLI configuration), in the fleet's directory.
fn in_fleet(fleet: &Fleet, program: &str) -> Command {
    let harness = fleet.stamp_cmd(&[]);
    let mut c = Command::new(program);
    c.current_dir(fleet.path());
    for (k, v) in harness.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// The plan step of deploy.yml's plan job for this job's customers, run as the
/// runner runs it: it records plan/plan.json, which the deploy step applies.
fn plan_step(fleet: &Fleet, runner: &Runner, entry: &Value) {
    let wf = gha::repo().join(".github/workflows/deploy.yml");
    let files = tempfile::tempdir().unwrap();
    for f in ["output", "summary"] {
        std::fs::write(files.path().join(f), "").unwrap();
    }
    let mut r = Runner::new(fleet.path(), &files.path().join("state"));
    r.steps =
        json!({"matrix": {"outputs": {"matrix": json!({"include": [entry]}).to_string()}, "outcome": "success", "conclusion": "success"}});
    r.vars = runner.vars.clone();
    let script = files.path().join("plan.sh");
    let step = r.render_step(StepAt { workflow: &wf, job: "plan", id: "plan" }, &script, &json!({}), &json!({}), "success");
    let out = in_fleet(fleet, &step.argv[0])
        .args(&step.argv[1..])
        .envs(runner_env(fleet, files.path(), &step.env))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the plan step failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fleet.path().join("plan/plan.json").exists());
    let outputs = std::fs::read_to_string(files.path().join("output")).unwrap();
    assert!(outputs.contains("destroy_count=0"), "{outputs}");
}

/// What happened to one cancelled deploy step.
struct Cancelled {
    _emu: Emulator,
    proxy: FaultProxy,
    fleet: Fleet,
    runner: Runner,
    entry: Value,
    /// When the SIGINT was sent (seconds since the epoch).
    cancelled_at: f64,
    /// What the step printed before the SIGTERM (7.5 s).
    before_sigterm: String,
    /// Everything the step printed.
    said: String,
    /// The step's own exit status, if it ended before the SIGKILL at 10 s.
    exited: Option<std::process::ExitStatus>,
    /// How many of its processes were still running at 10 s (and were killed).
    killed: usize,
    starts: PathBuf,
    _files: tempfile::TempDir,
}

/// The two cancels of this file run one after the other: the runner's 7.5 s and
/// 10 s are wall-clock, and the machine may be busy enough as it is.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Deploys acme then globex with the deploy step of deploy.yml (made the old way,
/// without exec, when `exec` is false) and cancels the job while acme's frontends
/// state is being saved.
fn cancel_the_deploy_step(exec: bool) -> Cancelled {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    // globex's frontends take a minute (the stand-in's slow hook): started, they would
    // still be applying at the SIGKILL.
    fleet.customer("acme", "git_id = \"v1\"\n").customer("globex", "git_id = \"v1\"\n[frontends.vars]\ninstance_type = \"slow.standin\"\n");
    let files = tempfile::tempdir().unwrap();
    for f in ["output", "summary"] {
        std::fs::write(files.path().join(f), "").unwrap();
    }
    let mut runner = Runner::new(fleet.path(), &files.path().join("state"));
    // One job of two customers, one at a time: globex would start after acme.
    runner.vars = json!({"STAMP_PARALLEL": "1"});
    let entry = json!({"job": "1", "customers": "acme globex", "count": 2, "region": "eu-west-1", "env": "production", "canary": false});
    plan_step(&fleet, &runner, &entry);

    let wf = gha::repo().join(".github/workflows/deploy.yml");
    let script = files.path().join("deploy.sh");
    let needs = json!({"plan": {"result": "success", "outputs": {}}, "approve": {"result": "skipped"}, "canary": {"result": "success"}});
    let step = runner.render_step(StepAt { workflow: &wf, job: "deploy", id: "deploy" }, &script, &entry, &needs, "success");
    assert_eq!(step.argv, ["bash", "--noprofile", "--norc", "-eo", "pipefail", script.to_str().unwrap()]);
    if !exec {
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.contains("exec stamp deploy"), "{text}");
        std::fs::write(&script, text.replace("exec stamp deploy", "stamp deploy")).unwrap();
    }

    // Held: acme's frontends state upload (the object, not its .tflock). Watched
    // (a delay of 0 is logged with its time): every create a deploy could start.
    let mut rules = vec![
        json!({"method": "PUT", "path": "/acme/frontends/production?x-id=PutObject", "action": "delay", "seconds": HELD_FOR, "times": 1}),
    ];
    for body in ["Action=RunInstances", "Action=CreateVpc", "Action=CreateSubnet", "Action=CreateLoadBalancer"] {
        rules.push(json!({"method": "POST", "body": body, "action": "delay", "seconds": 0}));
    }
    rules.push(json!({"method": "PUT", "path": "/tfstate-123456789012-globex", "action": "delay", "seconds": 0}));
    proxy.set_rules(json!(rules));

    let starts = files.path().join("starts.log");
    let mut cmd = in_fleet(&fleet, &step.argv[0]);
    cmd.args(&step.argv[1..])
        .envs(runner_env(&fleet, files.path(), &step.env))
        .env("STANDIN_START_LOG", &starts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid() only, between fork and exec: the step gets a session of its
    // own, so that the SIGKILL at 10 s reaches every process it started.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child: Child = cmd.spawn().expect("start the deploy step");
    let pid = child.id() as i32;
    let stdout = Captured::of(child.stdout.take().unwrap());
    let stderr = Captured::of(child.stderr.take().unwrap());
    let said = || format!("{}{}", stdout.text(), stderr.text());

    wait_for("acme's frontends apply to begin saving its state", Duration::from_secs(240), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the deploy step ended ({s}) before the frontends apply:\n{}", said());
        }
        proxy.faults().iter().any(|f| f["rule"] == 0)
    });
    let start = Instant::now();
    let cancelled_at = now();
    signal(pid, libc::SIGINT);

    // 7.5 s later: SIGTERM to the entry process, if it still runs.
    let mut exited = None;
    let mut before_sigterm = None;
    while start.elapsed() < Duration::from_secs(10) {
        if exited.is_none()
            && let Some(s) = child.try_wait().unwrap()
        {
            exited = Some(s);
        }
        if before_sigterm.is_none() && start.elapsed() >= Duration::from_millis(7500) {
            before_sigterm = Some(said());
            if exited.is_none() {
                signal(pid, libc::SIGTERM);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_sigterm = before_sigterm.unwrap_or_else(&said);
    // 10 s: the process tree, and whatever else the step started, killed.
    let left = session_members(pid);
    for p in &left {
        signal(*p, libc::SIGKILL);
    }
    if exited.is_none() {
        let _ = child.wait();
    }
    wait_for("every process of the step to be gone", Duration::from_secs(10), || session_members(pid).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    Cancelled {
        _emu: emu,
        proxy,
        fleet,
        runner,
        entry,
        cancelled_at,
        before_sigterm,
        said: said(),
        exited,
        killed: left.len(),
        starts,
        _files: files,
    }
}

impl Cancelled {
    fn dir(&self) -> String {
        self.fleet.path().join(".stamp/acme/terraform/frontends/production").display().to_string()
    }

    /// The checks a cancel must pass: each one that fails, said.
    fn check(&self) -> Vec<String> {
        let mut failed = Vec::new();
        let t = &self.before_sigterm;
        for needle in [
            "SIGINT received: stopping gracefully".to_owned(),
            "running: acme frontends: terraform apply".to_owned(),
            "stamp status acme".to_owned(),
            format!("terraform -chdir={} force-unlock", self.dir()),
        ] {
            if !t.contains(&needle) {
                failed.push(format!("before the SIGTERM, stamp had not said {needle:?}"));
            }
        }
        // Terraform saved what it created, and released its lock.
        let state = self.fleet.state(BUCKET, "acme/frontends/production");
        let created: Vec<String> = state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}.{}", r["type"].as_str().unwrap(), r["name"].as_str().unwrap()))
            .collect();
        if !created.contains(&"terraform_data.frontend".to_owned()) {
            failed.push(format!("acme's frontends state lacks what terraform created: {created:?}"));
        }
        for bucket in self.fleet.buckets() {
            let objects =
                self.fleet.aws(&["s3api", "list-objects-v2", "--bucket", &bucket, "--query", "Contents[].Key", "--output", "text"]);
            if objects.contains(".tflock") {
                failed.push(format!("a state lock is left in {bucket}: {}", objects.trim()));
            }
        }
        // Nothing started after the cancel: no stand-in resource, no create call.
        let starts = std::fs::read_to_string(&self.starts).unwrap_or_default();
        for line in starts.lines() {
            let at: f64 = line.split(' ').next().unwrap().parse().unwrap();
            if at > self.cancelled_at {
                failed.push(format!("a resource was started {:.1}s after the cancel: {line}", at - self.cancelled_at));
            }
        }
        for f in self.proxy.faults().iter().filter(|f| f["rule"] != 0) {
            let at = f["time"].as_f64().unwrap();
            if at > self.cancelled_at {
                failed.push(format!("{} {} was called {:.1}s after the cancel", f["method"], f["path"], at - self.cancelled_at));
            }
        }
        if self.killed > 0 || self.exited.and_then(|s| s.code()) != Some(130) {
            failed.push(format!(
                "the step did not end by itself with 130 (interrupted) before the SIGKILL: {:?}, {} process(es) killed",
                self.exited, self.killed
            ));
        }
        failed
    }
}

#[test]
fn a_cancelled_deploy_step_stops_stamp_which_lets_terraform_save_its_state_and_starts_nothing_more() {
    let c = cancel_the_deploy_step(true);
    let failed = c.check();
    assert!(failed.is_empty(), "{}\n--- the step's output\n{}", failed.join("\n"), c.said);
    let log = c.fleet.log("acme", "frontends");
    assert!(log.contains("Interrupt received") && !log.contains("Two interrupts received"), "{log}");
    assert!(!c.fleet.buckets().contains(&"tfstate-123456789012-globex".to_owned()), "globex was never started");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(c.fleet.path().join(".stamp/acme/last-run.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "interrupted");

    // The job is cancelled: the status step runs and puts stamp status in the summary.
    let wf = gha::repo().join(".github/workflows/deploy.yml");
    let files = tempfile::tempdir().unwrap();
    for f in ["output", "summary"] {
        std::fs::write(files.path().join(f), "").unwrap();
    }
    let script = files.path().join("status.sh");
    let needs = json!({"plan": {"result": "success", "outputs": {}}, "approve": {"result": "skipped"}, "canary": {"result": "success"}});
    let step = c.runner.render_step(StepAt { workflow: &wf, job: "deploy", id: "status" }, &script, &c.entry, &needs, "cancelled");
    assert!(step.runs, "`if: cancelled() || failure()` runs after a cancel");
    let out = in_fleet(&c.fleet, &step.argv[0])
        .args(&step.argv[1..])
        .envs(runner_env(&c.fleet, files.path(), &step.env))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let summary = std::fs::read_to_string(files.path().join("summary")).unwrap();
    assert!(summary.contains("acme") && summary.contains("globex"), "the job summary:\n{summary}");
}

#[test]
fn the_old_step_without_exec_fails_the_same_checks_stamp_never_hears_of_the_cancel() {
    let c = cancel_the_deploy_step(false);
    let failed = c.check();
    eprintln!("the old step fails the cancel's checks:\n  {}", failed.join("\n  "));
    assert!(!c.before_sigterm.contains("SIGINT received"), "bash passed the SIGINT on?\n{}", c.said);
    assert!(failed.iter().any(|f| f.contains("after the cancel")), "stamp went on to globex: {failed:#?}\n{}", c.said);
    assert!(failed.iter().any(|f| f.contains("did not end by itself")), "{failed:#?}");
}

/// The rollout path: the step of a later wave's job (`rollout-waves`), run as the
/// runner runs it, cancelled as GitHub cancels (SIGINT to the step's entry process)
/// while its wave deploys; then "Re-run failed jobs" runs the same step again, which
/// resumes the rollout's record and finishes the wave. Nobody is deployed twice: a
/// customer that finished before the cancel gets no terraform run in the re-run.
#[test]
fn a_cancelled_wave_job_is_resumed_by_its_rerun_and_deploys_nobody_twice() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let files = tempfile::tempdir().unwrap();
    for f in ["output", "summary"] {
        std::fs::write(files.path().join(f), "").unwrap();
    }
    // Each terraform run written down: its subcommand and working directory.
    let runs = files.path().join("runs.txt");
    let wrapper = files.path().join("terraform-counted");
    std::fs::write(
        &wrapper,
        format!("#!/bin/bash\necho \"$1 $PWD\" >> {}\nexec {} \"$@\"\n", runs.display(), common::tool("terraform").display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let toml = common::FLEET_TOML.replace("terraform = \"{tools}/terraform\"", &format!("terraform = \"{}\"", wrapper.display()));
    // No failure tolerated: one customer at a time, so the cancel lands mid-wave.
    fleet.write_config(&format!("{toml}\n[rollout]\nwaves = [\"1\", \"100%\"]\nsoak = 0\nmax_failures = 0\n"));
    for i in 0..5 {
        fleet.customer(&format!("c{i:02}"), &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{i}.0.0/16\"\n"));
    }
    let terraform_runs = |c: &str| {
        let own = format!("/.stamp/{c}/");
        std::fs::read_to_string(&runs).unwrap_or_default().lines().filter(|l| l.contains(&own)).count()
    };
    // The first job: wave 1 (c00).
    fleet.stamp(&["rollout", "--all", "--waves", "1", "--auto-approve"]).ok();

    let wf = gha::repo().join(".github/workflows/deploy.yml");
    let script = files.path().join("wave.sh");
    let runner = Runner::new(fleet.path(), &files.path().join("state"));
    let needs = json!({"plan": {"result": "success", "outputs": {}},
                       "rollout": {"result": "success", "outputs": {"waves": "{\"include\":[{\"wave\":2}]}", "waves_count": "1"}}});
    let step =
        runner.render_step(StepAt { workflow: &wf, job: "rollout-waves", id: "rollout" }, &script, &json!({"wave": 2}), &needs, "success");
    assert!(std::fs::read_to_string(&script).unwrap().contains("exec stamp rollout --resume --waves 1"));
    let run_step = || {
        let mut cmd = in_fleet(&fleet, &step.argv[0]);
        cmd.args(&step.argv[1..])
            .envs(runner_env(&fleet, files.path(), &step.env))
            .env("STAMP_STANDIN_DELAY", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("start the wave's step")
    };

    // The wave's job, cancelled once c02's deploy has begun.
    let mut child = run_step();
    let pid = child.id() as i32;
    let stderr = Captured::of(child.stderr.take().unwrap());
    let _stdout = Captured::of(child.stdout.take().unwrap());
    wait_for("c02's deploy to begin", Duration::from_secs(240), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the wave's step ended ({s}) before c02 began:\n{}", stderr.text());
        }
        terraform_runs("c02") > 0
    });
    signal(pid, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(0), "a cancelled wave is not a finished one:\n{}", stderr.text());
    let done_before: Vec<(String, usize)> = ["c00", "c01"].iter().map(|c| (c.to_string(), terraform_runs(c))).collect();
    assert!(done_before.iter().all(|(_, n)| *n > 0), "{done_before:?}");
    assert_eq!(terraform_runs("c04"), 0, "c04 did not start before the cancel");

    // "Re-run failed jobs": the same step, which resumes the record and finishes.
    let mut child = run_step();
    let stderr = Captured::of(child.stderr.take().unwrap());
    let stdout = Captured::of(child.stdout.take().unwrap());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the re-run finishes the wave:\n{}", stderr.text());
    wait_for("the re-run's summary", Duration::from_secs(5), || stdout.text().contains("(done, "));
    for (c, n) in &done_before {
        assert_eq!(terraform_runs(c), *n, "{c} finished before the cancel and is not deployed again");
    }
    for c in ["c02", "c03", "c04"] {
        assert!(terraform_runs(c) > 0, "{c} is deployed by the re-run");
    }
    // Done, the record is archived: no rollout is the fleet's current one.
    let status = fleet.stamp(&["rollout", "--status"]).code(2);
    assert!(status.stderr.contains("no rollout is running"), "{}", status.stderr);
}
