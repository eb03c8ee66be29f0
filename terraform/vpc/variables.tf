variable "customer" {
  description = "Customer name; every resource is named and tagged with it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,39}$", var.customer))
    error_message = "customer must match ^[a-z][a-z0-9-]{2,39}$ (lower-case letter first, then 2-39 of a-z, 0-9 or -)."
  }
}

variable "region" {
  description = "AWS region of this customer's copy, e.g. eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. eu-west-1."
  }
}

variable "env" {
  description = "Environment: production or staging."
  type        = string

  validation {
    condition     = contains(["production", "staging"], var.env)
    error_message = "env must be \"production\" or \"staging\"."
  }
}

variable "cidr_block" {
  description = "IPv4 range of the VPC; split into /20s: two public, two private subnets."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 20
    error_message = "cidr_block must be an IPv4 CIDR of /20 or larger, e.g. 10.0.0.0/16."
  }
}
