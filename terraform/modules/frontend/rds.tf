resource "aws_db_subnet_group" "this" {
  name_prefix = "${local.name}-"
  description = "${local.name} database in the private subnets"
  subnet_ids  = var.private_subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${local.name}-mysql-"
  family      = "mysql${var.db_engine_version}"
  description = "${local.name} MySQL settings"

  parameter {
    name  = "require_secure_transport"
    value = "1"
  }

  parameter {
    name  = "slow_query_log"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_293:Deletion protection is per environment (deletion_protection): on in production, off in staging; a final snapshot is always taken.
  #checkov:skip=CKV_AWS_157:Multi-AZ is a per-environment choice (db_multi_az): production turns it on, staging stays single-AZ for cost.
  #checkov:skip=CKV_AWS_353:Performance Insights is not available on the small burstable classes (db.t3/t4g micro, small) used here.
  #checkov:skip=CKV_AWS_354:Performance Insights is off (see CKV_AWS_353); nothing to encrypt.
  identifier     = local.name
  engine         = "mysql"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_allocated_storage * 5
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this.arn

  db_name  = "app"
  username = "app_admin"
  # The password is generated and rotated by RDS and stored in Secrets Manager:
  # it is never in a variable, the state, the AMI or the user data.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.this.key_id

  db_subnet_group_name   = aws_db_subnet_group.this.name
  parameter_group_name   = aws_db_parameter_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az

  # One final snapshot per incarnation of the database (final_snapshot_identifier):
  # the customer's KMS key is created with it, so a part of its id is stable across
  # applies but new after a destroy and redeploy, whose destroy would otherwise
  # fail half-way with DBSnapshotAlreadyExists.
  backup_retention_period   = var.backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-final-${substr(aws_kms_key.this.key_id, 0, 8)}"

  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = ["error", "general", "slowquery"]
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn

  tags = { Name = local.name }
}
