//! Bad input is refused with exit 2 and a message naming the file, key or value,
//! before anything is created in AWS; a failed stage says how to re-run it.

mod common;

use common::{Emulator, FLEET_TOML, Fleet, Run};

fn assert_nothing_created(fleet: &Fleet) {
    assert!(fleet.buckets().is_empty(), "a bucket was created: {:?}", fleet.buckets());
}

#[test]
fn bad_customer_names_exit_2_and_create_no_bucket() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    for bad in ["Acme", "ab", "acme_corp", "1acme", "acme-", &"a".repeat(41), "../acme"] {
        let run = fleet.stamp(&["deploy", bad, "--auto-approve"]).code(2);
        assert!(run.stderr.contains("invalid customer name") && run.stderr.contains("lower-case"), "{bad}: {}", run.stderr);
    }
    // A valid name without a file.
    fleet.stamp(&["deploy", "initech", "--auto-approve"]).code(2).stderr_has("customers/initech.toml").stderr_has("known customers: acme");
    // A customer file whose name is not a valid customer.
    fleet.customer("Bad_Name", "git_id = \"v1\"\n");
    fleet.stamp(&["list"]).code(2).stderr_has("invalid");
    assert_nothing_created(&fleet);
}

#[test]
fn bad_configuration_exits_2_naming_file_line_and_key() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");

    // Unknown key in stamp.toml.
    fleet.write_config(&FLEET_TOML.replace("[fleet]\n", "[fleet]\nregoin = \"eu-west-1\"\n"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("stamp.toml: line 3").stderr_has("regoin");
    // Wrong type.
    fleet.write_config(&FLEET_TOML.replace("envs = [\"production\", \"staging\"]", "envs = \"production\""));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("stamp.toml: line 5").stderr_has("envs");
    // A builder that is not in the template.
    fleet.write_config(&FLEET_TOML.replace("only = [\"emulator\"]", "only = [\"amazon\"]"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("[packer] only: `amazon`").stderr_has("emulator");
    // A state bucket template that cannot render a bucket name.
    fleet.write_config(&FLEET_TOML.replace("[fleet]\n", "[fleet]\nstate_bucket = \"State_{{customer}}\"\n"));
    fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2).stderr_has("state_bucket").stderr_has("not a valid S3 bucket name");
    fleet.write_config(FLEET_TOML);

    // Customer files.
    let cases = [
        ("git_id = \"v1\"\nregion = \"Ireland\"\n", "line 2", "region"),
        ("git_id = \"v1\"\nenv = \"qa\"\n", "line 2", "production, staging"),
        ("git_id = 42\n", "line 1", "git_id"),
        ("git_id = \"v1\"\nsize = 3\n", "line 2", "size"),
        ("region = \"eu-west-1\"\n", "acme.toml", "git_id"),
        ("git_id = \"v1\"\n[vpc.vars]\n\ncidr = \"10.0.0.0/16\"\n", "acme.toml:4", "`cidr` is not a variable of"),
        ("git_id = \"v1\"\n[frontends.vars]\nami_id = \"ami-12345678\"\n", "acme.toml:3", "set by stamp"),
        ("git_id = \"v1\"\n[packer.vars]\nnot_a_var = 1\n", "acme.toml:3", "not a variable of"),
        ("git_id = \"v1\"\n[app]\npuma_threads = 0\n", "line 3", "puma_threads"),
    ];
    for (text, place, key) in cases {
        fleet.customer("acme", text);
        let run = fleet.stamp(&["deploy", "acme", "--auto-approve"]).code(2);
        assert!(run.stderr.contains(place) && run.stderr.contains(key), "for {text:?} expected {place:?} and {key:?} in:\n{}", run.stderr);
    }
    // An env the fleet does not list.
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme", "--env", "qa", "--auto-approve"]).code(2).stderr_has("--env qa");
    // A missing fleet file.
    fleet.stamp(&["--config", "nope.toml", "list"]).code(2).stderr_has("nope.toml").stderr_has("hint:");
    assert_nothing_created(&fleet);
}

#[test]
fn without_a_terminal_deploy_and_destroy_need_auto_approve() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.stamp(&["deploy", "acme"]).code(2).stderr_has("--auto-approve");
    fleet.stamp(&["destroy", "acme"]).code(2).stderr_has("--auto-approve");
    assert_nothing_created(&fleet);
}

#[test]
fn a_failed_stage_prints_the_command_the_last_lines_and_the_log() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // The emulator refuses this CIDR block, so the vpc stand-in's apply fails.
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.0.0.0/8\"\n");
    let run = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).code(1);
    assert!(run.stderr.contains("stage `vpc` failed: exit status 1"), "{}", run.stderr);
    assert!(run.stderr.contains("command: cd ") && run.stderr.contains("apply -input=false -json"), "{}", run.stderr);
    assert!(run.stderr.contains("last lines of output:"), "{}", run.stderr);
    assert!(run.stderr.contains("local-exec provisioner error"), "{}", run.stderr);
    let log = fleet.path().join(".stamp/acme/logs/vpc.log");
    assert!(run.stderr.contains(&format!("full log: {}", log.display())), "{}", run.stderr);
    assert!(std::fs::read_to_string(&log).unwrap().contains("InvalidVpc.Range"), "the log holds the aws CLI's own error");
    let report = run.report();
    assert_eq!(report["status"], "failed");
    assert_eq!(common::stage_status(&report, "vpc"), "failed");
    assert!(report["stages"].as_array().unwrap().iter().all(|s| s["name"] != "ami"), "no stage runs after a failure");
    // The printed command re-runs by hand (cd DIR && ... terraform apply ... stamp.tfplan).
    let line = run.stderr.lines().find(|l| l.trim_start().starts_with("command: ")).unwrap();
    let cmd = line.trim_start().trim_start_matches("command: ");
    assert!(cmd.contains("AWS_ENDPOINT_URL=") && cmd.ends_with("stamp.tfplan"), "{cmd}");
}

#[test]
fn stacks_with_only_some_inputs_get_only_those_without_warnings() {
    let emu = Emulator::start();
    let tf = tempfile::tempdir().unwrap();
    // vpc: the stand-in with a partial backend (completed with -backend-config);
    // frontends: a stack that takes only customer and ami_id.
    common::standin_vpc_only(tf.path());
    std::fs::write(tf.path().join("vpc/backend.tf"), "terraform {\n  backend \"s3\" {}\n}\n").unwrap();
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(
        tf.path().join("frontends/production/main.tf"),
        "variable \"customer\" {\n  type = string\n}\n\nvariable \"ami_id\" {\n  type = string\n}\n\noutput \"public_url\" {\n  value = \"http://${var.customer}.example.invalid/${var.ami_id}\"\n}\n",
    )
    .unwrap();
    let toml = FLEET_TOML.replace("{repo}/tests/standin/terraform", &tf.path().display().to_string());
    let fleet = Fleet::with_toml(&emu, &toml);
    fleet.customer("acme", "git_id = \"v1\"\n");
    let report = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let url = report["outputs"]["frontends"]["public_url"].as_str().unwrap();
    assert!(url.starts_with("http://acme.example.invalid/ami-"), "{url}");
    let vars = std::fs::read_to_string(fleet.path().join(".stamp/acme/terraform/frontends/production/stamp.tfvars.json")).unwrap();
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    let keys: Vec<&String> = vars.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["ami_id", "customer"]);
    assert!(fleet.log("acme", "vpc").contains("-backend-config=stamp.s3.tfbackend"));
    assert_eq!(common::stage_status(&report, "vpc"), "ok");
    let log = fleet.log("acme", "frontends");
    assert!(!log.contains("undeclared variable") && !log.contains("\"@level\":\"warn\""), "{log}");
}

/// With no provider mirror and no registry, init fails: the error says how to give
/// terraform the provider (a mirror), instead of leaving the operator with
/// terraform's "Failed to query available provider packages".
#[test]
fn a_provider_that_can_be_neither_downloaded_nor_found_in_a_mirror_gets_a_hint() {
    let emu = Emulator::start();
    let fleet = Fleet::with_toml(&emu, &common::FLEET_TOML.replace("{repo}/tests/standin/terraform", "{repo}/terraform"));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let empty = tempfile::tempdir().unwrap();
    // hashicorp/aws only from an empty mirror: what a machine without internet and without a mirror sees.
    let rc = fleet.path().join("no-mirror.tfrc");
    std::fs::write(&rc, format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n", empty.path().display()))
        .unwrap();
    let out = fleet.stamp_cmd(&["deploy", "acme", "--auto-approve"]).env("TF_CLI_CONFIG_FILE", &rc).output().unwrap();
    let run = Run::from(out, &["deploy", "acme"]).code(1);
    assert!(run.stderr.contains("Failed to query available provider packages"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: terraform could neither download the provider nor find it in a mirror"), "{}", run.stderr);
    assert!(run.stderr.contains("STAMP_TF_PROVIDER_MIRROR"), "{}", run.stderr);
}
