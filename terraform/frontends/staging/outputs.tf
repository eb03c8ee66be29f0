output "public_url" {
  description = "Where the application answers."
  value       = module.frontend.public_url
}

output "ami_id" {
  description = "AMI the instances run."
  value       = module.frontend.ami_id
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer."
  value       = module.frontend.load_balancer_dns_name
}

output "autoscaling_group_name" {
  description = "Auto-scaling group of the application servers."
  value       = module.frontend.autoscaling_group_name
}

output "database_endpoint" {
  description = "MySQL endpoint, host:port."
  value       = module.frontend.database_endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret holding the database master credentials."
  value       = module.frontend.database_secret_arn
}
