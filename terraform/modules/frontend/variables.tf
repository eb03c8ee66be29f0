variable "customer" {
  description = "Customer name; every resource is named and tagged with it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,39}$", var.customer))
    error_message = "customer must match ^[a-z][a-z0-9-]{2,39}$."
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

variable "ami_id" {
  description = "AMI built by packer/template.json for this customer."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "vpc_id" {
  description = "VPC from the vpc stack."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (two AZs) for the load balancer."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An application load balancer needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (two AZs, egress through NAT) for instances and the database."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "The database subnet group needs subnets in at least two availability zones."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the application servers."
  type        = string
}

variable "min_size" {
  description = "Minimum number of application servers (also the initial desired count)."
  type        = number
}

variable "max_size" {
  description = "Maximum number of application servers."
  type        = number

  validation {
    condition     = var.max_size >= 1
    error_message = "max_size must be at least 1."
  }
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS; empty serves plain HTTP only."
  type        = string
  default     = ""
}

variable "db_instance_class" {
  description = "RDS instance class of the MySQL database."
  type        = string
}

variable "db_engine_version" {
  description = "RDS MySQL major version (8.4 is the current LTS; 8.0 left standard support in July 2026)."
  type        = string
  default     = "8.4"
}

variable "db_allocated_storage" {
  description = "Initial database storage in GiB (autoscaling up to 5x)."
  type        = number
  default     = 20
}

variable "db_multi_az" {
  description = "Run the database as Multi-AZ (a standby in the second AZ)."
  type        = bool
  default     = false
}

variable "backup_retention_days" {
  description = "Days of automated RDS backups."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "deletion_protection" {
  description = "Protect the load balancer and database against deletion (stamp destroy then needs it turned off first)."
  type        = bool
  default     = true
}

variable "health_check_path" {
  description = "Path the load balancer probes on each instance (through nginx)."
  type        = string
  default     = "/"
}

variable "app_config" {
  description = "Rendered app configuration: path relative to the app directory (e.g. config/database.yml) => file content."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for path in keys(var.app_config) :
      can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$", path)) && !strcontains(path, "..")
    ])
    error_message = "app_config keys must be relative paths (letters, digits, _ . - and /), without '..'."
  }
}
