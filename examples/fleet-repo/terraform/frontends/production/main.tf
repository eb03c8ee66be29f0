# production: at least two web servers (stamp sets customer, region, env, ami_id
# and the vpc's outputs; [frontends.vars] the sizes).
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

module "web" {
  source = "../../modules/web"

  name          = "${var.customer}-${var.env}"
  ami_id        = var.ami_id
  vpc_id        = var.vpc_id
  subnet_ids    = var.public_subnet_ids
  instance_type = var.instance_type
  min_size      = var.min_size
  max_size      = var.max_size
}

output "public_url" {
  value = module.web.public_url
}

output "ami_id" {
  value = var.ami_id
}
