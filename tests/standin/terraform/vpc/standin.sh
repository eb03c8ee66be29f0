#!/usr/bin/env bash
# The stand-in vpc's work in the emulated AWS (see main.tf): a VPC tagged with the
# customer and two public and two private subnets in two zones. Idempotent: an
# existing VPC of the customer is reused.
set -euo pipefail
action=$1 customer=$2 region=$3
tag="Name=tag:stamp-standin,Values=$customer"

case "$action" in
create)
  cidr=$4 out=$5
  # What AWS makes one wait (benchmarks).
  sleep "${STAMP_STANDIN_DELAY:-0}"
  prefix=${cidr%.*.*}
  vpc=$(aws ec2 describe-vpcs --region "$region" --filters "$tag" --query 'Vpcs[0].VpcId' --output text)
  if [ "$vpc" = None ] || [ -z "$vpc" ]; then
    vpc=$(aws ec2 create-vpc --region "$region" --cidr-block "$cidr" \
      --tag-specifications "ResourceType=vpc,Tags=[{Key=stamp-standin,Value=$customer}]" \
      --query Vpc.VpcId --output text)
  fi
  subnet() { # name third-octet zone
    local id
    id=$(aws ec2 describe-subnets --region "$region" --filters "Name=vpc-id,Values=$vpc" "Name=tag:Name,Values=$1" \
      --query 'Subnets[0].SubnetId' --output text)
    if [ "$id" = None ] || [ -z "$id" ]; then
      id=$(aws ec2 create-subnet --region "$region" --vpc-id "$vpc" --cidr-block "$prefix.$2.0/24" \
        --availability-zone "$region$3" \
        --tag-specifications "ResourceType=subnet,Tags=[{Key=Name,Value=$1},{Key=stamp-standin,Value=$customer}]" \
        --query Subnet.SubnetId --output text)
    fi
    echo "$id"
  }
  pub_a=$(subnet public-a 1 a)
  pub_b=$(subnet public-b 2 b)
  priv_a=$(subnet private-a 11 a)
  priv_b=$(subnet private-b 12 b)
  mkdir -p "$(dirname "$out")"
  printf '{"vpc_id":"%s","public_subnet_ids":["%s","%s"],"private_subnet_ids":["%s","%s"]}\n' \
    "$vpc" "$pub_a" "$pub_b" "$priv_a" "$priv_b" > "$out"
  ;;
destroy)
  for vpc in $(aws ec2 describe-vpcs --region "$region" --filters "$tag" --query 'Vpcs[].VpcId' --output text); do
    for s in $(aws ec2 describe-subnets --region "$region" --filters "Name=vpc-id,Values=$vpc" --query 'Subnets[].SubnetId' --output text); do
      aws ec2 delete-subnet --region "$region" --subnet-id "$s"
    done
    aws ec2 delete-vpc --region "$region" --vpc-id "$vpc"
  done
  rm -rf .standin
  ;;
*)
  echo "usage: standin.sh create|destroy ..." >&2
  exit 2
  ;;
esac
