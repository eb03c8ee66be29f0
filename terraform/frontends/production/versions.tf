terraform {
  # 1.10: the S3 backend's use_lockfile, which stamp sets (`stamp doctor` checks it).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # A partial backend: stamp completes it per customer (bucket, key, region,
  # encrypt, use_lockfile) with `terraform init -backend-config=stamp.s3.tfbackend`.
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
