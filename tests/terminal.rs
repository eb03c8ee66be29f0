//! In a terminal (a pseudo-terminal from util-linux `script`), deploy asks before
//! each apply: only "yes" applies, anything else changes nothing in that stack.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Emulator, Fleet};

/// Runs stamp on a pseudo-terminal, typing `input`; returns (exit code, screen).
fn in_terminal(fleet: &Fleet, args: &str, input: &str) -> (i32, String) {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_stamp"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(fleet.path())
        .env_remove("CI")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn deploy_asks_before_each_apply_and_only_yes_applies() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");

    let (code, screen) = in_terminal(&fleet, "deploy acme", "no\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("acme vpc: 1 to add, 0 to change, 0 to destroy"), "{screen}");
    assert!(screen.contains("create terraform_data.network"), "{screen}");
    assert!(screen.contains("apply cancelled; nothing was changed in this stage"), "{screen}");
    let objects = fleet.aws(&["s3", "ls", "--recursive", "s3://tfstate-123456789012-acme/"]);
    assert!(!objects.contains("acme/vpc"), "declined: no vpc state was written\n{objects}");

    let (code, screen) = in_terminal(&fleet, "deploy acme", "yes\nyes\n");
    assert_eq!(code, 0, "{screen}");
    assert_eq!(screen.matches("Apply these changes? Only 'yes' will be accepted").count(), 2, "{screen}");
    assert!(screen.contains("✔ vpc stack"), "progress lines in a terminal: {screen}");
    assert!(screen.contains("public URL: http://acme-production"), "{screen}");
}
