//! The soak after a rollout's wave, on the emulator: alarms created and set with the
//! AWS CLI, read by stamp through the SDK (DescribeAlarms over its CBOR protocol,
//! which scripts/moto_server.py's patch 12 serves); the public URLs served by a
//! loopback server of the test's own.

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

fn put_alarm(f: &Fleet, name: &str) {
    f.aws(&[
        "cloudwatch",
        "put-metric-alarm",
        "--alarm-name",
        name,
        "--namespace",
        "Stamp/Test",
        "--metric-name",
        "5xx",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "1",
        "--comparison-operator",
        "GreaterThanOrEqualToThreshold",
    ]);
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
    put_alarm(&f, "acme-5xx");
    put_alarm(&f, "globex-5xx");
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
    put_alarm(&f, "acme-5xx");
    put_alarm(&f, "initech-5xx");
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
