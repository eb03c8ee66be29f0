# customer, region and env are set by stamp; cidr_block by [vpc.vars].
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
  description = "The customer's network (a /16)."
  type        = string
  default     = "10.0.0.0/16"
}
