//! The Makefile's targets, run by the real make: one shape for every target
//! (`stamp SUBCOMMAND [CUSTOMER] [--env ENV] $(STAMP_FLAGS)`), a usage error for a
//! target that needs CUSTOMER, and the user's Terraform configuration left alone.
//! `-o build` keeps make from building the release binary: STAMP names the one
//! under test (or a command that shows what make passed).

mod common;

use std::process::Command;

use common::{Emulator, Fleet, Run};

/// `make -s -o build ARGS...` in the repository, with the environment the test
/// fleet's stamp gets (tests/common: CI, the project's terraformrc, no AWS keys).
fn make(fleet: Option<&Fleet>, args: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.current_dir(common::repo()).args(["-s", "-o", "build"]).args(args);
    c.env("CI", "true")
        .env("TF_CLI_CONFIG_FILE", common::tools().join("../terraformrc"))
        .env_remove("MAKEFLAGS")
        .env_remove("STAMP_FLAGS")
        .env_remove("CUSTOMER")
        .env_remove("ENV")
        .env_remove("STAMP_AWS_ENDPOINT")
        .env_remove("STAMP_CONFIG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("TRAVIS")
        .env_remove("STAMP_PROGRESS");
    if let Some(f) = fleet {
        f.trust(&mut c);
    }
    c
}

fn run(mut c: Command, args: &[&str]) -> Run {
    Run::from(c.output().expect("make"), args)
}

#[test]
fn a_target_that_names_a_customer_refuses_to_run_without_one() {
    for target in ["customer", "plan", "destroy", "outputs", "render"] {
        let r = run(make(None, &[target]), &[target]).code(2);
        assert!(r.stderr.contains(&format!("usage: make {target} CUSTOMER=<name>")), "{target}: {}", r.stderr);
    }
}

/// STAMP_FLAGS goes after the subcommand for every target: global options and the
/// subcommand's own (here plan's --parallel and --json) are both accepted there.
#[test]
fn stamp_flags_take_global_and_subcommand_options_for_every_target() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let config = fleet.path().join("stamp.toml");
    let stamp = format!("STAMP={}", env!("CARGO_BIN_EXE_stamp"));
    let flags = format!("STAMP_FLAGS=--config={} --parallel=2 --json", config.display());
    let args = ["plan", "CUSTOMER=acme", &stamp, &flags];
    let report = run(make(Some(&fleet), &args), &args).ok().report();
    assert_eq!(report["customer"], "acme", "{report:#}");
    assert_eq!(report["operation"], "plan", "{report:#}");

    // list and outputs take --json after the subcommand only.
    let flags = format!("STAMP_FLAGS=--config={} --json", config.display());
    let args = ["list", &stamp, &flags];
    let list = run(make(Some(&fleet), &args), &args).ok().json();
    assert_eq!(list["customers"][0]["customer"], "acme", "{list:#}");
    let args = ["outputs", "CUSTOMER=acme", &stamp, &flags];
    let r = run(make(Some(&fleet), &args), &args);
    // Never deployed: stamp's own answer about acme, not a refused flag.
    assert!(!r.stderr.contains("unexpected argument") && r.stderr.contains("acme"), "{}", r.stderr);
}

/// The Terraform CLI configuration make hands on: the caller's, untouched. Shown by
/// a STAMP that prints TF_CLI_CONFIG_FILE as make passed it.
#[test]
fn make_leaves_the_users_terraform_configuration_to_stamp() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".terraformrc"), "disable_checkpoint = true\n").unwrap();
    let show = "STAMP=sh -c 'echo \"rc=[$${TF_CLI_CONFIG_FILE-unset}] mirror=[$${STAMP_TF_PROVIDER_MIRROR-unset}]\"' sh";
    let args = ["list", show, "STAMP_TF_PROVIDER_MIRROR=/opt/somewhere"];

    // A ~/.terraformrc and no variable: none is set (stamp reads the user's).
    let mut c = make(None, &args);
    c.env("HOME", home.path()).env_remove("TF_CLI_CONFIG_FILE");
    let r = run(c, &args).ok();
    assert_eq!(r.stdout.trim(), "rc=[unset] mirror=[/opt/somewhere]", "{}", r.stderr);

    // A variable naming the user's file: passed as it is.
    let mine = home.path().join("mine.tfrc");
    std::fs::write(&mine, "").unwrap();
    let mut c = make(None, &args);
    c.env("HOME", home.path()).env("TF_CLI_CONFIG_FILE", &mine);
    let r = run(c, &args).ok();
    assert_eq!(r.stdout.trim(), format!("rc=[{}] mirror=[/opt/somewhere]", mine.display()), "{}", r.stderr);

    // None at all: still none (stamp writes its own, from the mirror).
    let empty = tempfile::tempdir().unwrap();
    let mut c = make(None, &args);
    c.env("HOME", empty.path()).env_remove("TF_CLI_CONFIG_FILE");
    let r = run(c, &args).ok();
    assert_eq!(r.stdout.trim(), "rc=[unset] mirror=[/opt/somewhere]", "{}", r.stderr);
}

/// The targets with a `## ` comment in the Makefile, in its order, with their text.
fn documented_targets() -> Vec<(String, String)> {
    let makefile = std::fs::read_to_string(common::repo().join("Makefile")).unwrap();
    makefile
        .lines()
        .filter_map(|l| {
            let (target, rest) = l.split_once(':')?;
            let (_, text) = rest.split_once("## ")?;
            let plain = !target.is_empty() && target.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            (plain && !rest.starts_with('=')).then(|| (target.to_string(), text.trim().to_string()))
        })
        .collect()
}

/// `make help` is the list of documented targets: every one, in the Makefile's order,
/// with its comment, and nothing else; the entry points README names are among them.
#[test]
fn make_help_lists_every_documented_target_with_its_comment() {
    let r = run(make(None, &["help"]), &["help"]).ok();
    let listed: Vec<(String, String)> = r
        .stdout
        .lines()
        .map(|l| {
            let (target, text) = l.trim().split_once(char::is_whitespace).unwrap_or((l.trim(), ""));
            (target.to_string(), text.trim().to_string())
        })
        .collect();
    let documented = documented_targets();
    assert_eq!(listed, documented, "make help printed:\n{}", r.stdout);
    for t in ["demo", "test", "test-unit", "test-aws", "lint", "customer", "help"] {
        assert!(documented.iter().any(|(d, _)| d == t), "`make {t}` has no ## comment");
    }
}

/// `make test-unit` runs the unit tests and nothing else: no tool install, no tool
/// check (`scripts/setup-tools.sh`), so it works on a machine with Rust alone.
#[test]
fn make_test_unit_runs_the_unit_tests_and_installs_nothing() {
    let r = run(make(None, &["-n", "test-unit"]), &["-n", "test-unit"]).ok();
    assert_eq!(r.stdout.trim(), "cargo test --locked --lib", "make -n test-unit would run:\n{}", r.stdout);
}
