variable "name" {
  description = "<customer>-<env>: names and tags."
  type        = string
}

variable "ami_id" {
  description = "The image stamp baked (nginx and the site)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Two public subnets in two zones."
  type        = list(string)
}

variable "instance_type" {
  type = string
}

variable "min_size" {
  type = number
}

variable "max_size" {
  type = number
}
