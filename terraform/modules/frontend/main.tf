locals {
  name  = "${var.customer}-${var.env}"
  https = var.certificate_arn != ""
  tags = {
    customer   = var.customer
    env        = var.env
    managed_by = "stamp"
  }
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # One marker per app revision: the first instance booting a new AMI runs the
  # migrations, the others wait for "done" (see user-data.sh.tftpl).
  migration_parameter_prefix = "/stamp/${var.customer}/${var.env}/migrations"
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# One customer-managed key for this customer's environment: database storage,
# the database master secret, the SECRET_KEY_BASE secret and Performance Insights.
data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy: Resource "*" means this key only, and the account root statement is the standard delegation to IAM.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: Resource "*" means this key only.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: the account root statement is the standard delegation to IAM, without it the key is unmanageable.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${local.name} database and application secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/stamp/${local.name}"
  target_key_id = aws_kms_key.this.key_id
}
