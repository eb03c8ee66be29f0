//! The deployable payload, checked offline with the real tools: the stand-in
//! stacks keep the real stacks' contract, and stamp's rendering of the real fleet
//! passes the payload checks (terraform fmt and load, checkov, packer validate,
//! shellcheck, nginx -t, ruby -c, YAML) in tests/payload/check.sh.

mod common;

use std::process::Command;

use common::{Emulator, repo};
use stamp::tools::terraform::StackInfo;

#[test]
fn standin_stacks_declare_exactly_the_real_stacks_variables_and_outputs() {
    for rel in ["vpc", "frontends/production", "frontends/staging"] {
        let real = StackInfo::read(&repo().join("terraform").join(rel)).unwrap();
        let standin = StackInfo::read(&repo().join("tests/standin/terraform").join(rel)).unwrap();
        assert_eq!(standin.variables, real.variables, "variables of {rel}");
        assert_eq!(standin.outputs, real.outputs, "outputs of {rel}");
        assert_eq!(real.backend.as_deref(), Some("s3"), "{rel} has a partial s3 backend");
        assert!(!real.declares_remote_state_vpc);
    }
    let real = StackInfo::read(&repo().join("terraform/vpc")).unwrap();
    for o in stamp::stages::contract::VPC_OUTPUTS {
        assert!(real.outputs.contains(o), "terraform/vpc outputs {o}");
    }
}

#[test]
fn rendering_the_real_fleet_passes_the_payload_checks() {
    let emu = Emulator::start();
    let work = tempfile::tempdir().unwrap();
    let vars = tempfile::tempdir().unwrap();
    // The real stamp.toml, with the work and vars directories moved out of the repo.
    let text = std::fs::read_to_string(repo().join("stamp.toml"))
        .unwrap()
        .replace("work = \".stamp\"", &format!("work = \"{}\"\nvars = \"{}\"", work.path().display(), vars.path().display()))
        // The app's git_id is looked up in its repository: the test's own, offline.
        .replace("app_repo = \"https://github.com/aircall/devops-test.git\"", &format!("app_repo = \"{}\"", common::app_repo().display()));
    let config = work.path().join("stamp.toml");
    std::fs::write(
        &config,
        text.replace("terraform = \"terraform\"", &format!("terraform = \"{}/terraform\"", repo().display()))
            .replace("packer = \"packer/template.json\"", &format!("packer = \"{}/packer/template.json\"", repo().display()))
            .replace(
                "customers = \"customers\"",
                &format!("customers = \"{}/customers\"\napp_templates = \"{}/templates/app\"", repo().display(), repo().display()),
            ),
    )
    .unwrap();
    let tools = common::tools();
    let out = common::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_stamp")))
        .args(["--config", &config.display().to_string(), "render", "acme"])
        .env("STAMP_AWS_ENDPOINT", &emu.url)
        .env("STAMP_TERRAFORM", tools.join("terraform"))
        .env("STAMP_PACKER", tools.join("packer"))
        .env("STAMP_AWS", tools.join("aws"))
        .env("CI", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "stamp render: {}", String::from_utf8_lossy(&out.stderr));
    let acme = work.path().join("acme");
    // The real stacks have partial backends: stamp completes them with -backend-config.
    let partial = std::fs::read_to_string(acme.join("terraform/vpc/stamp.s3.tfbackend")).unwrap();
    assert!(partial.contains("= \"acme/vpc\"") && partial.contains("use_lockfile"), "{partial}");
    assert!(!acme.join("terraform/vpc/stamp_backend.tf").exists());

    let checks = repo().join(".tools/checks-venv/bin/python");
    assert!(checks.exists(), "{} is missing: run scripts/setup-tools.sh --checks (make test does)", checks.display());
    let out = Command::new("bash")
        .arg(repo().join("tests/payload/check.sh"))
        .arg(acme.join("app"))
        .env("TERRAFORM", tools.join("terraform"))
        .env("PACKER", tools.join("packer"))
        .env("PYTHON", &checks)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "payload checks failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for check in [
        "nginx -t rendered",
        "ruby -c rendered",
        "YAML (after ERB)",
        "checkov",
        "packer validate",
        "terraform loads terraform/vpc",
        "actionlint",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with("PASS") && l.contains(check)), "no passing {check:?} in:\n{stdout}");
    }
}

/// `terraform validate` of every real stack and the module against the real
/// hashicorp/aws provider's schema (from the mirror scripts/setup-tools.sh found),
/// with the committed lock files checked, not rewritten. No emulator needed.
#[test]
fn every_real_stack_and_module_validates_against_the_real_provider_schema() {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg("-r").arg(repo().join("terraform")).arg(copy.path()).status().unwrap();
    assert!(status.success());
    let rc = common::tools().join("../terraformrc");
    for rel in ["vpc", "frontends/production", "frontends/staging", "modules/frontend"] {
        let dir = copy.path().join("terraform").join(rel);
        let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl")).ok();
        let run = |args: &[&str]| {
            let out = Command::new(common::tool("terraform"))
                .current_dir(&dir)
                .args(args)
                .env("TF_CLI_CONFIG_FILE", &rc)
                .env("TF_IN_AUTOMATION", "1")
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "terraform {args:?} in {rel}:\n{text}");
            text
        };
        // Roots keep their lock file as committed; the module has none of its own.
        let init = if lock.is_some() {
            run(&["init", "-backend=false", "-input=false", "-lockfile=readonly"])
        } else {
            run(&["init", "-backend=false", "-input=false"])
        };
        assert!(init.contains("hashicorp/aws v5.100.0"), "{rel} did not install hashicorp/aws 5.100.0:\n{init}");
        run(&["validate", "-no-color"]);
        if let Some(lock) = lock {
            assert_eq!(std::fs::read_to_string(dir.join(".terraform.lock.hcl")).unwrap(), lock, "init rewrote {rel}'s lock file");
            assert!(lock.contains("h1:edXOJWE4ORX8Fm+dpVpICzMZJat4AX0VRCAy/xkcOc0="), "{rel}: the lock lacks the linux_amd64 h1");
        }
    }
}
