# Stand-in for terraform/frontends/<env>, for the end-to-end tests and `make demo`
# only: the same variables and outputs as the real stack (a test compares them).
# It checks in the emulated AWS that the AMI and the VPC it is given exist, checks
# that stamp's generated terraform_remote_state "vpc" agrees with the inputs, and
# makes a real (emulated) application load balancer for the public URL.

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

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "min_size" {
  type    = number
  default = 2
}

variable "max_size" {
  type    = number
  default = 4
}

variable "certificate_arn" {
  type    = string
  default = ""
}

variable "db_instance_class" {
  type    = string
  default = "db.t3.small"
}

variable "app_config" {
  type    = map(string)
  default = {}
}

locals {
  name = substr("${var.customer}-${var.env}", 0, 32)
}

resource "terraform_data" "frontend" {
  input = {
    name        = local.name
    region      = var.region
    ami_id      = var.ami_id
    vpc_id      = var.vpc_id
    subnets     = join(" ", var.public_subnet_ids)
    config_hash = sha256(jsonencode(var.app_config))
  }

  lifecycle {
    precondition {
      condition     = data.terraform_remote_state.vpc.outputs.vpc_id == var.vpc_id
      error_message = "The vpc state (terraform_remote_state.vpc) does not hold vpc_id ${var.vpc_id}."
    }
    precondition {
      condition     = contains(keys(var.app_config), "config/database.yml")
      error_message = "app_config lacks config/database.yml."
    }
  }

  provisioner "local-exec" {
    command = "bash ./standin.sh create ${self.input.name} ${self.input.region} ${self.input.ami_id} ${self.input.vpc_id} .standin/${self.id}.json ${self.input.subnets}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "bash ./standin.sh destroy ${self.input.name} ${self.input.region}"
  }
}

locals {
  lb = jsondecode(file("${path.module}/.standin/${terraform_data.frontend.id}.json"))
}

output "public_url" {
  value = var.certificate_arn == "" ? "http://${local.lb.dns_name}" : "https://${local.lb.dns_name}"
}

output "ami_id" {
  value = var.ami_id
}

output "load_balancer_dns_name" {
  value = local.lb.dns_name
}

output "autoscaling_group_name" {
  value = "${local.name}-app"
}

output "database_endpoint" {
  value = "${local.name}-db.standin.invalid:3306"
}

output "database_secret_arn" {
  value     = "arn:aws:secretsmanager:${var.region}:123456789012:secret:${local.name}-db"
  sensitive = true
}
