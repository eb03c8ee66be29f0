#!/usr/bin/env bash
# The real-stack fleet benchmark (issue 19; docs/bench-fleet-real.md): N customers of
# the real stacks (terraform/ on the real hashicorp/aws provider, the real packer
# template's emulator builder), staging env, one git_id (so one image), deployed with
#   stamp deploy --all --parallel $PARALLEL --auto-approve --json
# each count from a fresh emulator (a new moto process) and an empty work dir, against
# one customer alone. Per count it prints and records:
#   - wall time;
#   - CPU (user+sys) of stamp's process tree (/usr/bin/time), split into stamp itself
#     and the tools (terraform, providers, packer, aws), and of the emulator;
#   - the CPU floor = (tree + emulator CPU) / cores, and the ratio
#     wall / max(one customer alone, CPU floor) (goal <= 1.15);
#   - the tree's peak RSS and peak private memory (RSS less shared file pages: the
#     provider's binary is held once however many run), and the most terraform and
#     provider processes at once (/proc sampled every 0.5 s by scripts/proc_timeline.py);
#   - the AMIs registered and the `packer build` runs (one bake for the fleet);
#   - target/bench-fleet-real/timeline-N.csv: every process of the tree (pid, ppid,
#     command, start, end, CPU, peak RSS), to see where the time went.
#
#   COUNTS="1 8 16"  customer counts to run (one customer alone is always run first)
#   PARALLEL=8       --parallel
#   PLAN_JOBS=N      --plan-jobs N (default: stamp's, the CPUs)
#   STAMP_BIN=...    this stamp binary instead of building target/release/stamp
#   BENCH_KEEP=1     keep the temp dir (fleet files, work dirs, emulator logs)
#
# Offline: terraform takes hashicorp/aws from this machine's provider mirror through
# .tools/terraformrc (scripts/setup-tools.sh writes it), the app repo is a local one
# (scripts/app-repo.sh). A missed goal is printed as MISSED, never hidden; the script
# fails only if a deploy or a check fails.
set -euo pipefail

BENCH_NAME=bench-fleet-real
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
counts=${COUNTS:-1 8 16}
parallel=${PARALLEL:-8}
plan_jobs=${PLAN_JOBS:-}
env=staging
out="$root/target/bench-fleet-real"
[[ $parallel =~ ^[1-9][0-9]*$ ]] || die "PARALLEL must be a positive integer"
[[ -z $plan_jobs || $plan_jobs =~ ^[1-9][0-9]*$ ]] || die "PLAN_JOBS must be a positive integer"
plan_flags=()
[ -z "$plan_jobs" ] || plan_flags=(--plan-jobs "$plan_jobs")
for n in $counts; do [[ $n =~ ^[1-9][0-9]{0,2}$ && $n -le 200 ]] || die "COUNTS must be numbers from 1 to 200, got '$n'"; done
# One customer alone is the reference: first, and once.
counts="1 $(tr ' ' '\n' <<< "$counts" | awk '$1 != 1 && !seen[$1]++' | tr '\n' ' ')"

# ---------------------------------------------------------------- prerequisites
# The tools, the stamp binary and a clean environment (scripts/bench-common.sh).
bench_setup
need_pkg python3 python3
[ -s "$root/.tools/terraformrc" ] || die ".tools/terraformrc is missing: run scripts/setup-tools.sh (it finds the provider mirror)"

# ---------------------------------------------------------------- temp dir, emulator
dir=$(mktemp -d "${TMPDIR:-/tmp}/stamp-bench-fleet-real.XXXXXX")
moto_pid=""
stop_moto() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2> /dev/null || true; wait "$moto_pid" 2> /dev/null || true; fi
  moto_pid=""
}
cleanup() {
  stop_moto
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"
results="$out/results.tsv"
printf 'customers\twall_s\ttree_cpu_s\tstamp_cpu_s\temulator_cpu_s\tpeak_rss_mib\tpeak_private_mib\tmax_terraform\tmax_providers\tamis\tbuilds\tload_before\tload_after\tmem_available_mib\n' > "$results"
"$root/scripts/app-repo.sh" "$dir/app"

# A fresh emulator for each run: moto only grows (and slows) with what it holds.
start_moto() {
  local port
  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  endpoint="http://127.0.0.1:$port"
  MOTO_IAM_LOAD_MANAGED_POLICIES=true "$py" "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" > "$1" 2>&1 &
  moto_pid=$!
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$endpoint/" && return 0
    kill -0 "$moto_pid" 2> /dev/null || die "moto_server did not start (see $1)"
    sleep 0.1
  done
  die "moto_server does not answer on $endpoint"
}
# CPU seconds (user+sys) a process has used so far.
cpu_of() {
  local stat
  stat=$(< "/proc/$1/stat")
  awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / t}' <<< "${stat##*) }"
}
mem_available_mib() { awk '/^MemAvailable:/ {printf "%d", $2 / 1024}' /proc/meminfo; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# The fleet: FLEET-DIR N. Customers cust01..custNN, staging, one git_id, a /16 each.
write_fleet() {
  local f=$1 n=$2 names
  mkdir -p "$f/customers"
  fleet_file "$f/stamp.toml" real "$f" customers
  fleet_customers "$f/customers" "$n" "$env"
}

aws_emu() {
  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_PAGER="" "$tools/aws" --endpoint-url "$endpoint" --region eu-west-1 "$@"
}

# ---------------------------------------------------------------- one run per count
run_count() {
  local n=$1 f="$dir/n$1" rd="$out/n$1" t0 t1 us wall rc=0 tpid spid m0 m1 mcpu tree own c st images builds l0 l1 mem
  rm -rf "$rd"
  mkdir -p "$rd"
  start_moto "$rd/emulator.log"
  write_fleet "$f" "$n"
  say "$n customer(s): stamp deploy --all --parallel $parallel --auto-approve ($env, one image)"
  mem=$(mem_available_mib)
  l0=$(load1)
  m0=$(cpu_of "$moto_pid")
  t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$rd/time.txt" "$stamp" --config "$f/stamp.toml" deploy --all --parallel "$parallel" "${plan_flags[@]}" --auto-approve --json \
    > "$rd/report.json" 2> "$rd/stderr.txt" &
  tpid=$!
  python3 "$root/scripts/proc_timeline.py" "$tpid" "$t0" "$out/timeline-$n.csv" "$rd/tree.json" 0.5 &
  spid=$!
  wait "$tpid" || rc=$?
  t1=$EPOCHREALTIME
  wait "$spid" || die "the /proc sampler failed"
  m1=$(cpu_of "$moto_pid")
  l1=$(load1)
  if [ "$rc" != 0 ]; then
    tail -n 30 "$rd/stderr.txt" >&2
    die "$n customer(s): stamp exited $rc; its output is in $rd (BENCH_KEEP=1 keeps the work dirs)"
  fi
  for c in "$f"/customers/*.toml; do
    c=$(basename "$c" .toml)
    st=$(jq -r .status "$f/work/$c/last-run.json" 2> /dev/null || echo missing)
    [ "$st" = ok ] || die "$n customer(s): $c's last-run.json status is $st (BENCH_KEEP=1 keeps $f/work/$c/logs)"
  done
  images=$(aws_emu ec2 describe-images --owners self --query 'length(Images)' --output text)
  builds=$(cat "$f"/work/*/logs/ami.log | grep -c '\] \$ cd .* build -machine-readable' || true)
  mkdir -p "$rd/logs"
  for c in "$f"/work/*/logs; do cp -r "$c" "$rd/logs/$(basename "$(dirname "$c")")"; done
  stop_moto
  us=$((${t1/./} - ${t0/./}))
  wall=$(awk -v u="$us" 'BEGIN {printf "%.2f", u / 1e6}')
  tree=$(cpu_seconds "$rd/time.txt")
  own=$(jq -r .stamp_cpu_s "$rd/tree.json")
  mcpu=$(awk -v a="$m1" -v b="$m0" 'BEGIN {printf "%.2f", a - b}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$wall" "$tree" "$own" "$mcpu" \
    "$(jq -r .peak_rss_mib "$rd/tree.json")" "$(jq -r .peak_private_mib "$rd/tree.json")" "$(jq -r .max_terraform "$rd/tree.json")" "$(jq -r .max_providers "$rd/tree.json")" \
    "$images" "$builds" "$l0" "$l1" "$mem" >> "$results"
  say "$n customer(s): ${wall}s wall, tree cpu ${tree}s (stamp ${own}s), emulator cpu ${mcpu}s, peak RSS $(jq -r .peak_rss_mib "$rd/tree.json") MiB (private $(jq -r .peak_private_mib "$rd/tree.json") MiB), $images AMI(s), $builds packer build(s)"
  rm -rf "$f"
}

for n in $counts; do run_count "$n"; done

# ---------------------------------------------------------------- report
ncpu=$(nproc)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
memtotal=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
v_tf=$("$tools/terraform" version 2> /dev/null | awk 'NR == 1')
v_prov=$(find "$(cat "$root/.tools/provider-mirror" 2> /dev/null || echo /nonexistent)" -name 'terraform-provider-aws_v*' -type f 2> /dev/null | head -n 1 | sed 's/.*terraform-provider-aws_v\([^_]*\)_.*/\1/')
v_packer=$("$tools/packer" version 2> /dev/null | awk 'NR == 1')
v_moto=$("$py" -c 'import importlib.metadata as m; print(m.version("moto"))' 2> /dev/null || echo '?')
rev=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')
git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2> /dev/null || rev="$rev+local changes"
alone=$(awk -F'\t' '$1 == 1 {print $2}' "$results")

md="$out/report.md"
{
  echo "| customers | wall | CPU tools | CPU stamp | CPU emulator | CPU floor | wall / max(alone, floor) | peak RSS (private) | terraform / providers at once | AMIs / builds | load (1 min) before → after |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} > "$md"
echo
echo "== real-stack fleet: $env customers, one image, --parallel $parallel, $ncpu cores"
printf '%9s %9s %10s %10s %10s %10s %8s %20s %9s %11s\n' customers wall "cpu tools" "cpu stamp" "cpu emu" floor ratio "peak RSS (private)" "tf/prov" "AMIs/builds"
missed=""
while IFS=$'\t' read -r n wall tree own mcpu rss priv mtf mprov images builds l0 l1 _; do
  [ "$n" = customers ] && continue
  tools_cpu=$(awk -v t="$tree" -v o="$own" 'BEGIN {printf "%.2f", t - o}')
  floor=$(awk -v t="$tree" -v m="$mcpu" -v c="$ncpu" 'BEGIN {printf "%.2f", (t + m) / c}')
  ratio=$(awk -v w="$wall" -v a="$alone" -v f="$floor" 'BEGIN {b = (f > a) ? f : a; printf "%.2f", w / b}')
  verdict=""
  if [ "$n" != 1 ]; then
    if awk -v r="$ratio" 'BEGIN {exit !(r <= 1.15)}'; then verdict=" (met)"; else verdict=" (MISSED)"; missed="$missed $n"; fi
  fi
  printf '%9s %8.2fs %9.2fs %9.2fs %9.2fs %9.2fs %8s %20s %9s %11s%s\n' "$n" "$wall" "$tools_cpu" "$own" "$mcpu" "$floor" "$ratio" \
    "$rss ($priv) MiB" "$mtf/$mprov" "$images/$builds" "$verdict"
  printf '| %s | %.1f s | %.1f s | %.1f s | %.1f s | %.1f s | %s%s | %s MiB (%s MiB) | %s / %s | %s / %s | %s → %s |\n' \
    "$n" "$wall" "$tools_cpu" "$own" "$mcpu" "$floor" "$ratio" "$verdict" "$rss" "$priv" "$mtf" "$mprov" "$images" "$builds" "$l0" "$l1" >> "$md"
done < "$results"
# shellcheck disable=SC2016 # backquotes are Markdown
printf '\nMachine: %s × %s, %s GiB. Tools: %s, hashicorp/aws %s, %s, moto %s; stamp %s. `--parallel %s`, %s env.\n' \
  "$ncpu" "$cpu" "$memtotal" "$v_tf" "${v_prov:-?}" "$v_packer" "$v_moto" "$rev" "$parallel" "$env" >> "$md"
echo "ratio: wall / max(one customer alone, CPU floor); CPU floor: (tree + emulator CPU) / $ncpu cores; goal <= 1.15"
for n in $missed; do echo "MISSED: $n customers took more than 1.15 x max(one alone, CPU floor)"; done
echo "timelines: $out/timeline-N.csv (pid, ppid, command, start_s, end_s, cpu_s, peak_rss_mib, peak_private_mib)"
echo
echo "== Markdown for docs/bench-fleet-real.md"
cat "$md"
