//! The soak after a rollout's wave, on the emulator: alarms created and set with the
//! AWS CLI, read by stamp through the SDK (DescribeAlarms over its CBOR protocol,
//! which scripts/moto_server.py's patch 12 serves); the public URLs served by a
//! loopback server of the test's own; and a rollout through the CLI that halts when
//! an alarm goes off during its soak.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{Emulator, Fleet};
use stamp::events::{Event, EventKind, EventSink};
use stamp::fleet::soak::{Soak, SoakTarget};
use stamp::tools::process::StageLog;
use stamp::tools::s3::{ApiError, AwsApi};

const REGION: &str = "eu-west-1";

fn api(f: &Fleet) -> AwsApi {
    let env = [("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()), ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned())];
    AwsApi::for_endpoint(Some(f.endpoint.clone()), None, None, &env)
}

/// A server on loopback that answers every GET with `status`.
fn serve(status: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    format!("http://127.0.0.1:{port}/health")
}

#[derive(Default)]
struct Recorder(RefCell<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, e: Event) {
        self.0.borrow_mut().push(e);
    }
}

fn target(customer: &str, url: Option<&str>) -> SoakTarget {
    SoakTarget { customer: customer.into(), region: REGION.into(), url: url.map(String::from), alarms: vec![format!("{customer}-5xx")] }
}

#[test]
fn an_alarm_set_to_alarm_mid_soak_fails_its_customer_and_the_other_passes() {
    let emu = Emulator::start();
    let f = Fleet::new(&emu);
    f.put_alarm("acme-5xx");
    f.put_alarm("globex-5xx");
    let url = serve("200 OK");
    let targets = [target("acme", Some(&url)), target("globex", Some(&url))];

    // The alarm goes off 2 s into a 6 s soak, from another thread (the AWS CLI).
    let (endpoint, started) = (f.endpoint.clone(), Instant::now());
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let out = std::process::Command::new(common::tool("aws"))
            .args(["--endpoint-url", &endpoint, "--region", REGION, "cloudwatch", "set-alarm-state"])
            .args(["--alarm-name", "acme-5xx", "--state-value", "ALARM", "--state-reason", "5xx above 1 for 1 minute"])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        started.elapsed()
    });

    let rec = Rc::new(Recorder::default());
    let log_dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let failed = rt.block_on(async {
        let api = api(&f);
        let log = &mut StageLog::create(log_dir.path().join("soak.log")).unwrap();
        let soak = Soak {
            api: &api,
            log,
            sink: rec.clone(),
            label: "wave 1/2".into(),
            duration: Duration::from_secs(6),
            every: Duration::from_secs(1),
        };
        soak.run(&targets).await.unwrap()
    });
    let took = started.elapsed();
    let set_at = setter.join().unwrap();

    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].customer, "acme");
    assert_eq!(failed[0].reason, "alarm `acme-5xx` is in ALARM: 5xx above 1 for 1 minute");
    assert!(set_at < Duration::from_secs(6), "the alarm was set during the soak ({set_at:?})");
    assert!(took >= Duration::from_secs(6) && took < Duration::from_secs(30), "the soak lasts its time: {took:?}");

    // The countdown: down to zero, the last one with one failure and one watched.
    let soaks: Vec<(Duration, usize, usize)> = rec
        .0
        .borrow()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Soak { left, watching, failed, .. } => Some((left, watching, failed)),
            _ => None,
        })
        .collect();
    assert!(soaks.len() >= 6, "a countdown event every second at least: {soaks:?}");
    assert!(soaks.windows(2).all(|w| w[1].0 <= w[0].0), "left never grows: {soaks:?}");
    assert_eq!(soaks.first().map(|s| (s.1, s.2)), Some((2, 0)));
    assert_eq!(soaks.last(), Some(&(Duration::ZERO, 1, 1)));
    let notes: Vec<String> =
        rec.0.borrow().iter().filter_map(|e| if let EventKind::Note(m) = &e.kind { Some(m.clone()) } else { None }).collect();
    assert_eq!(notes, ["acme: failed the soak of wave 1/2: alarm `acme-5xx` is in ALARM: 5xx above 1 for 1 minute"]);

    // Once failed, acme is not checked again: its URL appears in the checks before
    // the failure only, globex's in every one.
    let log = std::fs::read_to_string(log_dir.path().join("soak.log")).unwrap();
    let fail_line = log.lines().position(|l| l.contains("acme fails the soak")).expect(&log);
    let after: Vec<&str> = log.lines().skip(fail_line + 1).collect();
    assert!(after.iter().any(|l| l.contains("globex: GET")), "{log}");
    assert!(!after.iter().any(|l| l.contains("acme: GET")), "{log}");
    assert!(after.iter().all(|l| !l.contains("DescribeAlarms acme-5xx")), "acme's alarm is not read again: {log}");
}

#[test]
fn a_soak_of_zero_checks_once_and_a_missing_alarm_or_a_failing_url_fails_its_customer() {
    let emu = Emulator::start();
    let f = Fleet::new(&emu);
    f.put_alarm("acme-5xx");
    f.put_alarm("initech-5xx");
    let (good, bad) = (serve("200 OK"), serve("503 Service Unavailable"));
    let targets = [target("acme", Some(&good)), target("globex", Some(&good)), target("initech", Some(&bad))];
    let rec = Rc::new(Recorder::default());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let api = api(&f);
        let log = &mut StageLog::discard();
        let soak =
            Soak { api: &api, log, sink: rec.clone(), label: "wave 1/1".into(), duration: Duration::ZERO, every: Duration::from_secs(5) };
        let failed = soak.run(&targets).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let by: Vec<(&str, &str)> = failed.iter().map(|x| (x.customer.as_str(), x.reason.as_str())).collect();
        assert_eq!(by.len(), 2, "{by:?}");
        assert_eq!(by[0].0, "globex");
        assert!(by[0].1.contains("alarm `globex-5xx` does not exist in eu-west-1") && by[0].1.contains("`[rollout] alarms`"), "{by:?}");
        assert_eq!(by[1], ("initech", &*format!("smoke test: GET {bad} -> HTTP 503")));
        let checks = std::cell::Cell::new(0);
        for e in rec.0.borrow().iter() {
            if let EventKind::Soak { left, .. } = e.kind {
                assert_eq!(left, Duration::ZERO);
                checks.set(checks.get() + 1);
            }
        }
        assert!(checks.get() >= 1);

        // The lower call: the alarms in ALARM, and a missing one as an error naming it.
        f.aws(&["cloudwatch", "set-alarm-state", "--alarm-name", "initech-5xx", "--state-value", "ALARM", "--state-reason", "down"]);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let firing = api.alarms_in_alarm(log, REGION, &names(&["acme-5xx", "initech-5xx"])).await.unwrap();
        assert_eq!(firing, [("initech-5xx".to_owned(), "down".to_owned())]);
        let e = api.alarms_in_alarm(log, REGION, &names(&["acme-5xx", "nobody-5xx"])).await.unwrap_err();
        assert!(matches!(&e, ApiError::Other { code, .. } if code == "AlarmNotFound"), "{e:?}");
        assert!(e.to_string().contains("alarm `nobody-5xx` does not exist in eu-west-1"), "{e}");
        // Another region holds none of them.
        let e = api.alarms_in_alarm(log, "us-east-1", &names(&["acme-5xx"])).await.unwrap_err();
        assert!(e.to_string().contains("`acme-5xx` does not exist in us-east-1"), "{e}");
    });
}

/// The soak inside `stamp rollout`, through the CLI: four customers in waves 1 / 100%,
/// a soak of 10 s watching `{{customer}}-5xx`, no failure tolerated. The test sets
/// c00's alarm to ALARM while wave 1 soaks: c00 fails with the alarm's reason, the
/// rollout halts before wave 2 and nobody else is deployed.
#[test]
fn a_rollout_halts_when_an_alarm_goes_off_during_its_soak() {
    let emu = Emulator::start();
    let f = Fleet::new(&emu);
    f.write_config(&format!(
        "{}\n[rollout]\nwaves = [\"1\", \"100%\"]\nsoak = \"10s\"\nmax_failures = 0\nalarms = [\"{{{{customer}}}}-5xx\"]\n",
        common::FLEET_TOML
    ));
    for i in 0..4 {
        f.customer(&format!("c{i:02}"), &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{i}.0.0/16\"\n"));
        f.put_alarm(&format!("c{i:02}-5xx"));
    }
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = f
        .stamp_cmd(&["rollout", "--all", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(err_file.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !stderr().contains("] wave 1/2: soak ") {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("stamp ended ({status}) before wave 1's soak:\n{}", stderr());
        }
        assert!(Instant::now() < deadline, "no soak within 300 s:\n{}", stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    f.aws(&["cloudwatch", "set-alarm-state", "--alarm-name", "c00-5xx", "--state-value", "ALARM", "--state-reason", "5xx above 1"]);
    let status = child.wait().unwrap();
    let err = stderr();
    assert_eq!(status.code(), Some(1), "a halted rollout exits 1:\n{err}");
    assert!(err.contains("c00: failed the soak of wave 1/2: alarm `c00-5xx` is in ALARM: 5xx above 1"), "{err}");
    let status = f.stamp(&["rollout", "--status", "--json"]);
    let out = status.json();
    assert_eq!(out["rollout"]["state"], "halted", "{out:#}");
    let customers = out["customers"].as_array().unwrap();
    let of = |c: &str| customers.iter().find(|x| x["customer"] == c).unwrap().clone();
    assert_eq!(of("c00")["outcome"], "failed");
    assert!(of("c00")["error"].as_str().unwrap().contains("alarm `c00-5xx` is in ALARM"), "{out:#}");
    for c in ["c01", "c02", "c03"] {
        assert_eq!(of(c)["outcome"], "pending", "{c} is in the wave that never started");
    }
    let buckets = f.buckets();
    assert!(!buckets.iter().any(|b| b.ends_with("-c01")), "nobody after c00 was deployed: {buckets:?}");
}
