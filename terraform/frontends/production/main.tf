locals {
  # production settings that are not stamp inputs.
  deletion_protection   = true
  backup_retention_days = 14
  db_multi_az           = true
}

module "frontend" {
  source = "../../modules/frontend"

  customer           = var.customer
  env                = var.env
  ami_id             = var.ami_id
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  instance_type      = var.instance_type
  min_size           = var.min_size
  max_size           = var.max_size
  certificate_arn    = var.certificate_arn
  db_instance_class  = var.db_instance_class
  app_config         = var.app_config

  deletion_protection   = local.deletion_protection
  backup_retention_days = local.backup_retention_days
  db_multi_az           = local.db_multi_az
}
