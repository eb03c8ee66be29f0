//! The one process runner (`stamp::tools::process::ToolCommand`) and the relay each
//! tool runs under (`stamp::tools::relay`, stamp's own binary): output to the log
//! and to the caller, failures with their tail, the process group stopped, a run
//! abandoned by its caller handled as stamp's death is: the tool gets its stop
//! signal once and its output keeps reaching the log.

use std::path::{Path, PathBuf};

use stamp::error::Error;
use stamp::tools::process::{StageLog, Stream, Tail, ToolCommand};

/// The relay is stamp's binary; this test program is not stamp.
fn relay() {
    stamp::tools::process::set_relay_program(env!("CARGO_BIN_EXE_stamp"));
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_reach_the_tool_and_private_files_are_the_owners_only() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path())
        .args(["-c", "printf %s \"$TF_VAR_x\" > out; umask"])
        .secret_env("TF_VAR_x", "s3cret", "'<sensitive>'")
        .private_files();
    let out = c.run("t", &mut StageLog::discard(), &[0], true, &mut |_, _| Tail::Raw).await.unwrap();
    assert_eq!(out.stdout.trim(), "0077");
    let f = dir.path().join("out");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "s3cret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test(flavor = "current_thread")]
async fn failure_carries_status_tail_and_log() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StageLog::create(dir.path().join("logs/t.log")).unwrap();
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "echo out; echo err >&2; exit 3"]);
    let mut seen = Vec::new();
    let err = c
        .run("t", &mut log, &[0], true, &mut |s, l| {
            seen.push((s, l.to_owned()));
            Tail::Raw
        })
        .await
        .unwrap_err();
    let Error::Tool(f) = err else { panic!("expected a tool failure") };
    assert_eq!(f.status, "exit status 3");
    assert!(f.tail.contains(&"out".to_string()) && f.tail.contains(&"err".to_string()));
    let text = std::fs::read_to_string(dir.path().join("logs/t.log")).unwrap();
    assert!(text.contains("$ cd ") && text.contains("out\n") && text.contains("[stderr] err\n"), "{text}");
    assert_eq!(seen.len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn stdout_is_captured_on_success() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StageLog::discard();
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "printf 'a\\nb\\n'; exit 2"]);
    let out = c.run("t", &mut log, &[0, 2], true, &mut |_, _| Tail::Raw).await.unwrap();
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "a\nb\n");
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "current_thread")]
async fn a_background_process_holding_the_pipes_does_not_hang_the_run() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StageLog::create(dir.path().join("t.log")).unwrap();
    let marker = "611.0917";
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", &format!("echo before; sleep {marker} & echo after")]);
    let started = std::time::Instant::now();
    let out = c.run("t", &mut log, &[0], true, &mut |_, _| Tail::Raw).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(out.stdout, "before\nafter\n");
    let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
    assert!(text.contains("still holds its output open"), "{text}");
    // What was left of the group got SIGTERM.
    all_gone(marker).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_run_stops_the_whole_process_group() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let marker = "612.0917";
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path())
        .args(["-c", &format!("sleep {marker} & sleep {marker}")])
        .stop_with(libc::SIGTERM);
    let mut log = StageLog::discard();
    let mut on_line = |_: Stream, _: &str| Tail::Raw;
    let run = c.run("t", &mut log, &[0], false, &mut on_line);
    assert!(tokio::time::timeout(std::time::Duration::from_secs(1), run).await.is_err());
    all_gone(marker).await;
}

/// Waits up to 5 s for every process with `marker` in its command line to be gone.
async fn all_gone(marker: &str) {
    for _ in 0..50 {
        if processes_with(marker).is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("left running: {:?}", processes_with(marker));
}

#[tokio::test(flavor = "current_thread")]
async fn a_log_that_cannot_be_written_is_an_error_naming_it() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StageLog::append(PathBuf::from("/dev/full")).unwrap();
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", "echo hello"]);
    let err = c.run("t", &mut log, &[0], false, &mut |_, _| Tail::Raw).await.unwrap_err();
    assert!(err.to_string().contains("writing the log /dev/full"), "{err}");
}

/// A tool that counts the SIGINTs it gets and keeps printing for a while after the
/// first, as terraform does while it saves its state.
const SAVES_ITS_STATE: &str = r#"n=0
trap 'n=$((n+1)); echo "got SIGINT $n"' INT
echo started
while [ ! -f stop-now ]; do sleep 0.05; done
i=0
while [ $i -lt 20 ]; do echo "saving $i (after $n SIGINT)"; sleep 0.05; i=$((i+1)); done
echo "state saved after $n SIGINT"
"#;

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_run_gets_its_stop_signal_once_and_its_output_keeps_reaching_the_log() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("logs/vpc.log");
    let mut log = StageLog::create(log_path.clone()).unwrap();
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", SAVES_ITS_STATE]);
    let mut on_line = |_: Stream, _: &str| Tail::Raw;
    {
        let run = c.run("vpc", &mut log, &[0], false, &mut on_line);
        // Dropped once the tool runs: for the relay, as if stamp had died.
        let started = async {
            let text = || std::fs::read_to_string(&log_path).unwrap_or_default();
            // The line itself, not the script in the logged command.
            while !text().lines().any(|l| l == "started") {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            _ = run => panic!("the tool ended on its own"),
            _ = started => {}
        }
    }
    // The relay saw its stdin end: it sent SIGINT once. The tool goes on saving.
    wait_for_log(&log_path, "got SIGINT 1").await;
    std::fs::write(dir.path().join("stop-now"), "").unwrap();
    let log = wait_for_log(&log_path, "after stamp was gone").await;
    let lines: Vec<&str> = log.lines().collect();
    let gone = lines.iter().position(|l| l.contains("is gone while sh runs: sent it signal 2 once")).expect(&log);
    let saved = lines.iter().position(|l| *l == "state saved after 1 SIGINT").expect(&log);
    assert!(gone < saved, "the tool's lines after stamp was gone are in the log:\n{log}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("saving ")).count(), 20, "{log}");
    assert!(!log.contains("got SIGINT 2"), "exactly one stop signal:\n{log}");
    assert_eq!(lines.last().copied(), Some("stamp: sh ended (exit status 0) after stamp was gone"), "{log}");
}

/// Waits (up to 30 s) for `needle` in the log; returns the log.
async fn wait_for_log(path: &Path, needle: &str) -> String {
    for _ in 0..600 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {needle:?} in {}:\n{}", path.display(), std::fs::read_to_string(path).unwrap_or_default());
}

#[tokio::test(flavor = "current_thread")]
async fn a_tool_that_cannot_start_is_a_failure_naming_it() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let c = ToolCommand::new(Path::new("/nonexistent/terraform"), dir.path()).arg("version");
    let err = c.run("vpc", &mut StageLog::discard(), &[0], false, &mut |_, _| Tail::Raw).await.unwrap_err();
    let Error::Tool(f) = err else { panic!("expected a tool failure: {err}") };
    assert!(f.status.contains("could not start /nonexistent/terraform"), "{}", f.status);
    assert!(f.hint.unwrap_or_default().contains("stamp doctor"));
}

/// A process the tool started and left in its group without its output (an
/// interrupted terraform's provisioner command, a daemon) goes when the tool exits.
#[tokio::test(flavor = "current_thread")]
async fn what_a_tool_leaves_in_its_process_group_is_stopped_when_it_exits() {
    relay();
    let dir = tempfile::tempdir().unwrap();
    let mut log = StageLog::create(dir.path().join("t.log")).unwrap();
    let marker = "613.0917";
    let c = ToolCommand::new(Path::new("/bin/sh"), dir.path()).args(["-c", &format!("sleep {marker} >/dev/null 2>&1 & echo left it")]);
    let out = c.run("t", &mut log, &[0], true, &mut |_, _| Tail::Raw).await.unwrap();
    assert_eq!(out.stdout, "left it\n");
    assert!(processes_with(marker).is_empty(), "left running: {:?}", processes_with(marker));
    let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
    assert!(text.contains("leaving processes in its process group") && text.contains("sending them SIGTERM"), "{text}");
}
