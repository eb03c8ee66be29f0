//! Interrupts as CI runners send them, against real terraform busy saving its state.
//!
//! GitHub Actions cancels a job with SIGINT, then SIGTERM about 7.5 s later, then
//! SIGKILL. Terraform must still be busy 7.5 s after the SIGINT for that sequence to
//! show anything (on a plain interrupt it kills its provisioners and exits within
//! about 2 s): here it is busy saving its state, because the test's fault proxy holds
//! the upload of the vpc state (`PUT .../acme/vpc`) for 15 s. A SIGTERM forwarded as a
//! second interrupt would make terraform exit at once ("Two interrupts received...
//! data loss may have occurred"), without its state saved and with its lock held.
//!
//! Run under GitHub Actions' renderer (which holds a stage's lines until it ends:
//! what stamp says on an interrupt must go past it) and on a pseudo-terminal, where
//! a person presses Ctrl-C twice.

mod common;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Emulator, FaultProxy, Fleet, Run};
use serde_json::json;

const BUCKET: &str = "tfstate-123456789012-acme";
/// How long the proxy holds the vpc state upload.
const HELD_FOR: u64 = 15;

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(pid as i32, sig);
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

/// Where stamp runs: under GitHub Actions (its renderer holds each stage's lines
/// until the stage ends), or on a pseudo-terminal (util-linux `script`) where a
/// person presses Ctrl-C.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Github,
    Terminal,
}

/// A deploy of acme whose vpc state upload the proxy holds, interrupted (SIGINT, or
/// Ctrl-C typed on the terminal) once that upload has begun.
struct Interrupted {
    _emu: Emulator,
    proxy: FaultProxy,
    fleet: Fleet,
    mode: Mode,
    /// stamp itself, or `script` running it.
    child: Child,
    /// The terminal's keyboard.
    keys: Option<std::process::ChildStdin>,
    stdout: Captured,
    /// stamp's stderr (on a terminal: the screen).
    stderr: Captured,
}

impl Interrupted {
    fn start(mode: Mode) -> Self {
        let emu = Emulator::start();
        let proxy = FaultProxy::start(&emu);
        let fleet = Fleet::behind(&proxy);
        fleet.customer("acme", "git_id = \"v1\"\n");
        // The state object itself, not its lock (`acme/vpc.tflock`): the path the
        // S3 backend's PutObject uses (seen in the proxy's log).
        proxy.set_rules(json!([{"method": "PUT", "path": "/acme/vpc?x-id=PutObject", "action": "delay", "seconds": HELD_FOR, "times": 1}]));
        let args = ["deploy", "acme", "--auto-approve"];
        let mut cmd = match mode {
            Mode::Github => {
                let mut c = fleet.stamp_cmd(&args);
                c.env("GITHUB_ACTIONS", "true");
                c
            }
            Mode::Terminal => {
                let stamp = fleet.stamp_cmd(&args);
                let mut c = std::process::Command::new("script");
                c.args(["-qec", &format!("{} {}", env!("CARGO_BIN_EXE_stamp"), args.join(" ")), "/dev/null"]).current_dir(fleet.path());
                for (k, v) in stamp.get_envs() {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                c.env_remove("CI").env("TERM", "xterm").stdin(Stdio::piped());
                c
            }
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start stamp");
        let keys = child.stdin.take();
        let (stdout, stderr) = match mode {
            Mode::Github => (Captured::of(child.stdout.take().unwrap()), Captured::of(child.stderr.take().unwrap())),
            Mode::Terminal => (Captured::of(child.stderr.take().unwrap()), Captured::of(child.stdout.take().unwrap())),
        };
        wait_for("terraform to begin uploading the vpc state", Duration::from_secs(120), || proxy.faults().iter().any(|f| f["rule"] == 0));
        let mut t = Self { _emu: emu, proxy, fleet, mode, child, keys, stdout, stderr };
        t.interrupt();
        t
    }

    /// SIGINT to stamp, as GitHub Actions sends it, or Ctrl-C typed on the terminal.
    fn interrupt(&mut self) {
        match self.mode {
            Mode::Github => signal(self.child.id(), libc::SIGINT),
            Mode::Terminal => {
                use std::io::Write;
                let keys = self.keys.as_mut().unwrap();
                keys.write_all(b"\x03").unwrap();
                keys.flush().unwrap();
            }
        }
    }

    /// What stamp printed so far on stderr (a terminal's line endings made plain).
    fn said(&self) -> String {
        self.stderr.text().replace("\r\n", "\n")
    }

    fn dir(&self) -> String {
        self.fleet.path().join(".stamp/acme/terraform/vpc").display().to_string()
    }

    /// The lock terraform holds, read with the AWS CLI.
    fn lock_id(&self) -> Option<String> {
        let out = self.fleet.aws_raw(&["s3", "cp", &format!("s3://{BUCKET}/acme/vpc.tflock"), "-"]);
        out.status.success().then(|| {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["ID"].as_str().unwrap().to_owned()
        })
    }

    /// Waits (bounded: stamp must not hang) for stamp to exit.
    fn wait(mut self, within: Duration) -> (Run, Self) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("stamp did not exit within {within:?} of the last signal:\n{}", self.stderr.text());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The pipes close with stamp (its tools are gone with it).
        wait_for("stamp's output to end", Duration::from_secs(10), || Arc::strong_count(&self.stderr.0) == 1);
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.text(),
            stderr: self.said(),
            args: "deploy acme --auto-approve".into(),
        };
        (run, self)
    }
}

#[test]
fn github_cancel_sigint_then_sigterm_lets_terraform_save_its_state() {
    let t = Interrupted::start(Mode::Github);
    let sigint_at = Instant::now();
    // Right away, before any SIGTERM: the running stage and the lock commands.
    wait_for("stamp to say what is running", Duration::from_secs(5), || t.said().contains("holds the state lock"));
    let id = t.lock_id().expect("terraform holds its lock while it saves its state");
    std::thread::sleep(Duration::from_millis(7500).saturating_sub(sigint_at.elapsed()));
    let before = t.said();
    // The GitHub renderer still holds the vpc stage's group: the notice went past it.
    assert!(!before.contains("::group::acme · vpc"), "{before}");
    for needle in [
        "SIGINT received: stopping gracefully".to_owned(),
        format!("running: acme vpc: terraform apply -input=false -json -lock-timeout=60s stamp.tfplan (in {})", t.dir()),
        "stamp status acme\n".to_owned(),
        format!("aws s3 cp s3://{BUCKET}/acme/vpc.tflock - --region eu-west-1 --endpoint-url {}\n", t.proxy.url),
        format!("terraform -chdir={} force-unlock <LOCK ID>\n", t.dir()),
        format!("terraform -chdir={} force-unlock {id}\n", t.dir()),
    ] {
        assert!(before.contains(&needle), "before the SIGTERM, stamp's stderr lacks {needle:?}:\n{before}");
    }
    let mut t = t;
    assert!(t.child.try_wait().unwrap().is_none(), "terraform must still be busy 7.5 s after the SIGINT for this test to mean anything");
    assert!(!t.fleet.log("acme", "vpc").contains("Two interrupts received"), "{}", t.fleet.log("acme", "vpc"));
    signal(t.child.id(), libc::SIGTERM);

    let (run, t) = t.wait(Duration::from_secs(HELD_FOR + 45));
    let run = run.code(130);
    let log = t.fleet.log("acme", "vpc");
    assert!(log.contains("Interrupt received"), "terraform's graceful shutdown ran:\n{log}");
    assert!(!log.contains("Two interrupts received") && !log.contains("data loss may have occurred"), "{log}");
    assert!(log.contains("interrupt 1 received, sending signal 2"), "{log}");
    assert!(!log.contains("interrupt 2 received"), "{log}");
    assert!(log.contains("SIGTERM received after the interrupt: not forwarded"), "{log}");
    let after = &run.stderr[before.len()..];
    assert!(after.contains("SIGTERM received after the interrupt: NOT forwarded"), "{after}");
    assert!(after.contains(&format!("release `terraform -chdir={} force-unlock <LOCK ID>`", t.dir())), "{after}");
    // Terraform finished saving: the state in S3 is the complete new state, and it
    // released its lock.
    let state = t.fleet.state(BUCKET, "acme/vpc");
    let resources: Vec<&str> = state["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(resources, ["network"], "{state:#}");
    assert!(state["outputs"]["vpc_id"]["value"].as_str().is_some_and(|v| v.starts_with("vpc-")), "{state:#}");
    assert_eq!(t.lock_id(), None, "terraform released its lock");
    assert!(run.stderr.contains("acme vpc: terraform has stopped and no state lock is left behind"), "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.fleet.path().join(".stamp/acme/last-run.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "interrupted");
    // The history in the state bucket records it too, where it stopped.
    let listed = t.fleet.aws_json(&["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "stamp/history/acme/"]);
    let keys: Vec<&str> = listed["Contents"].as_array().unwrap().iter().map(|o| o["Key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 1, "{listed:#}");
    let record = t.fleet.state(BUCKET, keys[0]);
    assert_eq!(record["outcome"], serde_json::json!({"result": "interrupted", "stage": "vpc"}), "{record:#}");
}

#[test]
fn a_second_ctrl_c_in_a_terminal_is_forwarded_at_once_and_stamp_prints_the_lock_left_behind() {
    let mut t = Interrupted::start(Mode::Terminal);
    wait_for("stamp to read the lock", Duration::from_secs(10), || t.said().contains("holds the state lock"));
    let id = t.lock_id().expect("terraform holds its lock while it saves its state");
    let first = t.said();
    for needle in [
        "SIGINT received: stopping gracefully".to_owned(),
        format!("running: acme vpc: terraform apply -input=false -json -lock-timeout=60s stamp.tfplan (in {})", t.dir()),
        // The terminal renderer pads its lines with spaces.
        format!("terraform -chdir={} force-unlock <LOCK ID> ", t.dir()),
    ] {
        assert!(first.contains(&needle), "after the first Ctrl-C, the screen lacks {needle:?}:\n{first}");
    }
    t.interrupt();
    let (run, t) = t.wait(Duration::from_secs(30));
    let run = run.code(130);
    assert!(run.stderr.contains("SIGINT received again: stopping the tools at once"), "{}", run.stderr);
    let log = t.fleet.log("acme", "vpc");
    assert!(log.contains("interrupt 2 received, sending signal 2"), "{log}");
    // Terraform got it while the upload was held: it gave up on its state and lock.
    assert!(log.contains("Two interrupts received"), "{log}");
    // The lock is left behind, and stamp says how to release it, with its real ID,
    // without releasing it itself.
    assert_eq!(t.lock_id().as_deref(), Some(id.as_str()), "stamp must never run force-unlock");
    assert!(run.stderr.contains("acme vpc: a state lock is LEFT BEHIND"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("terraform -chdir={} force-unlock {id} ", t.dir())), "{}", run.stderr);
}
