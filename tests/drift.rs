//! `stamp drift`'s exit codes with real drift: 3 when a customer's infrastructure
//! changed behind its state, and 1 when a customer could not be checked, even if
//! another one drifted (a fleet that could not be checked whole is not reported as
//! merely drifted). The frontends stand-in holds one real resource (an SSM parameter,
//! through the real hashicorp/aws provider on the emulator) that is changed by hand.

mod common;

use common::{Emulator, FLEET_TOML, Fleet};

const FRONTENDS: &str = r#"
# Test stand-in: a frontends stack with one resource whose refresh can drift.
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "customer" {
  type = string
}

variable "region" {
  type = string
}

variable "ami_id" {
  type = string
}

resource "aws_ssm_parameter" "release" {
  name  = "/stamp/${var.customer}/release"
  type  = "String"
  value = var.ami_id
}

output "ami_id" {
  value = var.ami_id
}
"#;

#[test]
fn drift_exits_3_for_a_drifted_customer_and_1_when_another_cannot_be_checked() {
    let emu = Emulator::start();
    let tf = tempfile::tempdir().unwrap();
    common::standin_vpc_only(tf.path());
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(tf.path().join("frontends/production/main.tf"), FRONTENDS).unwrap();
    let fleet = Fleet::with_toml(&emu, &FLEET_TOML.replace("{repo}/tests/standin/terraform", &tf.path().display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n");
    fleet.stamp(&["deploy", "acme", "globex", "--auto-approve"]).ok();
    fleet.stamp(&["drift", "acme", "globex"]).ok();

    // Changed by hand behind acme's state: drift, exit 3, the resource named.
    fleet.aws(&["ssm", "put-parameter", "--name", "/stamp/acme/release", "--value", "changed-by-hand", "--type", "String", "--overwrite"]);
    let drifted = fleet.stamp(&["drift", "acme", "globex"]).code(3);
    assert!(drifted.stdout.contains("acme") && drifted.stdout.contains("aws_ssm_parameter.release"), "{}", drifted.stdout);
    assert!(drifted.stderr.contains("drift found: acme"), "{}", drifted.stderr);

    // globex cannot be checked (its vpc state is not a state): exit 1, not 3, though
    // acme drifted; both are reported.
    let junk = fleet.path().join("junk");
    std::fs::write(&junk, "not a state").unwrap();
    fleet.aws(&["s3", "cp", junk.to_str().unwrap(), "s3://tfstate-123456789012-globex/globex/vpc"]);
    let run = fleet.stamp(&["drift", "acme", "globex"]).code(1);
    assert!(run.stderr.contains("drift could not be checked for globex"), "{}", run.stderr);
    assert!(run.stdout.contains("aws_ssm_parameter.release"), "acme's drift is still shown:\n{}", run.stdout);
    let data = fleet.stamp(&["drift", "acme", "globex", "--json"]).code(1).json();
    assert_eq!(data["customers"][0]["drift"], "drifted", "{data:#}");
}
