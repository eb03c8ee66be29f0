//! Drives tests/support/gha_runner.py, which runs a GitHub Actions job's steps
//! offline the way the runner does, from the CI tests (tests/ci_*.rs). Included
//! with `#[path = "support/gha.rs"] mod gha;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the tools venv (PyYAML is in it), as the other support scripts use.
pub fn python() -> PathBuf {
    let tools = std::env::var_os("STAMP_TEST_TOOLS").map(PathBuf::from).unwrap_or_else(|| repo().join(".tools/bin"));
    let py = tools.join("../venv/bin/python");
    assert!(py.exists(), "{} is missing: run scripts/setup-tools.sh (make test does)", py.display());
    py
}

/// One job's run, as tests/support/gha_runner.py reports it.
#[derive(Debug)]
pub struct JobRun {
    pub job: String,
    pub result: String,
    pub outputs: Value,
    pub environment: Option<String>,
    pub steps: Vec<Value>,
    pub summary: String,
    pub replaced: Vec<String>,
    /// What the steps printed (the job's log).
    pub log: String,
}

impl JobRun {
    pub fn step(&self, name_part: &str) -> &Value {
        self.steps
            .iter()
            .find(|s| s["name"].as_str().is_some_and(|n| n.contains(name_part)))
            .unwrap_or_else(|| panic!("job {}: no step named like {name_part:?}: {:#?}\n{}", self.job, self.steps, self.log))
    }

    pub fn succeeded(self) -> Self {
        assert_eq!(self.result, "success", "job {} {}:\n{:#?}\n--- log\n{}", self.job, self.result, self.steps, self.log);
        self
    }

    pub fn output(&self, key: &str) -> &str {
        self.outputs[key].as_str().unwrap_or_else(|| panic!("job {}: no output {key}: {:#}", self.job, self.outputs))
    }
}

/// Where a step is: its workflow file, its job and its `id`.
#[derive(Clone, Copy)]
pub struct StepAt<'a> {
    pub workflow: &'a Path,
    pub job: &'a str,
    pub id: &'a str,
}

/// A step's script written as the runner writes it, and how it would be run.
#[derive(Debug)]
pub struct Rendered {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Whether the step's `if:` lets it run (for the job status given).
    pub runs: bool,
    pub environment: Option<String>,
}

/// The runner's setting for one workflow run: the workspace (the repository's
/// copy), the run's contexts, and what replaces the actions that cannot run offline.
pub struct Runner {
    pub workspace: PathBuf,
    pub state: PathBuf,
    pub github: Value,
    pub vars: Value,
    pub inputs: Value,
    /// {"": repository secrets, "<environment>": that environment's}.
    pub secrets: Value,
    /// What configure-aws-credentials is replaced by: the emulator's environment.
    pub aws_env: Value,
    pub tool_dirs: Vec<PathBuf>,
    /// Actions served from a directory: ("OWNER/stamp", repo root).
    pub actions: Vec<(String, PathBuf)>,
    /// Inputs given to an action whatever the step says: ("OWNER/stamp", "download-url", url).
    pub action_inputs: Vec<(String, String, String)>,
    /// Directories put first on the runner machine's PATH (e.g. a gh stub).
    pub path: Vec<PathBuf>,
    /// The runner machine's own environment (besides the test's), and what it lacks.
    pub env: Vec<(String, String)>,
    pub unset: Vec<String>,
    /// render_step: the `steps` context of the steps before it.
    pub steps: Value,
}

impl Runner {
    pub fn new(workspace: &Path, state: &Path) -> Self {
        Self {
            workspace: workspace.to_path_buf(),
            state: state.to_path_buf(),
            github: json!({}),
            vars: json!({}),
            inputs: json!({}),
            secrets: json!({}),
            aws_env: json!({}),
            tool_dirs: Vec::new(),
            actions: Vec::new(),
            action_inputs: Vec::new(),
            path: Vec::new(),
            env: Vec::new(),
            unset: Vec::new(),
            steps: json!({}),
        }
    }

    fn base(&self, command: &str, workflow: &Path, job: &str, matrix: &Value, needs: &Value) -> Command {
        let mut c = Command::new(python());
        c.arg(repo().join("tests/support/gha_runner.py"))
            .arg(command)
            .arg("--workflow")
            .arg(workflow)
            .args(["--job", job])
            .arg("--workspace")
            .arg(&self.workspace)
            .arg("--state")
            .arg(&self.state)
            .args(["--github", &self.github.to_string()])
            .args(["--vars", &self.vars.to_string()])
            .args(["--inputs", &self.inputs.to_string()])
            .args(["--secrets", &self.secrets.to_string()])
            .args(["--aws-env", &self.aws_env.to_string()])
            .args(["--matrix", &matrix.to_string()])
            .args(["--needs", &needs.to_string()]);
        for d in &self.tool_dirs {
            c.arg("--tool-dir").arg(d);
        }
        for (name, dir) in &self.actions {
            c.arg("--action").arg(format!("{name}={}", dir.display()));
        }
        for (action, k, v) in &self.action_inputs {
            c.arg("--with").arg(format!("{action}:{k}={v}"));
        }
        for d in &self.path {
            c.arg("--path").arg(d);
        }
        for (k, v) in &self.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        for k in &self.unset {
            c.arg("--unset").arg(k);
        }
        // The runner machine: not the test's own GitHub Actions, if it runs in one.
        for k in [
            "GITHUB_ACTIONS",
            "GITHUB_OUTPUT",
            "GITHUB_ENV",
            "GITHUB_PATH",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_WORKSPACE",
            "STAMP_CONFIG",
            "STAMP_PROGRESS",
        ] {
            c.env_remove(k);
        }
        c
    }

    /// Runs one job (one matrix entry) to its end.
    pub fn job(&self, workflow: &Path, job: &str, matrix: &Value, needs: &Value) -> JobRun {
        let out = self.base("run-job", workflow, job, matrix, needs).output().expect("run tests/support/gha_runner.py");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "gha_runner.py could not run job {job} of {}:\n{log}", workflow.display());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("gha_runner.py's report ({e}):\n{log}"));
        JobRun {
            job: job.to_owned(),
            result: v["result"].as_str().unwrap().to_owned(),
            outputs: v["outputs"].clone(),
            environment: v["environment"].as_str().map(str::to_owned),
            steps: v["steps"].as_array().cloned().unwrap_or_default(),
            summary: v["summary"].as_str().unwrap_or_default().to_owned(),
            replaced: v["replaced"].as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default(),
            log,
        }
    }

    /// The job's matrix entries given its needs ([] when its `if:` keeps it from running).
    pub fn matrix(&self, workflow: &Path, job: &str, needs: &Value) -> Vec<Value> {
        let out = self.base("matrix", workflow, job, &json!({}), needs).output().expect("run tests/support/gha_runner.py");
        assert!(out.status.success(), "gha_runner.py matrix {job}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    /// Writes a step's script to `script` as the runner would, for a job whose
    /// status is `job_status` (success, failure, cancelled).
    pub fn render_step(&self, step: StepAt, script: &Path, matrix: &Value, needs: &Value, job_status: &str) -> Rendered {
        let StepAt { workflow, job, id: step } = step;
        let out = self
            .base("render-step", workflow, job, matrix, needs)
            .args(["--step", step, "--job-status", job_status])
            .args(["--steps", &self.steps.to_string()])
            .arg("--out")
            .arg(script)
            .output()
            .expect("run tests/support/gha_runner.py");
        assert!(out.status.success(), "gha_runner.py render-step {job}.{step}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Rendered {
            argv: v["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            env: v["env"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect(),
            runs: v["if"].as_bool().unwrap(),
            environment: v["environment"].as_str().map(str::to_owned),
        }
    }
}

/// A workflow file parsed (YAML through the venv's PyYAML, as JSON).
pub fn yaml(file: &Path) -> Value {
    let out = Command::new(python())
        .args(["-c", "import json, sys, yaml; d = yaml.safe_load(open(sys.argv[1])); d = {('on' if k is True else k): v for k, v in d.items()}; print(json.dumps(d))"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{} does not parse: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A directory with the gh stand-in (GitHub cannot be reached offline) as `gh`,
/// its state and call log beside it.
pub struct GhStub {
    pub dir: tempfile::TempDir,
}

impl GhStub {
    pub fn new(state: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(repo().join("tests/fakes/gh-stub-github-is-not-reachable-offline"), dir.path().join("bin/gh")).unwrap();
        std::fs::write(dir.path().join("state.json"), serde_json::to_string(&state).unwrap()).unwrap();
        std::fs::write(dir.path().join("calls.jsonl"), "").unwrap();
        Self { dir }
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GH_STUB_STATE".into(), self.dir.path().join("state.json").display().to_string()),
            ("GH_STUB_LOG".into(), self.dir.path().join("calls.jsonl").display().to_string()),
        ]
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap()).unwrap()
    }

    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("calls.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The issues with this label, open or closed.
    pub fn issues(&self) -> Vec<Value> {
        self.state()["issues"].as_array().cloned().unwrap_or_default()
    }
}

/// A release archive of a stamp binary, as release.yml builds one
/// (scripts/release-archive.sh), in `dir` laid out as GitHub serves releases
/// (download/<tag>/).
pub fn release(binary: &Path, dir: &Path, tag: &str) -> std::process::Output {
    Command::new(repo().join("scripts/release-archive.sh"))
        .args(["x86_64-unknown-linux-gnu", tag])
        .arg(binary)
        .arg(dir.join("download").join(tag))
        .output()
        .unwrap()
}

/// The stamp under test without its debug information (the test build carries
/// 300 MB of it; a release build carries line tables only), in `dir`.
pub fn stripped_stamp(dir: &Path) -> PathBuf {
    let out = dir.join("stamp");
    let ok = Command::new("objcopy").arg("--strip-debug").arg(env!("CARGO_BIN_EXE_stamp")).arg(&out).status().expect("run objcopy");
    assert!(ok.success());
    out
}
