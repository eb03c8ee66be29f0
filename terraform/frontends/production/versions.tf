terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # No backend block here: stamp writes stamp_backend.tf (terraform { backend "s3" { ... } })
  # into its working copy with the customer's state bucket and key.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      customer   = var.customer
      env        = var.env
      managed_by = "stamp"
    }
  }
}
