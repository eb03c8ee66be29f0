#!/usr/bin/env bash
# `make demo`: deploys customer acme of the demo fleet (examples/demo) against a
# fresh emulated AWS, prints its outputs, and stops the emulator. Offline, no account.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
stamp=${STAMP_BIN:-$root/target/release/stamp}
state="$root/.stamp/demo-emulator"

scripts/emulator.sh start "$state"
trap 'scripts/emulator.sh stop "$state"' EXIT
STAMP_AWS_ENDPOINT=$(cat "$state/url")
export STAMP_AWS_ENDPOINT
export PATH="$PATH:$root/.tools/bin"

config=examples/demo/stamp.toml
"$stamp" --config "$config" deploy acme --auto-approve
echo
echo "Outputs of acme, read back from its state in the emulated S3:"
"$stamp" --config "$config" outputs acme
