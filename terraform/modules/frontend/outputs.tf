output "public_url" {
  description = "Where the application answers."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "ami_id" {
  description = "AMI the instances run."
  value       = var.ami_id
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer (point the customer's CNAME here)."
  value       = aws_lb.this.dns_name
}

output "autoscaling_group_name" {
  description = "Auto-scaling group of the application servers."
  value       = aws_autoscaling_group.app.name
}

output "database_endpoint" {
  description = "MySQL endpoint, host:port."
  value       = aws_db_instance.this.endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret (managed by RDS) holding the database master credentials."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
