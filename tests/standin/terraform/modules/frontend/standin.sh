#!/usr/bin/env bash
# The stand-in frontends' work in the emulated AWS (see main.tf): the AMI and the
# VPC must exist, then an application load balancer named after customer and env.
# STANDIN_PUBLIC_URL (from stamp's environment, through terraform's), when set, is
# the public_url instead of the load balancer's, which serves no HTTP in the
# emulator: the smoke tests point it at an HTTP server of their own.
set -euo pipefail
action=$1 name=$2 region=$3

case "$action" in
create)
  ami=$4 vpc=$5 out=$6
  shift 6
  # What AWS makes one wait (benchmarks), and the test hooks (main.tf).
  sleep "${STAMP_STANDIN_DELAY:-0}"
  case "${STANDIN_BEHAVIOUR:-}" in
  fail.standin) echo "stand-in: instance_type fail.standin fails on purpose" >&2; exit 1 ;;
  slow.standin) sleep 60 ;;
  esac
  found=$(aws ec2 describe-images --region "$region" --image-ids "$ami" --query 'Images[0].ImageId' --output text)
  [ "$found" = "$ami" ] || { echo "AMI $ami is not registered" >&2; exit 1; }
  found=$(aws ec2 describe-vpcs --region "$region" --vpc-ids "$vpc" --query 'Vpcs[0].VpcId' --output text)
  [ "$found" = "$vpc" ] || { echo "VPC $vpc does not exist" >&2; exit 1; }
  dns=$(aws elbv2 describe-load-balancers --region "$region" --names "$name" \
    --query 'LoadBalancers[0].DNSName' --output text 2>/dev/null) || dns=None
  if [ "$dns" = None ] || [ -z "$dns" ]; then
    dns=$(aws elbv2 create-load-balancer --region "$region" --name "$name" --subnets "$@" \
      --query 'LoadBalancers[0].DNSName' --output text)
  fi
  mkdir -p "$(dirname "$out")"
  printf '{"dns_name":"%s","public_url":"%s"}\n' "$dns" "${STANDIN_PUBLIC_URL:-}" > "$out"
  ;;
destroy)
  arn=$(aws elbv2 describe-load-balancers --region "$region" --names "$name" \
    --query 'LoadBalancers[0].LoadBalancerArn' --output text 2>/dev/null) || arn=None
  if [ "$arn" != None ] && [ -n "$arn" ]; then
    aws elbv2 delete-load-balancer --region "$region" --load-balancer-arn "$arn"
  fi
  rm -rf .standin
  ;;
*)
  echo "usage: standin.sh create|destroy ..." >&2
  exit 2
  ;;
esac
