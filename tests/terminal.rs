//! In a terminal (a pseudo-terminal from util-linux `script`), deploy asks before
//! each apply: only "yes" applies, anything else changes nothing in that stack.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Emulator, Fleet};

/// Runs stamp on a pseudo-terminal, typing `input`; returns (exit code, screen).
fn in_terminal(fleet: &Fleet, args: &str, input: &str) -> (i32, String) {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_stamp"));
    let mut script = Command::new("script");
    let mut child = common::hermetic(&mut script)
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

#[test]
fn a_fleet_in_a_terminal_shows_its_plan_and_asks_once() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n");

    let (code, screen) = in_terminal(&fleet, "deploy --all", "no\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("The fleet's plan:") && screen.contains("acme") && screen.contains("globex"), "{screen}");
    assert!(fleet.buckets().is_empty(), "declined: nothing was created");

    let (code, screen) = in_terminal(&fleet, "deploy --all", "yes\n");
    assert_eq!(code, 0, "{screen}");
    assert_eq!(screen.matches("Only 'yes' will be accepted").count(), 1, "asked once: {screen}");
    assert!(screen.contains("Apply these changes to 2 customers?"), "{screen}");
    assert!(screen.contains("customers: 2/2 done, 0 failed"), "the total line: {screen}");
    assert!(screen.contains("2 customers in") && screen.contains("2 ok"), "the fleet table: {screen}");

    // Once deployed, the fleet's plan says what each stack would change.
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.3.0.0/16\"\n");
    let (code, screen) = in_terminal(&fleet, "deploy --all", "no\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("globex") && screen.contains("vpc") && screen.contains("+0 ~0 -0 -/+1"), "{screen}");
    assert!(screen.contains("!! globex"), "a replacement is called out: {screen}");

    let (code, screen) = in_terminal(&fleet, "destroy --all", "yes\n");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Destroy 2 customers: acme (production), globex (production)?"), "{screen}");
}
