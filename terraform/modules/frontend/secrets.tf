# SECRET_KEY_BASE lives in Secrets Manager like the database password, but its
# value is never known to Terraform (nothing in variables, state, AMI or user
# data): the secret is created empty and the first instance to boot generates
# the value and stores it with a fixed idempotency token, so concurrent first
# boots agree on one value (see packer/files/stamp-secrets.py).
resource "aws_secretsmanager_secret" "secret_key_base" {
  #checkov:skip=CKV2_AWS_57:Rotating SECRET_KEY_BASE logs every user out and needs an app-aware rotation Lambda; rotate by hand (put-secret-value, instance refresh).
  name_prefix             = "stamp/${local.name}/secret-key-base-"
  description             = "${local.name} Rails SECRET_KEY_BASE (generated on first boot)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
}
