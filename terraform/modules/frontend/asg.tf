resource "aws_launch_template" "app" {
  name_prefix   = "${local.name}-app-"
  description   = "${local.name} application servers"
  image_id      = var.ami_id
  instance_type = var.instance_type
  # Every change (new AMI, new app_config) makes a new default version, which
  # the group's instance refresh rolls out.
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.app.arn
  }

  vpc_security_group_ids = [aws_security_group.app.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_size           = 16
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  user_data = base64encode(templatefile("${path.module}/user-data.sh.tftpl", {
    region                     = local.region
    customer                   = var.customer
    env                        = var.env
    app_config                 = var.app_config
    db_secret_arn              = aws_db_instance.this.master_user_secret[0].secret_arn
    db_host                    = aws_db_instance.this.address
    db_port                    = aws_db_instance.this.port
    db_name                    = aws_db_instance.this.db_name
    secret_key_base_arn        = aws_secretsmanager_secret.secret_key_base.arn
    migration_parameter_prefix = local.migration_parameter_prefix
  }))

  # default_tags do not reach instances and volumes launched by the group.
  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]
    content {
      resource_type = tag_specifications.value
      tags          = merge(local.tags, { Name = "${local.name}-app" })
    }
  }

  tags = { Name = "${local.name}-app" }
}

resource "aws_autoscaling_group" "app" {
  name_prefix = "${local.name}-app-"
  min_size    = var.min_size
  max_size    = var.max_size
  # desired_capacity is left to AWS (min_size at creation, then the scaling
  # policy below) so that an apply does not undo a scale-out.
  vpc_zone_identifier = var.private_subnet_ids
  target_group_arns   = [aws_lb_target_group.app.arn]

  health_check_type = "ELB"
  # First boot of a revision runs the migrations before puma starts.
  health_check_grace_period = 900
  default_instance_warmup   = 120

  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${local.name}-app" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # The RDS database must exist before the first instance tries to migrate.
  depends_on = [aws_db_instance.this, aws_iam_role_policy.app]
}

# Scale between min_size and max_size on CPU.
resource "aws_autoscaling_policy" "cpu" {
  name                   = "cpu-target-60"
  autoscaling_group_name = aws_autoscaling_group.app.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = 60
  }
}
