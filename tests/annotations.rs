//! GitHub shows at most 10 error annotations per step and silently drops the rest:
//! a run of stamp prints at most 10 `::error` lines, then one `::notice` saying how
//! many more errors there are and where. A fleet with more than 10 failing customers
//! (the emulator refuses their state buckets, through the fault proxy) and `validate`
//! of more than 10 bad customer files. The real stamp and tools, the emulator.

mod common;

use common::{Emulator, FaultProxy, Fleet, Run};

/// stamp as a GitHub Actions step.
fn github(fleet: &Fleet, args: &[&str]) -> Run {
    let files = fleet.path().join("gh");
    std::fs::create_dir_all(&files).unwrap();
    let out = fleet
        .stamp_cmd(args)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", fleet.path())
        .env("GITHUB_STEP_SUMMARY", files.join("summary.md"))
        .output()
        .expect("run stamp");
    Run::from(out, args)
}

fn count(run: &Run, prefix: &str) -> usize {
    run.stderr.lines().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn a_fleet_with_twelve_failed_customers_annotates_ten_and_notes_two_more() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu);
    let fleet = Fleet::behind(&proxy);
    let names: Vec<String> = (1..=12).map(|i| format!("cust-{i:02}")).collect();
    for n in &names {
        fleet.customer(n, "git_id = \"v1\"\n");
    }
    // Every state bucket is refused: each customer fails at its first stage.
    proxy.set_rules(serde_json::json!([{"method": "PUT", "path": "/tfstate-", "action": "status", "status": 403,
                                         "code": "AccessDenied", "message": "injected by tests/annotations.rs"}]));
    let run = github(&fleet, &["deploy", "--all", "--parallel", "12", "--auto-approve"]).code(1);
    for n in &names {
        assert!(run.stderr.contains(&format!("::group::{n} · state bucket — FAILED")), "{n} did not fail:\n{}", run.stderr);
    }
    assert_eq!(count(&run, "::error "), 10, "{}", run.stderr);
    let notices: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("::notice ")).collect();
    assert_eq!(notices.len(), 1, "{}", run.stderr);
    assert!(notices[0].contains("::2 more error(s) were not annotated (GitHub shows 10 per step)"), "{}", notices[0]);
    // The notice comes after every annotation, at the end of the run.
    let lines: Vec<&str> = run.stderr.lines().collect();
    let last_error = lines.iter().rposition(|l| l.starts_with("::error ")).unwrap();
    assert!(lines.iter().position(|l| l.starts_with("::notice ")).unwrap() > last_error);
    // Every failure is still in the log and in the job summary.
    let summary = std::fs::read_to_string(fleet.path().join("gh/summary.md")).unwrap();
    assert_eq!(summary.matches("FAILED at stage bucket").count(), 12, "{summary}");
}

#[test]
fn validate_of_thirteen_bad_files_annotates_ten_and_notes_three_more() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    for i in 1..=13 {
        fleet.customer(&format!("bad-{i:02}"), "git_id = \"v1\"\nregion = \"Ireland\"\n");
    }
    fleet.customer("good", "git_id = \"v1\"\n");
    let run = github(&fleet, &["validate", "--all"]).code(2);
    assert_eq!(run.stderr.matches("invalid region `Ireland`").count(), 13 + 10, "13 errors, 10 annotated:\n{}", run.stderr);
    assert_eq!(count(&run, "::error "), 10, "{}", run.stderr);
    let notice = run.stderr.lines().find(|l| l.starts_with("::notice ")).unwrap_or_else(|| panic!("no notice:\n{}", run.stderr));
    assert!(notice.contains("::3 more error(s) were not annotated"), "{notice}");
    // Ten or fewer: no notice.
    for i in 4..=13 {
        std::fs::remove_file(fleet.path().join(format!("customers/bad-{i:02}.toml"))).unwrap();
    }
    let run = github(&fleet, &["validate", "--all"]).code(2);
    assert_eq!((count(&run, "::error "), count(&run, "::notice ")), (3, 0), "{}", run.stderr);
}
