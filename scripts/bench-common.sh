# Sourced by the benchmark scripts (scripts/bench.sh, bench-fleet.sh,
# bench-visibility.sh, bench-fleet-real.sh, bench-rollout.sh): what each does before it measures anything, in one place, so
# that every benchmark runs with the same tools, the same clean environment and an
# emulator started the one way the demo starts it (scripts/emulator.sh).
#
# The caller sets BENCH_NAME (its prefix in messages), sources this file, checks its
# own BENCH_* settings with `die`, then calls `bench_setup`. It then has:
#   root tools py stamp        the repository, .tools/bin, .tools' python, the stamp binary
#   die MSG, say MSG           messages on stderr (die exits 1)
#   need_pkg CMD PACKAGE       the Debian package installed when CMD is missing (as root)
#   bench_tmpdir               $dir, a temporary directory removed at exit (BENCH_KEEP=1
#                              keeps it), with every emulator started below stopped
#   emulator_start NAME [--tls], emulator_stop NAME, emulator_reset
#                              an emulator in $dir/NAME through scripts/emulator.sh;
#                              start sets $endpoint and $moto_pid
#   fleet_file FILE STACKS WORK CUSTOMERS [ENDPOINT [TERRAFORM]]
#                              the fleet file of a benchmark on the emulator
#   fleet_customers DIR N [ENV]  customers cust01..custNN, their names in `names`
#   stats KIND COLUMN [FILE], f2 V, mib KB, ratio A B, verdict V OP LIMIT   the figures
#   cpu_seconds TIME-FILE      user + system seconds in a `/usr/bin/time -v` report
#   bench_describe             $cpu $ncpu $v_tf $v_packer $v_aws $v_moto $v_stamp $rev
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools/bin"
py="$root/.tools/venv/bin/python"

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
say() { echo "$BENCH_NAME: $*" >&2; }

need_pkg() { # command debian-package
  command -v "$1" > /dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
    say "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" > /dev/null ||
      { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" > /dev/null; }
  fi
  command -v "$1" > /dev/null 2>&1 || die "$1 is missing (Debian package $2)"
}

# The measuring tools, the project's tools (.tools/, installed by scripts/setup-tools.sh
# when any is missing), the stamp binary (STAMP_BIN, else a release build), and a clean
# environment: stamp's own choices (emulator credentials, its plugin cache) apply, and
# terraform runs with the CLI configuration setup-tools wrote (the provider mirror).
bench_setup() {
  local t
  need_pkg /usr/bin/time time
  need_pkg jq jq
  need_pkg curl curl
  for t in "$tools/terraform" "$tools/aws" "$tools/packer" "$tools/moto_server" "$py" "$root/.tools/terraformrc"; do
    [ -e "$t" ] || { "$root/scripts/setup-tools.sh" 2> /dev/null || "$root/scripts/setup-tools.sh"; break; }
  done
  [ -x "$py" ] || die "$py is missing: run scripts/setup-tools.sh"
  if [ -n "${STAMP_BIN:-}" ]; then
    stamp=$STAMP_BIN
  else
    say "cargo build --release"
    (cd "$root" && cargo build --release --quiet) || die "cargo build --release failed"
    stamp="$root/target/release/stamp"
  fi
  [ -x "$stamp" ] || die "$stamp is not executable"

  unset TF_CLI_CONFIG_FILE TF_PLUGIN_CACHE_DIR AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
    AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_REGION AWS_PAGER AWS_CA_BUNDLE TF_IN_AUTOMATION TF_INPUT \
    CHECKPOINT_DISABLE PACKER_NO_COLOR STAMP_CONFIG STAMP_AWS STAMP_PACKER STAMP_TERRAFORM \
    STAMP_AWS_ENDPOINT STAMP_TOOL_MEMORY_MIB STAMP_PLAN_JOBS STANDIN_BEHAVIOUR STAMP_STANDIN_DELAY MAKEFLAGS MFLAGS MAKELEVEL
  export PATH="$tools:$PATH"
  export TF_CLI_CONFIG_FILE="$root/.tools/terraformrc"
}

_bench_emulators=()
_bench_cleanup() {
  local name
  for name in "${_bench_emulators[@]}"; do
    emulator_stop "$name" || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
}
bench_tmpdir() {
  dir=$(mktemp -d "${TMPDIR:-/tmp}/stamp-$BENCH_NAME.XXXXXX")
  trap _bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# emulator_start NAME [--tls]: moto with the project's patches on a free loopback port.
endpoint=""
moto_pid=""
emulator_start() {
  local at="$dir/$1"
  _bench_emulators+=("$1")
  shift
  "$root/scripts/emulator.sh" start "$at" "$@" || die "the emulator did not start (see $at/emulator.log)"
  endpoint=$(< "$at/url")
  moto_pid=$(< "$at/pid")
}
# emulator_stop NAME: stopped, and gone before the next measurement starts.
emulator_stop() {
  local at="$dir/$1" pid=""
  [ -f "$at/pid" ] && pid=$(< "$at/pid")
  "$root/scripts/emulator.sh" stop "$at"
  if [ -n "$pid" ]; then
    for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  fi
  [ "$pid" != "$moto_pid" ] || moto_pid=""
}
# emulator_reset: every resource of the emulator dropped (moto's reset API).
emulator_reset() {
  curl -sf -o /dev/null -X POST "$endpoint/moto-api/reset" || die "cannot reset the emulator on $endpoint"
}

# fleet_file FILE STACKS(standin|real) WORK CUSTOMERS [ENDPOINT [TERRAFORM]]: the fleet
# file of a benchmark on the emulator: the app repo $dir/app (scripts/app-repo.sh), the
# stand-in stacks (tests/standin) or the real ones, work and vars under WORK, the
# customers' files in CUSTOMERS, the emulator at ENDPOINT (default $endpoint), the
# project's tools (TERRAFORM instead of its terraform), packer's emulator build only and
# no smoke test. A caller appends any further section.
fleet_file() {
  local terraform packer
  case $2 in
    standin) terraform="$root/tests/standin/terraform" packer="$root/tests/standin/packer/template.json" ;;
    real) terraform="$root/terraform" packer="$root/packer/template.json" ;;
    *) die "fleet_file: stacks '$2' (standin or real)" ;;
  esac
  cat > "$1" << EOF
[fleet]
region = "eu-west-1"
default_env = "production"
envs = ["production", "staging"]
app_repo = "$dir/app"

[paths]
terraform = "$terraform"
packer = "$packer"
app_templates = "$root/templates/app"
customers = "$4"
work = "$3/work"
vars = "$3/vars"

[aws]
endpoint = "${5:-$endpoint}"

[tools]
terraform = "${6:-$tools/terraform}"
packer = "$tools/packer"
aws = "$tools/aws"

[packer]
only = ["emulator"]

[smoke]
# moto's load balancers serve no HTTP: nothing answers at public_url in the
# emulator, so the check after the frontends is off here (on AWS it is on).
enabled = false
EOF
}

# fleet_customers DIR N [ENV]: the customers' files cust01..custNN in DIR, all of one
# git_id (so one image), a /16 CIDR block each, in ENV if given; their names in the
# array `names` (the caller's local one, if it declared it).
fleet_customers() {
  local i c
  names=()
  for i in $(seq "$2"); do
    c=$(printf 'cust%02d' "$i")
    names+=("$c")
    {
      [ -z "${3:-}" ] || printf 'env = "%s"\n' "$3"
      printf 'git_id = "v1"\n\n[vpc.vars]\ncidr_block = "10.%d.0.0/16"\n' "$i"
    } > "$1/$c.toml"
  done
}

stats() { # KIND COLUMN [FILE] -> "median min max"
  awk -F'\t' -v k="$1" -v c="$2" '$1 == k {print $c}' "${3:-$dir/results.tsv}" | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) {print "- - -"; exit} m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m, a[1], a[NR]}'
}
f2() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; } # A / B
cpu_seconds() { awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$1"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
verdict() { # VALUE OP LIMIT
  if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {exit !((op == "<=") ? v <= l : v < l)}'; then echo met; else echo MISSED; fi
}

# The machine, the tools' versions and the revision stamp was built from, for a report.
# shellcheck disable=SC2034 # the caller's report reads them
bench_describe() {
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  ncpu=$(nproc)
  v_tf=$("$tools/terraform" version 2> /dev/null | awk 'NR == 1')
  v_packer=$("$tools/packer" version 2> /dev/null | awk 'NR == 1')
  v_aws=$("$tools/aws" --version 2>&1 | awk '{print $1}')
  v_moto=$("$py" -c 'import importlib.metadata as m; print(m.version("moto"))' 2> /dev/null || echo '?')
  v_stamp=$("$stamp" --version 2> /dev/null || echo stamp)
  rev=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')
  git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2> /dev/null || rev="$rev+local changes"
}
