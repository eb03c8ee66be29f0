# staging: one small web server (stamp sets customer, region, env, ami_id and the
# vpc's outputs).
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

module "web" {
  source = "../../modules/web"

  name          = "${var.customer}-${var.env}"
  ami_id        = var.ami_id
  vpc_id        = var.vpc_id
  subnet_ids    = var.public_subnet_ids
  instance_type = "t3.micro"
  min_size      = 1
  max_size      = 1
}

output "public_url" {
  value = module.web.public_url
}

output "ami_id" {
  value = var.ami_id
}
