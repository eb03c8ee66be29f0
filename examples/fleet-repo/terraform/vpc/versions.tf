terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Partial: stamp completes it per customer (bucket, key, region, locking).
  backend "s3" {}
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
