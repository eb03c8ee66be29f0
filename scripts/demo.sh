#!/usr/bin/env bash
# `make demo`: deploys customer acme of the demo fleet (examples/demo: the real
# Terraform stacks, the real packer template's emulator builder) against a fresh
# emulated AWS, prints where it answers, and stops the emulator. Offline, no account.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
stamp=${STAMP_BIN:-$root/target/release/stamp}
state="$root/.stamp/demo-emulator"

# Over HTTPS, as AWS: the state bucket gets its TLS-only policy. The CA is the
# emulator's own; terraform, packer, the AWS CLI and stamp read AWS_CA_BUNDLE.
scripts/emulator.sh start "$state" --tls
trap 'scripts/emulator.sh stop "$state"' EXIT
STAMP_AWS_ENDPOINT=$(cat "$state/url")
export STAMP_AWS_ENDPOINT AWS_CA_BUNDLE="$state/ca.pem"
export PATH="$PATH:$root/.tools/bin"
# The demo runs offline: terraform takes hashicorp/aws from this machine's provider
# mirror, through the project's configuration (written by scripts/setup-tools.sh),
# whatever the user's own says. Every other make target leaves the user's in place.
export TF_CLI_CONFIG_FILE="$root/.tools/terraformrc"

# The demo's app repository: a local one (offline), whose master stamp resolves to a
# commit before it bakes (examples/demo/stamp.toml names it).
scripts/app-repo.sh "$root/.stamp/demo-app"
config=examples/demo/stamp.toml
started=$(date +%s)
"$stamp" --config "$config" deploy acme --auto-approve
took=$(( $(date +%s) - started ))
outputs=$("$stamp" --config "$config" outputs acme --json)
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)["customers"][0]["outputs"]["frontends/production"][sys.argv[1]])' "$1" <<<"$outputs"; }
echo
echo "acme is deployed (in ${took}s), read back from its state in the emulated S3:"
echo "  public URL:          $(field public_url)"
echo "  load balancer:       $(field load_balancer_dns_name)"
echo "  auto-scaling group:  $(field autoscaling_group_name)"
echo "  database endpoint:   $(field database_endpoint)"
echo "  AMI:                 $(field ami_id)"
echo
echo "All outputs:"
"$stamp" --config "$config" outputs acme
