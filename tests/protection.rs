//! Deletion protection is guarded where it is set: in AWS. A stand-in frontends stack
//! with one protectable resource (a real `aws_lb` through the real hashicorp/aws
//! provider, on the emulator) is deployed without protection; protection switched
//! on by hand afterwards (the state still says off) must refuse `stamp destroy`
//! whole, before terraform deletes anything. Switched off again, destroy proceeds.

mod common;

use common::{Emulator, FLEET_TOML, Fleet};

const FRONTENDS: &str = r#"
# Test stand-in: a frontends stack whose only resource AWS can protect from deletion.
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

variable "env" {
  type = string
}

variable "ami_id" {
  type = string
}

variable "public_subnet_ids" {
  type = list(string)
}

resource "aws_lb" "front" {
  name                       = "${var.customer}-${var.env}"
  load_balancer_type         = "application"
  subnets                    = var.public_subnet_ids
  enable_deletion_protection = false
}

output "ami_id" {
  value = var.ami_id
}

output "load_balancer_arn" {
  value = aws_lb.front.arn
}
"#;

/// Whether deletion protection is on for the load balancer, as AWS says.
fn protection(fleet: &Fleet, arn: &str) -> Option<bool> {
    let out = fleet.aws_raw(&["elbv2", "describe-load-balancer-attributes", "--load-balancer-arn", arn]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Attributes"].as_array().unwrap().iter().find(|a| a["Key"] == "deletion_protection.enabled").map(|a| a["Value"] == "true")
}

#[test]
fn protection_switched_on_by_hand_after_the_apply_refuses_the_destroy_before_anything_is_deleted() {
    let emu = Emulator::start();
    let tf = tempfile::tempdir().unwrap();
    common::standin_vpc_only(tf.path());
    std::fs::create_dir_all(tf.path().join("frontends/production")).unwrap();
    std::fs::write(tf.path().join("frontends/production/main.tf"), FRONTENDS).unwrap();
    let fleet = Fleet::with_toml(&emu, &FLEET_TOML.replace("{repo}/tests/standin/terraform", &tf.path().display().to_string()));
    fleet.customer("acme", "git_id = \"v1\"\n");
    let deployed = fleet.stamp(&["deploy", "acme", "--auto-approve", "--json"]).ok().report();
    let arn = deployed["outputs"]["frontends"]["load_balancer_arn"].as_str().unwrap().to_owned();
    assert_eq!(protection(&fleet, &arn), Some(false));
    let state = fleet.state("tfstate-123456789012-acme", "acme/frontends/production");
    assert!(state.to_string().contains("\"enable_deletion_protection\":false"), "the state says off: {state:#}");

    // Switched on by hand (the console, a colleague), after the apply.
    fleet.aws(&[
        "elbv2",
        "modify-load-balancer-attributes",
        "--load-balancer-arn",
        &arn,
        "--attributes",
        "Key=deletion_protection.enabled,Value=true",
    ]);
    assert_eq!(protection(&fleet, &arn), Some(true));
    let run = fleet.stamp(&["destroy", "acme", "--auto-approve"]).code(1);
    for needle in [
        format!("refusing to destroy acme: deletion protection is on for load balancer {arn} (production env); nothing was destroyed"),
        format!("elbv2 modify-load-balancer-attributes --load-balancer-arn {arn} --attributes Key=deletion_protection.enabled,Value=false"),
    ] {
        assert!(run.stderr.contains(&needle), "stderr lacks {needle:?}:\n{}", run.stderr);
    }
    // Nothing was destroyed: the load balancer, both states and the VPC are there,
    // and terraform never planned a destroy.
    assert_eq!(protection(&fleet, &arn), Some(true));
    for key in ["acme/vpc", "acme/frontends/production"] {
        let s = fleet.state("tfstate-123456789012-acme", key);
        assert!(!s["resources"].as_array().unwrap().is_empty(), "{key} still holds its resources");
    }
    let vpc_id = deployed["outputs"]["vpc"]["vpc_id"].as_str().unwrap().to_owned();
    let vpcs = fleet.aws_json(&["ec2", "describe-vpcs", "--vpc-ids", &vpc_id]);
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 1, "{vpcs:#}");
    assert!(!fleet.log("acme", "frontends").contains("-destroy"), "terraform ran a destroy:\n{}", fleet.log("acme", "frontends"));

    // Switched off again (as the hint says): the destroy goes through.
    fleet.aws(&[
        "elbv2",
        "modify-load-balancer-attributes",
        "--load-balancer-arn",
        &arn,
        "--attributes",
        "Key=deletion_protection.enabled,Value=false",
    ]);
    fleet.stamp(&["destroy", "acme", "--auto-approve"]).ok();
    assert_eq!(protection(&fleet, &arn), None, "the load balancer is gone");
}
