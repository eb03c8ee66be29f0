# Stand-in for terraform/frontends/<env>, for the end-to-end tests and `make demo`
# only: the same variables and outputs as the real stack (a test compares them),
# over the stand-in module ../../modules/frontend, as the real roots are over theirs.

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
  default = "t3.micro"
}

variable "min_size" {
  type    = number
  default = 1
}

variable "max_size" {
  type    = number
  default = 2
}

variable "certificate_arn" {
  type    = string
  default = ""
}

# Sensitive here only (the stand-in has no database): a customer-supplied value of
# a `sensitive = true` input, for the CI tests that check stamp masks it and never
# writes it down (tests/secrets.rs). The module keeps it in the state.
variable "db_instance_class" {
  type      = string
  default   = "db.t3.micro"
  sensitive = true
}

variable "app_config" {
  type    = map(string)
  default = {}
}

locals {
  name = substr("${var.customer}-${var.env}", 0, 32)
}

module "frontend" {
  source = "../../modules/frontend"

  name              = local.name
  region            = var.region
  ami_id            = var.ami_id
  vpc_id            = var.vpc_id
  remote_vpc_id     = data.terraform_remote_state.vpc.outputs.vpc_id
  public_subnet_ids = var.public_subnet_ids
  app_config        = var.app_config
  instance_type     = var.instance_type
  db_instance_class = var.db_instance_class
}

output "public_url" {
  # The load balancer's, or STANDIN_PUBLIC_URL (a test's own HTTP server: moto's
  # load balancers serve no HTTP).
  value = module.frontend.public_url != "" ? module.frontend.public_url : (var.certificate_arn == "" ? "http://${module.frontend.dns_name}" : "https://${module.frontend.dns_name}")
}

output "ami_id" {
  value = var.ami_id
}

output "load_balancer_dns_name" {
  value = module.frontend.dns_name
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
