# The same set of variables in production and staging (and in stamp's e2e
# stand-in stacks); only the defaults differ.

variable "customer" {
  description = "Customer name; every resource is named and tagged with it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,39}$", var.customer))
    error_message = "customer must match ^[a-z][a-z0-9-]{2,39}$."
  }
}

variable "region" {
  description = "AWS region of this customer's copy, e.g. eu-west-1."
  type        = string
}

variable "env" {
  description = "Environment of this stack."
  type        = string
  default     = "production"

  validation {
    condition     = var.env == "production"
    error_message = "This is the production stack: env must be \"production\"."
  }
}

variable "ami_id" {
  description = "AMI built by packer/template.json for this customer."
  type        = string
}

variable "vpc_id" {
  description = "vpc_id output of the vpc stack."
  type        = string
}

variable "public_subnet_ids" {
  description = "public_subnet_ids output of the vpc stack."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "private_subnet_ids output of the vpc stack."
  type        = list(string)
}

variable "instance_type" {
  description = "EC2 instance type of the application servers."
  type        = string
  default     = "t3.small"
}

variable "min_size" {
  description = "Minimum number of application servers (also the initial desired count)."
  type        = number
  default     = 2
}

variable "max_size" {
  description = "Maximum number of application servers."
  type        = number
  default     = 4
}

variable "certificate_arn" {
  description = "ACM certificate ARN for HTTPS (same region); empty serves plain HTTP."
  type        = string
  default     = ""
}

variable "db_instance_class" {
  description = "RDS instance class of the MySQL database."
  type        = string
  default     = "db.t3.small"
}

variable "app_config" {
  description = "App configuration rendered by stamp from templates/app: relative path => content."
  type        = map(string)
  default     = {}
}
