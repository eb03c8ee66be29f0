# Stand-in for terraform/vpc, for the end-to-end tests and `make demo` only.
# The hashicorp/aws provider cannot be downloaded offline, so this stack makes the
# same network in the emulated AWS with the aws CLI (local-exec) and declares
# exactly the real stack's variables and outputs (a test compares them).
# Ids are read back from a file named after the terraform_data id: unknown at the
# first plan (so outputs are "known after apply"), stable afterwards.

variable "customer" {
  type = string
}

variable "region" {
  type = string
}

variable "env" {
  type = string
}

variable "cidr_block" {
  type    = string
  default = "10.0.0.0/16"
}

resource "terraform_data" "network" {
  input = {
    customer   = var.customer
    region     = var.region
    cidr_block = var.cidr_block
  }
  # A new CIDR block means a new network, as with the real aws_vpc.
  triggers_replace = [var.customer, var.region, var.cidr_block]

  provisioner "local-exec" {
    command = "bash ./standin.sh create ${self.input.customer} ${self.input.region} ${self.input.cidr_block} .standin/${self.id}.json"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "bash ./standin.sh destroy ${self.input.customer} ${self.input.region}"
  }
}

locals {
  ids = jsondecode(file("${path.module}/.standin/${terraform_data.network.id}.json"))
}

output "vpc_id" {
  value = local.ids.vpc_id
}

output "build_subnet_id" {
  value = local.ids.public_subnet_ids[0]
}

output "public_subnet_ids" {
  value = local.ids.public_subnet_ids
}

output "private_subnet_ids" {
  value = local.ids.private_subnet_ids
}
