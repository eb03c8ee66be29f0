resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:No access-log bucket per customer yet (S3 bucket + policy per copy); the instances' nginx logs every request.
  #checkov:skip=CKV_AWS_150:Deletion protection is per environment (deletion_protection): on in production, off in staging so stamp destroy works in one step.
  #checkov:skip=CKV2_AWS_28:No WAF per customer: a web ACL costs ~$6/month plus rules per copy; add it when a customer needs it.
  name                       = substr("${local.name}-alb", 0, 32)
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60

  tags = { Name = "${local.name}-alb" }
}

resource "aws_lb_target_group" "app" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; inside the VPC it talks HTTP to nginx on instances that only accept the load balancer's security group.
  name_prefix          = "app-"
  vpc_id               = var.vpc_id
  port                 = 80
  protocol             = "HTTP"
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path = var.health_check_path
    # Any answer from Rails (even a 404 on /) means puma is up; nginx says 502/504 when it is not.
    matcher             = "200-499"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = { Name = "${local.name}-app" }

  lifecycle {
    create_before_destroy = true
  }
}

# With a certificate: HTTPS serves, HTTP redirects. Without: HTTP serves.
resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:HTTP redirects to HTTPS whenever certificate_arn is set; without a certificate plain HTTP is the documented fallback.
  #checkov:skip=CKV_AWS_103:TLS policy is set on the HTTPS listener (TLS 1.2+); this one is plain HTTP.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.app.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}
