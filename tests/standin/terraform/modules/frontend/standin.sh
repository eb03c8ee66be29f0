#!/usr/bin/env bash
# The stand-in frontends' work in the emulated AWS (see main.tf): the AMI and the
# VPC must exist, then an application load balancer named after customer and env.
# STANDIN_PUBLIC_URL (from stamp's environment, through terraform's), when set, is
# the public_url instead of the load balancer's, which serves no HTTP in the
# emulator: the smoke tests point it at an HTTP server of their own.
set -euo pipefail
action=$1 name=$2 region=$3
# The emulator calls, in one process (the AWS CLI cost half a second of CPU per call).
api="$(dirname "${BASH_SOURCE[0]}")/../../standin_aws.py"

case "$action" in
create)
  ami=$4 vpc=$5 out=$6
  shift 6
  # When each resource was started (tests/ci_cancel.rs: none after a cancel).
  if [ -n "${STANDIN_START_LOG:-}" ]; then echo "$(date +%s.%N) frontend $name" >> "$STANDIN_START_LOG"; fi
  # What AWS makes one wait (benchmarks), and the test hooks (main.tf).
  sleep "${STAMP_STANDIN_DELAY:-0}"
  case "${STANDIN_BEHAVIOUR:-}" in
  fail.standin) echo "stand-in: instance_type fail.standin fails on purpose" >&2; exit 1 ;;
  slow.standin) sleep 60 ;;
  esac
  python3 "$api" lb-create "$name" "$region" "$ami" "$vpc" "$out" "$@"
  ;;
destroy)
  python3 "$api" lb-destroy "$name" "$region"
  rm -rf .standin
  ;;
*)
  echo "usage: standin.sh create|destroy ..." >&2
  exit 2
  ;;
esac
