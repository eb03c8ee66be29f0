//! Secrets never leave the state: the real stamp, terraform, packer and AWS CLI on
//! the emulator, with a distinct canary planted as each kind of secret, then every
//! byte stamp printed or wrote (and every process's command line while it ran) is
//! searched for them. Plan files must be private while they exist and gone after.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Emulator, FLEET_TOML, Fleet, Run};
use sha2::{Digest, Sha256};

/// (a) acme's `[secrets]` value (from the environment) for the frontends' sensitive input.
const FROM_ENV: &str = "canary-a-secrets-env-5r8q";
/// (b) globex's `[frontends.vars]` literal for the same `sensitive = true` input.
const LITERAL: &str = "canary-b-sensitive-literal-7m2k";
/// (c) the packer template's sensitive `build_token`, from the fleet's `[secrets]`.
const PACKER: &str = "canary-c-packer-token-3w9d";

/// (d) the stand-in's sensitive output for `customer`.
fn sensitive_output(customer: &str) -> String {
    format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{customer}-production-db")
}

/// (e) what the stand-in module keeps only in its state (modules/frontend/main.tf).
fn state_only(customer: &str) -> String {
    Sha256::digest(format!("stamp state canary {customer}-production").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn canaries() -> Vec<(String, String)> {
    let mut all = vec![
        ("(a) [secrets] env value".to_owned(), FROM_ENV.to_owned()),
        ("(b) sensitive [frontends.vars] literal".to_owned(), LITERAL.to_owned()),
        ("(c) packer secret".to_owned(), PACKER.to_owned()),
    ];
    for c in ["acme", "globex"] {
        all.push((format!("(d) {c}'s sensitive output"), sensitive_output(c)));
        all.push((format!("(e) {c}'s state-only value"), state_only(c)));
    }
    all
}

/// What a watcher saw while one stamp command ran.
#[derive(Default)]
struct Watched {
    /// Every distinct command line (`ps -eo args` and /proc/*/cmdline).
    args: std::collections::BTreeSet<String>,
    /// Plan files (and packer's private var files) seen, with their modes.
    plans: BTreeMap<PathBuf, u32>,
    snapshots: usize,
}

/// Plan files (`*.tfplan`) under `dir`, and stamp's private directories for packer's
/// sensitive var file (`.packer-secrets-*`) with what they hold.
fn plan_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let private = e.file_name().to_string_lossy().starts_with(".packer-secrets-");
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                if private {
                    out.push(p.clone());
                    out.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|f| f.path()));
                } else {
                    plan_files(&p, out);
                }
            }
            Ok(_) if p.extension().is_some_and(|x| x == "tfplan") => out.push(p),
            _ => {}
        }
    }
}

/// Runs `cmd` while a thread snapshots every process's arguments and the plan
/// files under `fleet` every ~50 ms.
fn watched(mut cmd: Command, args: &[&str], fleet: &Path, seen: &Arc<Mutex<Watched>>) -> Run {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, seen, fleet) = (done.clone(), seen.clone(), fleet.to_path_buf());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let mut lines = Vec::new();
                if let Ok(out) = Command::new("ps").args(["-eo", "args"]).output() {
                    lines.extend(String::from_utf8_lossy(&out.stdout).lines().map(String::from));
                }
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                        lines.push(String::from_utf8_lossy(&c).replace('\0', " "));
                    }
                }
                let mut plans = Vec::new();
                plan_files(&fleet, &mut plans);
                let modes: Vec<(PathBuf, u32)> =
                    plans.into_iter().filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.permissions().mode() & 0o7777))).collect();
                let mut s = seen.lock().unwrap();
                s.args.extend(lines);
                for (p, mode) in modes {
                    // Keep the widest mode seen for a path.
                    let m = s.plans.entry(p).or_insert(mode);
                    *m |= mode;
                }
                s.snapshots += 1;
                drop(s);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let out = cmd.output().expect("run stamp");
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    Run::from(out, args)
}

/// Every file under `dir` (recursively), but the given inputs.
fn all_files(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => all_files(&p, skip, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Standard base64 (EC2 user data), padding and all.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else { return Vec::new() };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn no_secret_is_printed_written_or_passed_as_an_argument() {
    let emu = Emulator::start();
    let toml = format!("{FLEET_TOML}\n[secrets]\nbuild_token = {{ env = \"STAMP_TEST_BUILD_TOKEN\" }}\n");
    let fleet = Fleet::with_toml(&emu, &toml);
    fleet.customer(
        "acme",
        "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n[secrets]\ndb_instance_class = { env = \"STAMP_TEST_ACME_DB_CLASS\" }\n",
    );
    fleet.customer(
        "globex",
        &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n[frontends.vars]\ndb_instance_class = \"{LITERAL}\"\n"),
    );
    let gh = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Watched::default()));
    // (name, stdout, stderr, github)
    let mut printed: Vec<(String, String, String, bool)> = Vec::new();
    let mut run = |args: &[&str], github: bool, code: i32| {
        let mut cmd = fleet.stamp_cmd(args);
        cmd.env("STAMP_TEST_ACME_DB_CLASS", FROM_ENV).env("STAMP_TEST_BUILD_TOKEN", PACKER);
        if github {
            cmd.env("GITHUB_ACTIONS", "true")
                .env("GITHUB_WORKSPACE", fleet.path())
                .env("GITHUB_STEP_SUMMARY", gh.path().join("summary.md"))
                .env("GITHUB_OUTPUT", gh.path().join("output"));
        }
        let r = watched(cmd, args, fleet.path(), &seen).code(code);
        printed.push((format!("stamp {} (github: {github})", args.join(" ")), r.stdout.clone(), r.stderr.clone(), github));
        r
    };

    // Never deployed: placeholder plans (scratch copies) with every input.
    run(&["plan", "acme", "globex"], false, 0);
    // What a killed run would leave: saved plans and packer's private var files (owner
    // only, as stamp makes them); the next deploy removes them.
    for c in ["acme", "globex"] {
        let work = fleet.path().join(".stamp").join(c);
        for (rel, dir) in [("terraform/vpc/stamp-drift.tfplan", false), (".packer-secrets-killed/sensitive.json", true)] {
            let path = work.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if dir {
                std::fs::set_permissions(path.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();
            }
            std::fs::write(&path, "{}").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    // Deploy (plain CI lines), then again as a GitHub Actions step with a new bake,
    // so packer runs and the frontends apply again in both modes.
    run(&["deploy", "acme", "globex", "--parallel", "2", "--auto-approve"], false, 0);
    run(&["deploy", "acme", "globex", "--parallel", "2", "--auto-approve", "--rebuild-ami"], true, 0);
    run(&["deploy", "acme", "--auto-approve"], true, 0);
    run(&["plan", "acme", "globex"], true, 0);
    run(&["plan", "acme", "--json"], false, 0);
    run(&["drift", "acme", "globex"], false, 0);
    run(&["drift", "globex"], true, 0);
    run(&["render", "acme"], false, 0);
    run(&["outputs", "acme"], false, 0);
    run(&["outputs", "acme", "globex", "--json"], true, 0);
    run(&["status", "--all"], false, 0);

    // The canaries really were in play: the states hold (a), (b) and (e), and the
    // build instances got (c) as user data.
    let acme_state = fleet.state("tfstate-123456789012-acme", "acme/frontends/production").to_string();
    let globex_state = fleet.state("tfstate-123456789012-globex", "globex/frontends/production").to_string();
    assert!(acme_state.contains(FROM_ENV), "acme's state lacks the [secrets] value: was it passed?");
    assert!(globex_state.contains(LITERAL), "globex's state lacks the sensitive literal: was it passed?");
    assert!(acme_state.contains(&state_only("acme")) && globex_state.contains(&state_only("globex")));
    assert!(acme_state.contains(&sensitive_output("acme")));
    let instances = fleet.aws_json(&["ec2", "describe-instances"]);
    let ids: Vec<String> = instances["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap().iter().map(|i| i["InstanceId"].as_str().unwrap().to_owned()))
        .collect();
    let user_data: Vec<String> = ids
        .iter()
        .filter_map(|id| {
            let v = fleet.aws_json(&["ec2", "describe-instance-attribute", "--instance-id", id, "--attribute", "userData"]);
            v["UserData"]["Value"].as_str().map(String::from)
        })
        .collect();
    let decoded: Vec<String> = user_data.iter().map(|b| String::from_utf8_lossy(&base64_decode(b)).into_owned()).collect();
    assert!(decoded.iter().any(|d| d == PACKER), "no build instance got the packer secret as user data: {decoded:?}");

    // The logged (re-runnable) plan command says where a secret comes from, never what it is.
    let acme_log = fleet.log("acme", "frontends");
    assert!(acme_log.contains("TF_VAR_db_instance_class=\"$STAMP_TEST_ACME_DB_CLASS\" "), "{acme_log}");
    let globex_log = fleet.log("globex", "frontends");
    assert!(globex_log.contains("TF_VAR_db_instance_class='<sensitive: "), "{globex_log}");

    // Destroy evaluates the sensitive inputs too.
    run(&["destroy", "acme", "globex", "--auto-approve"], true, 0);

    // Every byte: stdout and stderr (on GitHub, a canary may only be in its mask line)...
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut masked = std::collections::BTreeSet::new();
    for (name, out, err, github) in &printed {
        haystacks.push((format!("stdout of {name}"), out.clone().into_bytes()));
        let kept: String = if *github {
            err.lines()
                .filter(|l| match l.strip_prefix("::add-mask::") {
                    Some(v) => {
                        masked.insert(v.to_owned());
                        false
                    }
                    None => true,
                })
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            err.clone()
        };
        haystacks.push((format!("stderr of {name}"), kept.into_bytes()));
    }
    // ...every file stamp wrote in the fleet directory (not the fleet's own inputs) and
    // the GitHub step summary and output files...
    let mut files = Vec::new();
    all_files(fleet.path(), &[fleet.path().join("customers"), fleet.path().join("stamp.toml")], &mut files);
    all_files(gh.path(), &[], &mut files);
    assert!(files.iter().any(|f| f.ends_with("acme/logs/frontends.log")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("summary.md")) && files.iter().any(|f| f.ends_with("output")), "{files:?}");
    for f in &files {
        haystacks.push((f.display().to_string(), std::fs::read(f).unwrap_or_default()));
    }
    // ...and every process's command line while stamp ran.
    let seen = seen.lock().unwrap();
    haystacks.push(("process arguments".into(), seen.args.iter().cloned().collect::<Vec<_>>().join("\n").into_bytes()));
    let mut leaks = Vec::new();
    for (what, canary) in canaries() {
        for (name, bytes) in &haystacks {
            if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
                let text = String::from_utf8_lossy(bytes);
                let line = text.lines().find(|l| l.contains(&canary)).unwrap_or_default();
                leaks.push(format!("{what} in {name}: {}", line.chars().take(300).collect::<String>()));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));

    // On GitHub every secret stamp passed or read was masked before anything ran.
    for s in [FROM_ENV, LITERAL, PACKER, &sensitive_output("acme")] {
        assert!(masked.contains(s), "{s} was never announced with ::add-mask::");
    }

    // Plan files: private while they existed, none left behind.
    assert!(seen.snapshots > 20, "{} snapshots", seen.snapshots);
    assert!(!seen.plans.is_empty(), "no plan file was ever seen: the mode check checked nothing");
    assert!(
        seen.plans.keys().any(|p| p.to_string_lossy().contains(".packer-secrets-") && !p.to_string_lossy().contains("killed")),
        "packer's private var file was never seen: {:?}",
        seen.plans.keys()
    );
    let open: Vec<String> = seen.plans.iter().filter(|(_, m)| **m & 0o077 != 0).map(|(p, m)| format!("{} ({m:o})", p.display())).collect();
    assert!(open.is_empty(), "plan files (or packer's private var files) readable by others: {open:?}");
    let mut left = Vec::new();
    plan_files(fleet.path(), &mut left);
    assert!(left.is_empty(), "plan files (or packer's private var files) left behind: {left:?}");
}

/// (f) acme's `[secrets]` value for the frontends' sensitive input, from a file.
const FILE_DB: &str = "canary-f-secret-file-db-8h1x";
/// (g) the packer template's sensitive `build_token`, from a file named by the fleet.
const FILE_TOKEN: &str = "canary-g-secret-file-token-2n6v";

/// Runs that go wrong print and write the most: a deploy whose frontends fail, a
/// plan whose terraform is refused its state, a deploy interrupted mid-apply (the
/// interrupt notices, the lock commands). With file-sourced secrets, every byte they
/// printed or wrote, and every command line seen while they ran, is searched.
#[test]
fn no_secret_leaks_from_a_failing_deploy_a_failing_plan_or_an_interrupted_run() {
    let emu = Emulator::start();
    let proxy = common::FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    fleet.write_config(&format!("{FLEET_TOML}\n[secrets]\nbuild_token = {{ file = \"secrets/build_token\" }}\n"));
    std::fs::create_dir_all(fleet.path().join("secrets")).unwrap();
    std::fs::write(fleet.path().join("secrets/build_token"), format!("{FILE_TOKEN}\n")).unwrap();
    std::fs::write(fleet.path().join("secrets/db_class"), FILE_DB).unwrap();
    let customer = |behaviour: &str| {
        fleet.customer(
            "acme",
            &format!(
                "git_id = \"v1\"\n[frontends.vars]\ninstance_type = \"{behaviour}\"\n[secrets]\ndb_instance_class = {{ file = \"../secrets/db_class\" }}\n"
            ),
        );
    };
    let gh = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Watched::default()));
    let mut printed: Vec<(String, String, String, bool)> = Vec::new();
    let command = |args: &[&str], github: bool| {
        let mut cmd = fleet.stamp_cmd(args);
        if github {
            cmd.env("GITHUB_ACTIONS", "true")
                .env("GITHUB_WORKSPACE", fleet.path())
                .env("GITHUB_STEP_SUMMARY", gh.path().join("summary.md"))
                .env("GITHUB_OUTPUT", gh.path().join("output"));
        }
        cmd
    };

    // A deploy whose frontends apply fails (the stand-in's test hook), on GitHub (its
    // error annotations carry the failure's text) and in plain lines.
    customer("fail.standin");
    for github in [true, false] {
        let args = ["deploy", "acme", "--auto-approve"];
        let r = watched(command(&args, github), &args, fleet.path(), &seen).code(1);
        assert!(r.stderr.contains("fails on purpose"), "{}", r.stderr);
        printed.push((format!("failing deploy (github: {github})"), r.stdout, r.stderr, github));
    }
    // A plan whose terraform is refused the frontends state (AccessDenied).
    proxy.set_rules(serde_json::json!([{"method": "GET", "path": "/acme/frontends/production?x-id=GetObject", "agent": "aws-sdk-go", "action": "status", "status": 403, "code": "AccessDenied", "message": "denied by the test"}]));
    let args = ["plan", "acme"];
    let r = watched(command(&args, false), &args, fleet.path(), &seen).code(1);
    assert!(r.stderr.contains("AccessDenied") || r.stderr.contains("denied by the test"), "{}", r.stderr);
    printed.push(("failing plan".into(), r.stdout, r.stderr, false));
    proxy.set_rules(serde_json::json!([]));
    // A deploy interrupted while its frontends apply runs (a slow create).
    customer("slow.standin");
    let args = ["deploy", "acme", "--auto-approve"];
    let mut cmd = command(&args, true);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !fleet.log("acme", "frontends").contains("\"type\":\"apply_start\"") {
        assert!(std::time::Instant::now() < deadline, "the frontends apply never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let r = Run::from(child.wait_with_output().unwrap(), &args).code(130);
    assert!(r.stderr.contains("SIGINT received: stopping gracefully") && r.stderr.contains("force-unlock"), "{}", r.stderr);
    printed.push(("interrupted deploy".into(), r.stdout, r.stderr, true));

    // The secrets were in play: packer got the token, the failed apply's state the class.
    let fe = fleet.state("tfstate-123456789012-acme", "acme/frontends/production").to_string();
    assert!(fe.contains(FILE_DB), "the frontends state lacks the file-sourced secret: was it passed?");

    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut masked = std::collections::BTreeSet::new();
    for (name, out, err, github) in &printed {
        haystacks.push((format!("stdout of {name}"), out.clone().into_bytes()));
        let kept: String = err
            .lines()
            .filter(|l| match l.strip_prefix("::add-mask::").filter(|_| *github) {
                Some(v) => {
                    masked.insert(v.to_owned());
                    false
                }
                None => true,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        haystacks.push((format!("stderr of {name}"), kept.into_bytes()));
    }
    let mut files = Vec::new();
    let inputs = [fleet.path().join("customers"), fleet.path().join("stamp.toml"), fleet.path().join("secrets")];
    all_files(fleet.path(), &inputs, &mut files);
    all_files(gh.path(), &[], &mut files);
    assert!(files.iter().any(|f| f.ends_with("acme/logs/frontends.log")), "{files:?}");
    for f in &files {
        haystacks.push((f.display().to_string(), std::fs::read(f).unwrap_or_default()));
    }
    let seen = seen.lock().unwrap();
    haystacks.push(("process arguments".into(), seen.args.iter().cloned().collect::<Vec<_>>().join("\n").into_bytes()));
    let canaries = [
        ("(f) [secrets] value from a file".to_owned(), FILE_DB.to_owned()),
        ("(g) packer secret from a file".to_owned(), FILE_TOKEN.to_owned()),
        ("(d) acme's sensitive output".to_owned(), sensitive_output("acme")),
        ("(e) acme's state-only value".to_owned(), state_only("acme")),
    ];
    let mut leaks = Vec::new();
    for (what, canary) in &canaries {
        for (name, bytes) in &haystacks {
            if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
                let text = String::from_utf8_lossy(bytes);
                let line = text.lines().find(|l| l.contains(canary.as_str())).unwrap_or_default();
                leaks.push(format!("{what} in {name}: {}", line.chars().take(300).collect::<String>()));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    for s in [FILE_DB, FILE_TOKEN] {
        assert!(masked.contains(s), "{s} was never announced with ::add-mask:: on GitHub");
    }
}
