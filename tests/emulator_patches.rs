//! scripts/moto_server.py's patches and their probes, against the installed moto:
//! each probe finds its defect in the pinned moto (else the patch would silently not
//! be applied), each patch removes what its probe finds, and a patch no longer needed
//! is said so at start and not applied.

mod common;

use std::process::Command;

/// `scripts/moto_server.py ARGS` with the installed venv, probing afresh (an empty cache).
fn launcher(args: &[&str], cache: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(common::tools().join("../venv/bin/python"))
        .arg(common::repo().join("scripts/moto_server.py"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run scripts/moto_server.py");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn installed_moto() -> String {
    let out =
        Command::new(common::tools().join("../venv/bin/python")).args(["-c", "import moto; print(moto.__version__)"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn each_probe_finds_its_defect_in_the_pinned_moto_and_each_patch_removes_it() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = launcher(&["--check"], cache.path());
    assert!(ok, "{stderr}");
    let patches = stdout.lines().filter(|l| l.starts_with("patch ")).count();
    assert!(patches >= 12, "{stdout}");
    if installed_moto() == "5.2.1" {
        // The pinned moto has every defect: a probe that missed one would drop its patch.
        assert!(stdout.contains(&format!("moto 5.2.1: {patches} of {patches} patches needed")), "{stdout}");
    }
    assert!(!stdout.contains("unknown"), "every probe runs: {stdout}");
    let kept = std::fs::read_to_string(cache.path().join("stamp/moto-probes.json")).unwrap();
    assert!(kept.contains(&format!("moto {}", installed_moto())), "the verdicts are kept: {kept}");

    // With every patch applied, no probe finds its defect any more.
    let (ok, stdout, stderr) = launcher(&["--probe-patched"], cache.path());
    assert!(ok, "{stderr}");
    let verdicts: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let still: Vec<&String> =
        verdicts.as_object().unwrap().iter().filter(|(_, v)| **v != serde_json::json!(false)).map(|(k, _)| k).collect();
    assert!(still.is_empty(), "patches that do not fix what their probe finds: {still:?} ({stdout})");
}

/// A moto that has fixed a defect: the verdict says so (as the probe would on moto
/// 5.2.6 for patches 2a and 9), and the server starts without that patch, naming it.
#[test]
fn a_patch_no_longer_needed_is_named_at_start_and_not_applied() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = launcher(&["--check"], cache.path());
    assert!(ok, "{stderr}");
    // The kept verdicts, edited as a moto with patch 9's fix would have them.
    let file = cache.path().join("stamp/moto-probes.json");
    let mut kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for (_, verdicts) in kept.as_object_mut().unwrap().iter_mut() {
        verdicts["9"] = serde_json::json!(false);
    }
    std::fs::write(&file, kept.to_string()).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(common::tools().join("../venv/bin/python"))
        .arg(common::repo().join("scripts/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("XDG_CACHE_HOME", cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the emulator did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The unpatched GetBucketVersioning answers with moto's own root element.
    let aws = |args: &[&str]| {
        Command::new(common::tool("aws"))
            .args(["--endpoint-url", &format!("http://127.0.0.1:{port}"), "--region", "eu-west-1", "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    assert!(
        aws(&["s3api", "create-bucket", "--bucket", "bucket-nine", "--create-bucket-configuration", "LocationConstraint=eu-west-1"])
            .status
            .success()
    );
    let out = aws(&["s3api", "get-bucket-versioning", "--bucket", "bucket-nine", "--debug"]);
    let debug = String::from_utf8_lossy(&out.stderr);
    if installed_moto() == "5.2.1" {
        assert!(debug.contains("GetBucketVersioningResponse"), "patch 9 was not applied: moto answers with its own root");
    }
    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("patch 9 (S3 GetBucketVersioning: the wrong root element) is no longer needed with moto"), "{stderr}");
}
