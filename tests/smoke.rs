//! The smoke stage after the frontends: the real stamp deploys the stand-ins on the
//! emulator, and the stand-in's `public_url` (STANDIN_PUBLIC_URL) is an HTTP server
//! of the test's own on 127.0.0.1, answering what the test tells it to.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Emulator, FLEET_TOML, Fleet, Run, stage_status};
use serde_json::Value;

/// How the server answers a request for a path.
#[derive(Clone, Copy)]
enum Mode {
    /// 200 on `/healthz` and on `/`, 404 elsewhere; 500 on `/broken`.
    Healthy,
    /// 500 on every path.
    Failing,
    /// Reads the request and never answers (holds the connection for a minute).
    Hang,
    /// 503 for this long from the first request, then as `Healthy`.
    DownFor(Duration, Option<Instant>),
}

/// An HTTP server on loopback, in a thread of the test process.
struct Server {
    url: String,
    mode: Arc<Mutex<Mode>>,
    /// The paths asked for, in order.
    paths: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (mode, paths) = (Arc::new(Mutex::new(mode)), Arc::new(Mutex::new(Vec::new())));
        let (m, p) = (mode.clone(), paths.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The rest of the head.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
                p.lock().unwrap().push(path.clone());
                let healthy = |path: &str| match path {
                    "/" | "/healthz" => 200,
                    "/broken" => 500,
                    _ => 404,
                };
                let mut mode = m.lock().unwrap();
                let status = match &mut *mode {
                    Mode::Healthy => healthy(&path),
                    Mode::Failing => 500,
                    Mode::Hang => {
                        drop(mode);
                        std::thread::sleep(Duration::from_secs(60));
                        continue;
                    }
                    Mode::DownFor(d, first) => {
                        if first.get_or_insert_with(Instant::now).elapsed() < *d {
                            503
                        } else {
                            healthy(&path)
                        }
                    }
                };
                drop(mode);
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        });
        Self { url, mode, paths }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// The test fleet with the smoke test on (the common one turns it off).
fn smoke_fleet(emu: &Emulator) -> Fleet {
    let toml = FLEET_TOML.replace("[smoke]\nenabled = false\n", "[smoke]\ntimeout = \"30s\"\n");
    assert_ne!(toml, FLEET_TOML, "tests/common FLEET_TOML no longer has `[smoke] enabled = false`");
    Fleet::with_toml(emu, &toml)
}

fn deploy(fleet: &Fleet, server: &Server, args: &[&str]) -> Run {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--auto-approve", "--json"]);
    let out = fleet.stamp_cmd(&all).env("STANDIN_PUBLIC_URL", &server.url).output().unwrap();
    Run::from(out, &all)
}

fn smoke_stage(report: &Value) -> &Value {
    report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "smoke").unwrap_or_else(|| panic!("no smoke stage: {report:#}"))
}

#[test]
fn a_deploy_ends_with_its_url_answering_and_fails_when_it_does_not() {
    let emu = Emulator::start();
    let server = Server::start(Mode::Healthy);
    let fleet = smoke_fleet(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\npath = \"/healthz\"\n");

    // 200 on the customer's path at once: ok, after one attempt, the path was the one asked.
    let report = deploy(&fleet, &server, &["acme"]).ok().report();
    assert_eq!(report["outputs"]["frontends"]["public_url"], server.url.as_str(), "the stand-in took STANDIN_PUBLIC_URL");
    let smoke = smoke_stage(&report);
    assert_eq!(smoke["status"], "ok", "{report:#}");
    let detail = smoke["detail"].as_str().unwrap();
    assert_eq!(detail, format!("HTTP 200 from {}/healthz after 1 attempt", server.url));
    assert_eq!(server.paths(), ["/healthz"]);
    let order: Vec<&str> = report["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["bucket", "vpc", "ami", "frontends", "smoke"]);
    assert!(fleet.log("acme", "smoke").contains(&format!("attempt 1: GET {}/healthz -> HTTP 200", server.url)));

    // 500 on every path: the customer fails at the smoke stage once [smoke] timeout (3s) has passed.
    server.set(Mode::Failing);
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\npath = \"/healthz\"\ntimeout = \"3s\"\n");
    let run = deploy(&fleet, &server, &["acme"]).code(1);
    let report = run.report();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["failed_stage"], "smoke");
    assert_eq!(stage_status(&report, "frontends"), "unchanged");
    let smoke = smoke_stage(&report);
    assert_eq!(smoke["status"], "failed");
    // It waited its timeout out (a lower bound holds on any machine), and no attempt
    // started after it: the give-up is the log's last line, after every attempt.
    let secs = smoke["duration_s"].as_f64().unwrap();
    assert!(secs >= 2.9, "the stage gave up after {secs}s, before its 3s timeout");
    let err = &run.stderr;
    assert!(err.contains(&format!("{}/healthz did not answer 2xx or 3xx within 3s", server.url)), "{err}");
    assert!(err.contains("last answer: HTTP 500"), "{err}");
    assert!(err.contains("--no-smoke") && err.contains("[smoke] timeout"), "{err}");
    let log = fleet.log("acme", "smoke");
    let attempts = log.lines().filter(|l| l.contains("-> HTTP 500")).count();
    assert!(attempts >= 2, "every attempt is logged:\n{log}");
    assert!(log.trim_end().lines().last().is_some_and(|l| l.contains("no 2xx or 3xx answer within 3s")), "{log}");

    // --no-smoke: the stage is skipped, the deploy succeeds, the server is not asked.
    let asked = server.paths().len();
    let report = deploy(&fleet, &server, &["acme", "--no-smoke"]).ok().report();
    let smoke = smoke_stage(&report);
    assert_eq!((smoke["status"].as_str(), smoke["detail"].as_str()), (Some("skipped"), Some("--no-smoke")));
    assert_eq!(server.paths().len(), asked);

    // A service that answers only after a few seconds: ok, after retries.
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\npath = \"/healthz\"\ntimeout = \"40s\"\n");
    server.set(Mode::DownFor(Duration::from_secs(4), None));
    let report = deploy(&fleet, &server, &["acme"]).ok().report();
    let smoke = smoke_stage(&report);
    assert_eq!(smoke["status"], "ok");
    let detail = smoke["detail"].as_str().unwrap();
    let attempts: u32 = detail.rsplit("after ").next().unwrap().trim_end_matches(" attempts").parse().unwrap_or(0);
    assert!(detail.starts_with("HTTP 200 from ") && attempts >= 2, "{detail}");
    assert!(fleet.log("acme", "smoke").contains("-> HTTP 503"), "the refusals before are logged");
    let secs = smoke["duration_s"].as_f64().unwrap();
    assert!(secs >= 4.0, "answered after 4s of 503s, found at {secs}s");
    // In order: the refusals, then the one answer that ended the stage.
    let log = fleet.log("acme", "smoke");
    let answers: Vec<&str> = log.lines().filter(|l| l.contains(" -> HTTP ")).map(|l| l.split(" -> ").nth(1).unwrap_or_default()).collect();
    let (last, before) = answers.split_last().unwrap();
    assert!(last.starts_with("HTTP 200") && before.iter().all(|a| a.starts_with("HTTP 503")), "{log}");

    // [smoke] enabled = false in the customer file: skipped, naming where.
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\nenabled = false\n");
    let report = deploy(&fleet, &server, &["acme"]).ok().report();
    let smoke = smoke_stage(&report);
    assert_eq!(smoke["status"], "skipped");
    assert!(smoke["detail"].as_str().unwrap().contains("enabled = false") && smoke["detail"].as_str().unwrap().contains("acme.toml:3"));
}

#[test]
fn a_canary_whose_url_fails_stops_the_wave() {
    let emu = Emulator::start();
    let server = Server::start(Mode::Healthy);
    let fleet = smoke_fleet(&emu);
    // The canary's own path answers 500 (a per-customer [smoke] path).
    fleet.customer("alpha", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n[smoke]\npath = \"/broken\"\ntimeout = 3\n");
    fleet.customer("bravo", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n");
    let run = deploy(&fleet, &server, &["alpha", "bravo", "--canary", "1"]).code(1);
    let out = run.json();
    let find = |c: &str| out["customers"].as_array().unwrap().iter().find(|r| r["customer"] == c).unwrap().clone();
    let alpha = find("alpha");
    assert_eq!((alpha["status"].as_str(), alpha["failed_stage"].as_str()), (Some("failed"), Some("smoke")), "{out:#}");
    assert_eq!(stage_status(&alpha, "frontends"), "ok");
    let bravo = find("bravo");
    assert_eq!(bravo["status"], "not_started", "{out:#}");
    assert!(bravo["error"].as_str().unwrap().contains("canary alpha did not succeed"), "{bravo:#}");
    assert!(run.stderr.contains(&format!("{}/broken did not answer", server.url)), "{}", run.stderr);
    assert!(server.paths().iter().all(|p| p == "/broken"), "bravo was never checked: {:?}", server.paths());
}

/// A frontends stack without a `public_url` output: nothing to check, said so.
#[test]
fn a_stack_without_public_url_skips_the_smoke_test() {
    let emu = Emulator::start();
    let tf = tempfile::tempdir().unwrap();
    common::standin_vpc_only(tf.path());
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(
        tf.path().join("frontends/production/main.tf"),
        "variable \"ami_id\" {\n  type = string\n}\n\noutput \"ami_id\" {\n  value = var.ami_id\n}\n",
    )
    .unwrap();
    let toml = FLEET_TOML
        .replace("{repo}/tests/standin/terraform", &tf.path().display().to_string())
        .replace("[smoke]\nenabled = false\n", "[smoke]\ntimeout = \"3s\"\n");
    let fleet = Fleet::with_toml(&emu, &toml);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let report = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let smoke = smoke_stage(&report);
    assert_eq!(smoke["status"], "skipped");
    assert_eq!(smoke["detail"], "the frontends stack has no `public_url` output");
}

/// Bad [smoke] settings stop everything before anything runs (exit 2), naming file and key.
#[test]
fn bad_smoke_settings_are_configuration_errors() {
    let emu = Emulator::start();
    let fleet = smoke_fleet(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\ntimeout = \"soon\"\n");
    for cmd in [&["validate", "acme"][..], &["deploy", "acme", "--auto-approve"]] {
        let run = fleet.stamp(cmd).code(2);
        assert!(run.stderr.contains("customers/acme.toml: line 3: [smoke] timeout: `soon` is not a duration"), "{}", run.stderr);
    }
    assert!(fleet.buckets().is_empty(), "nothing was created");
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\npaht = \"/up\"\n");
    let run = fleet.stamp(&["validate", "acme"]).code(2);
    assert!(run.stderr.contains("acme.toml: line 3: unknown field `paht`"), "{}", run.stderr);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.write_config(&FLEET_TOML.replace("[smoke]\nenabled = false\n", "[smoke]\npath = \"healthz\"\n"));
    let run = fleet.stamp(&["validate", "acme"]).code(2);
    assert!(
        run.stderr.contains("stamp.toml: line") && run.stderr.contains("[smoke] path: `healthz` must start with `/`"),
        "{}",
        run.stderr
    );
    fleet.write_config(&FLEET_TOML.replace("[smoke]\nenabled = false\n", "[smoke]\nenabled = \"no\"\n"));
    let run = fleet.stamp(&["validate", "acme"]).code(2);
    assert!(run.stderr.contains("stamp.toml: line") && run.stderr.contains("enabled = \"no\""), "{}", run.stderr);
}

/// Ctrl-C while an attempt hangs: stamp stops at once (it does not wait for the
/// attempt's own timeout), the stage is interrupted, exit 130.
#[test]
fn an_interrupt_stops_a_hanging_smoke_test_at_once() {
    let emu = Emulator::start();
    let server = Server::start(Mode::Hang);
    let fleet = smoke_fleet(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[smoke]\ntimeout = \"5m\"\n");
    let child = fleet
        .stamp_cmd(&["deploy", "acme", "--auto-approve", "--json"])
        .env("STANDIN_PUBLIC_URL", &server.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while server.paths().is_empty() {
        assert!(Instant::now() < deadline, "the smoke test never asked the server");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let run = Run::from(child.wait_with_output().unwrap(), &["deploy", "acme"]).code(130);
    // It did not wait for the hanging attempt's own timeout: that attempt never ended
    // (no answer, and no "no answer" either, is logged), and no other was started.
    let log = fleet.log("acme", "smoke");
    assert!(log.contains("until it answers 2xx or 3xx") && !log.contains("attempt 1: GET"), "{log}");
    assert_eq!(server.paths().len(), 1, "one attempt, abandoned: {:?}", server.paths());
    assert!(run.stderr.contains("interrupted during smoke"), "{}", run.stderr);
    let report = run.report();
    assert_eq!(smoke_stage(&report)["status"], "interrupted");
    assert_eq!(report["status"], "interrupted");
}
