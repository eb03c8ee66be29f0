# What stamp passes on: the image build's subnet, and the frontends' inputs.
output "vpc_id" {
  value = aws_vpc.this.id
}

output "build_subnet_id" {
  value = aws_subnet.public[0].id
}

output "public_subnet_ids" {
  value = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  value = aws_subnet.private[*].id
}
