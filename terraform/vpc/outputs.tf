output "vpc_id" {
  description = "ID of the customer's VPC."
  value       = aws_vpc.this.id
}

output "build_subnet_id" {
  description = "Public subnet where Packer launches its build instance."
  value       = aws_subnet.public[0].id
}

output "public_subnet_ids" {
  description = "Public subnets (load balancer, NAT gateway), one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (application instances, database), one per AZ."
  value       = aws_subnet.private[*].id
}
