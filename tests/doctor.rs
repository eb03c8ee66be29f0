//! `stamp doctor`: the real terraform, packer and aws CLI, the emulator. It runs
//! without a fleet file, names each stack's required Terraform version next to the
//! one found, and fails when a required tool or version is missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Emulator, FLEET_TOML, Fleet, Run};

/// PATH with the installed tools (.tools/bin) first.
fn path_with_tools() -> String {
    format!("{}:{}", common::tools().display(), std::env::var("PATH").unwrap_or_default())
}

/// A copy of the stand-in stacks whose stacks carry `versions.tf` with these
/// `required_version`s (stack directory -> constraint).
fn stacks_requiring(into: &Path, required: &[(&str, &str)]) {
    let from = common::repo().join("tests/standin/terraform");
    let status = Command::new("cp").arg("-r").arg(&from).arg(into).status().unwrap();
    assert!(status.success());
    for (stack, c) in required {
        std::fs::write(into.join("terraform").join(stack).join("versions.tf"), format!("terraform {{\n  required_version = \"{c}\"\n}}\n"))
            .unwrap();
    }
}

#[test]
fn doctor_without_a_fleet_file_checks_the_tools_and_says_what_it_did_not() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let args = ["doctor"];
    let out = Command::new(env!("CARGO_BIN_EXE_stamp"))
        .args(args)
        .current_dir(dir.path())
        .env("PATH", path_with_tools())
        .env("HOME", home.path())
        .env_remove("TF_CLI_CONFIG_FILE")
        .env_remove("STAMP_CONFIG")
        .env_remove("STAMP_TERRAFORM")
        .env_remove("STAMP_PACKER")
        .env_remove("STAMP_AWS")
        .output()
        .unwrap();
    let run = Run::from(out, &args).ok();
    let says = |needle: &str| assert!(run.stdout.contains(needle), "{needle:?} in:\n{}", run.stdout);
    says("no fleet file stamp.toml");
    says("ok   terraform");
    says("stamp needs >= 1.10 (the S3 backend's use_lockfile)");
    says("ok   packer");
    says("ok   aws");
    says("the stacks' required_version not checked");
    says("credentials and endpoint not checked");
    says("CLI configuration: none of yours");

    // With a ~/.terraformrc, doctor names it as the configuration terraform runs with.
    std::fs::write(home.path().join(".terraformrc"), "disable_checkpoint = true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stamp"))
        .args(args)
        .current_dir(dir.path())
        .env("PATH", path_with_tools())
        .env("HOME", home.path())
        .env_remove("TF_CLI_CONFIG_FILE")
        .env_remove("STAMP_CONFIG")
        .output()
        .unwrap();
    let run = Run::from(out, &args).ok();
    let rc = home.path().join(".terraformrc");
    assert!(run.stdout.contains(&format!("CLI configuration: yours, {}", rc.display())), "{}", run.stdout);
}

#[test]
fn doctor_names_each_stacks_required_version_next_to_the_one_found() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let stacks = tempfile::tempdir().unwrap();
    stacks_requiring(stacks.path(), &[("vpc", ">= 1.10"), ("frontends/production", ">= 1.6, < 2.0.0")]);
    let tf = stacks.path().join("terraform");
    fleet.write_config(&FLEET_TOML.replace("{repo}/tests/standin/terraform", tf.to_str().unwrap()));

    let run = fleet.stamp(&["doctor"]).ok();
    let version = run.stdout.lines().find_map(|l| l.strip_prefix("ok   terraform  ")?.split(':').next()?.parse_version()).unwrap();
    let says = |needle: &str| assert!(run.stdout.contains(needle), "{needle:?} in:\n{}", run.stdout);
    says(&format!("ok   terraform  {version}: vpc requires >= 1.10 ({})", tf.join("vpc/versions.tf").display()));
    says(&format!("ok   terraform  {version}: frontends/production requires >= 1.6, < 2.0.0"));
    says(&format!("ok   terraform  {version}: frontends/staging requires no version"));
    says("ok   aws        credentials work, account 123456789012");
    says("ok   customers  1 customer file(s)");

    // A stack that wants another Terraform: named, with what it requires, and exit 1.
    stacks_requiring(stacks.path(), &[("frontends/staging", "~> 1.5.0")]);
    let run = fleet.stamp(&["doctor"]).code(1);
    assert!(
        run.stdout.contains(&format!(
            "FAIL terraform  {version}: frontends/staging requires ~> 1.5.0 ({})",
            tf.join("frontends/staging/versions.tf").display()
        )),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("doctor found 1 problem(s)"), "{}", run.stderr);
}

/// The real terraform here is new enough: a too-old one is a fake that only prints
/// an old version (tests/fakes/terraform-1.9-too-old); a missing packer is a path
/// that does not exist.
#[test]
fn doctor_fails_when_a_required_tool_or_version_is_missing() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let fake = common::repo().join("tests/fakes/terraform-1.9-too-old");
    let out = fleet.stamp_cmd(&["doctor"]).env("STAMP_TERRAFORM", &fake).env("STAMP_PACKER", "/nonexistent/packer").output().unwrap();
    let run = Run::from(out, &["doctor"]).code(1);
    assert!(run.stdout.contains("FAIL terraform  1.9.8: stamp needs >= 1.10 (the S3 backend's use_lockfile)"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL packer") && run.stdout.contains("/nonexistent/packer does not exist"), "{}", run.stdout);
    assert!(run.stdout.contains("ok   aws "), "the others are still checked: {}", run.stdout);
    assert!(run.stderr.contains("problem(s)"), "{}", run.stderr);
}

trait ParseVersion {
    fn parse_version(&self) -> Option<String>;
}

impl ParseVersion for str {
    /// "1.11.4" (three numbers) or `None`.
    fn parse_version(&self) -> Option<String> {
        let parts: Vec<&str> = self.trim().split('.').collect();
        (parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))).then(|| self.trim().to_owned())
    }
}
