terraform {
  # 1.10: the S3 backend's use_lockfile, which stamp sets (`stamp doctor` checks it).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}
