# The stand-in frontend both env roots use (tests and demo only): it checks in the
# emulated AWS that the AMI and the VPC exist, that stamp's generated
# terraform_remote_state "vpc" agrees with the inputs, and makes a real (emulated)
# application load balancer for the public URL.

variable "name" {
  type = string
}

variable "region" {
  type = string
}

variable "ami_id" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "remote_vpc_id" {
  description = "vpc_id as read from the vpc stack's state by terraform_remote_state."
  type        = string
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "app_config" {
  type = map(string)
}

# Test hooks, through a real input: "fail.standin" makes the create fail, and
# "slow.standin" makes it take a minute (an interrupt then finds it busy).
variable "instance_type" {
  type = string
}

# Kept in the state only (as a real database's class and generated password are),
# so that tests/secrets.rs can check stamp writes no sensitive input or state value.
variable "db_instance_class" {
  type      = string
  sensitive = true
}

resource "terraform_data" "frontend" {
  input = {
    name        = var.name
    region      = var.region
    ami_id      = var.ami_id
    vpc_id      = var.vpc_id
    subnets     = join(" ", var.public_subnet_ids)
    config_hash = sha256(jsonencode(var.app_config))
    behaviour   = var.instance_type
    db_class    = var.db_instance_class
    # A value that exists nowhere but in the state (as a generated password would):
    # tests/secrets.rs computes it and looks for it in everything stamp wrote.
    state_canary = sensitive(sha256("stamp state canary ${var.name}"))
    # local-exec runs in the root's directory; destroy-time provisioners may only use self.
    script = "${path.module}/standin.sh"
  }

  lifecycle {
    precondition {
      condition     = var.remote_vpc_id == var.vpc_id
      error_message = "The vpc state (terraform_remote_state.vpc) does not hold vpc_id ${var.vpc_id}."
    }
    precondition {
      condition     = contains(keys(var.app_config), "config/database.yml")
      error_message = "app_config lacks config/database.yml."
    }
  }

  provisioner "local-exec" {
    command = "STANDIN_BEHAVIOUR=${self.input.behaviour} bash ${self.input.script} create ${self.input.name} ${self.input.region} ${self.input.ami_id} ${self.input.vpc_id} .standin/${self.id}.json ${self.input.subnets}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "bash ${self.input.script} destroy ${self.input.name} ${self.input.region}"
  }
}

locals {
  lb = jsondecode(file("${path.root}/.standin/${terraform_data.frontend.id}.json"))
}

output "dns_name" {
  value = local.lb.dns_name
}

# STANDIN_PUBLIC_URL when it was set at create (see standin.sh), else "".
output "public_url" {
  value = lookup(local.lb, "public_url", "")
}
