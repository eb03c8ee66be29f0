#!/usr/bin/env bash
# The stand-in vpc's work in the emulated AWS (see main.tf): a VPC tagged with the
# customer and two public and two private subnets in two zones. Idempotent: an
# existing VPC of the customer is reused. The calls are made by ../standin_aws.py
# in one process (the AWS CLI cost half a second of CPU per call).
set -euo pipefail
action=$1 customer=$2 region=$3

case "$action" in
create)
  cidr=$4 out=$5
  # When each resource was started (tests/ci_cancel.rs: none after a cancel).
  if [ -n "${STANDIN_START_LOG:-}" ]; then echo "$(date +%s.%N) vpc $customer" >> "$STANDIN_START_LOG"; fi
  # What AWS makes one wait (benchmarks).
  sleep "${STAMP_STANDIN_DELAY:-0}"
  # Tests: STAMP_STANDIN_BARRIER=DIR:N waits (up to 60 s) until N customers' creates
  # have begun: they all overlap if, and only if, the customers run side by side.
  if [ -n "${STAMP_STANDIN_BARRIER:-}" ]; then
    barrier=${STAMP_STANDIN_BARRIER%:*} n=${STAMP_STANDIN_BARRIER##*:}
    touch "$barrier/$customer"
    arrived() { set -- "$barrier"/*; [ "$#" -ge "$n" ]; }
    for _ in $(seq 600); do
      arrived && break
      sleep 0.1
    done
  fi
  python3 ../standin_aws.py vpc-create "$customer" "$region" "$cidr" "$out"
  ;;
destroy)
  python3 ../standin_aws.py vpc-destroy "$customer" "$region"
  rm -rf .standin
  ;;
*)
  echo "usage: standin.sh create|destroy ..." >&2
  exit 2
  ;;
esac
