#!/usr/bin/env bash
# Rollout benchmarks (figures in docs/bench-rollout.md).
#
# 16 customers on the stand-in stacks (distinct names and CIDR blocks, one git_id, so
# one image), every stand-in resource create waiting STAMP_STANDIN_DELAY=3 s as AWS
# would; --parallel 8; each run from a fresh emulator (moto reset) and an empty work
# dir. Measured side by side, the order rotating per run:
#   a. stamp deploy --all --parallel 8 --auto-approve
#   b. stamp rollout --all --parallel 8 --auto-approve, [rollout] waves = ["100%"],
#      soak 0, max_failures 15 (strict mode lets the failures tolerated + 1 = 16 be in
#      flight, as deploy --all's 8 at work plus 8 lent during applies): what the
#      rollout itself costs (its record in S3, the lock, the heartbeat). Goal b / a <= 1.05.
#   c. stamp deploy --all --canary 1 --parallel 8 --auto-approve
#   d. stamp rollout --all ..., waves = ["1", "25%", "100%"], soak 0, max_failures 15:
#      the waves' barriers, against the canary-first deploy (reported, no goal).
# Then the halt: a rollout (waves 1 / 25% / 100%, max_failures 1, so at most 2 side by
# side) where the first two customers of the last wave fail their frontends apply: the
# second failure exceeds the budget. Every terraform run goes through a wrapper that
# writes its start and end (with the time) to a timeline: the time from the failed
# apply that exceeded the budget to the rollout's exit, and the applies that started
# after it (goal: none) and after the first failure.
#
# The machine may be shared: the load average before and after each run is recorded
# and reported beside the figures.
#
# Self-contained like scripts/bench-fleet.sh (scripts/bench-common.sh): its own
# emulator, a temp dir with its own stamp.toml, builds stamp (release) unless STAMP_BIN
# is set. A missed goal is printed as MISSED, never hidden; the script fails only if a
# run does not end as it must.
#
#   BENCH_RUNS=1        measured runs of each (median reported)
#   BENCH_DELAY=3       STAMP_STANDIN_DELAY, seconds per stand-in resource create
#   STAMP_BIN=...       use this stamp binary instead of building target/release/stamp
#   BENCH_KEEP=1        keep the temp dir (logs, timelines) and print its path
set -euo pipefail

BENCH_NAME=bench-rollout
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
runs=${BENCH_RUNS:-1}
delay=${BENCH_DELAY:-3}
ncust=16
parallel=8
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_DELAY must be a number of seconds"

bench_setup
export STAMP_STANDIN_DELAY=$delay
bench_tmpdir
: > "$dir/results.tsv"
"$root/scripts/app-repo.sh" "$dir/app"

# Every terraform run, its start and its end, with the time and the customer's work
# directory: the timeline of the halt.
cat > "$dir/terraform-timed" << EOF
#!/bin/bash
echo "start \$1 \$EPOCHREALTIME \$PWD" >> "$dir/timeline.txt"
"$tools/terraform" "\$@"
rc=\$?
echo "end \$1 \$EPOCHREALTIME \$PWD \$rc" >> "$dir/timeline.txt"
exit \$rc
EOF
chmod +x "$dir/terraform-timed"

# write_config FILE WAVES MAX_FAILURES: the fleet file.
write_config() {
  fleet_file "$1" standin "$dir" customers "$endpoint" "$dir/terraform-timed"
  printf '\n[rollout]\nwaves = %s\nsoak = 0\nmax_failures = %s\n' "$2" "$3" >> "$1"
}

emulator_start emulator
cfg="$dir/fleet"
mkdir -p "$cfg/customers"
fleet_customers "$cfg/customers" "$ncust"

load() { awk '{print $1}' /proc/loadavg; }
reset() {
  emulator_reset
  rm -rf "$dir/work" "$dir/vars"
  : > "$dir/timeline.txt"
}
# timed KIND RUN CMD...: one run; appends "kind run wall_s cpu_s load_before load_after".
timed() {
  local kind=$1 n=$2 out t0 t1 rc=0 us cpu l0
  shift 2
  out="$dir/runs/$kind-$n"
  mkdir -p "$out"
  l0=$(load)
  t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$out/time.txt" "$@" > "$out/stdout.txt" 2> "$out/stderr.txt" || rc=$?
  t1=$EPOCHREALTIME
  cp "$dir/timeline.txt" "$out/timeline.txt"
  echo "$rc" > "$out/rc"
  us=$((${t1/./} - ${t0/./}))
  cpu=$(cpu_seconds "$out/time.txt")
  printf '%s\t%s\t%d.%06d\t%s\t%s\t%s\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000)) "$cpu" "$l0" "$(load)" >> "$dir/results.tsv"
  say "$kind run $n: $(awk -v u="$us" 'BEGIN {printf "%.2f", u / 1e6}')s (cpu ${cpu}s, load $l0 -> $(load), exit $rc)"
  echo "$t1" > "$out/ended"
}
all_ok() { # KIND RUN: every customer's last run is ok
  local c st
  for c in "${names[@]}"; do
    st=$(jq -r .status "$dir/work/$c/last-run.json" 2> /dev/null || echo missing)
    [ "$st" = ok ] || die "$1 run $2: $c's last-run.json status is $st (logs in $dir/work/$c/logs; BENCH_KEEP=1 keeps them)"
  done
  [ "$(< "$dir/runs/$1-$2/rc")" = 0 ] || die "$1 run $2 exited $(< "$dir/runs/$1-$2/rc"): $(tail -n 5 "$dir/runs/$1-$2/stderr.txt")"
}

s=("$stamp" --config "$cfg/stamp.toml")
say "warm-up: one customer, not timed (disk caches, packer plugin check)"
write_config "$cfg/stamp.toml" '["100%"]' 15
reset
"${s[@]}" deploy "${names[0]}" --auto-approve > /dev/null 2>&1 || die "the warm-up deploy failed"

for n in $(seq "$runs"); do
  case $(((n - 1) % 2)) in
    0) order="deploy rollout canary waves" ;;
    *) order="waves canary rollout deploy" ;;
  esac
  for kind in $order; do
    reset
    case $kind in
      deploy)
        write_config "$cfg/stamp.toml" '["100%"]' 15
        timed deploy "$n" "${s[@]}" deploy --all --parallel "$parallel" --auto-approve
        ;;
      rollout)
        write_config "$cfg/stamp.toml" '["100%"]' 15
        timed rollout "$n" "${s[@]}" rollout --all --parallel "$parallel" --auto-approve
        ;;
      canary)
        write_config "$cfg/stamp.toml" '["100%"]' 15
        timed canary "$n" "${s[@]}" deploy --all --canary 1 --parallel "$parallel" --auto-approve
        ;;
      waves)
        write_config "$cfg/stamp.toml" '["1", "25%", "100%"]' 15
        timed waves "$n" "${s[@]}" rollout --all --parallel "$parallel" --auto-approve
        ;;
    esac
    all_ok "$kind" "$n"
  done
done

# ---------------------------------------------------------------- the halt
# The first two customers of the last wave (canary, then name order: wave 1 is
# names[0], wave 2 names[1..3]) fail their frontends apply; max_failures 1.
bad=("${names[4]}" "${names[5]}")
for c in "${bad[@]}"; do
  cp "$cfg/customers/$c.toml" "$dir/$c.toml.good"
  printf '\n[frontends.vars]\ninstance_type = "fail.standin"\n' >> "$cfg/customers/$c.toml"
done
write_config "$cfg/stamp.toml" '["1", "25%", "100%"]' 1
reset
timed halt 1 "${s[@]}" rollout --all --parallel "$parallel" --auto-approve
for c in "${bad[@]}"; do cp "$dir/$c.toml.good" "$cfg/customers/$c.toml"; done
[ "$(< "$dir/runs/halt-1/rc")" != 0 ] || die "the rollout with two failing customers exited 0"
tl="$dir/runs/halt-1/timeline.txt"
# The failed applies (an apply's end in a bad customer's directory, non-zero), in time order.
mapfile -t fails < <(awk -v a="/${bad[0]}/" -v b="/${bad[1]}/" \
  '$1 == "end" && $2 == "apply" && $5 != 0 && (index($4, a) || index($4, b)) {print $3}' "$tl" | sort -g)
[ "${#fails[@]}" = 2 ] || die "expected 2 failed applies in the timeline, found ${#fails[@]} ($tl; BENCH_KEEP=1 keeps it)"
first_fail=${fails[0]}
exceeded_at=${fails[1]}
ended=$(< "$dir/runs/halt-1/ended")
halt_s=$(awk -v a="$exceeded_at" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')
starts_after() { awk -v t="$1" '$1 == "start" && $2 == "apply" && $3 > t' "$tl" | wc -l; }
after=$(starts_after "$exceeded_at")
after_first=$(starts_after "$first_fail")
before=$(awk -v t="$exceeded_at" '$1 == "start" && $2 == "apply" && $3 <= t' "$tl" | wc -l)
deployed=$(find "$dir/work" -name last-run.json -exec jq -r 'select(.status == "ok") | .customer' {} + | wc -l)
v_halt=$([ "$after" = 0 ] && echo met || echo MISSED)

# ---------------------------------------------------------------- report
bench_describe
read -r de_med _ _ < <(stats deploy 3)
read -r ro_med _ _ < <(stats rollout 3)
read -r ca_med _ _ < <(stats canary 3)
read -r wa_med _ _ < <(stats waves 3)
read -r de_cpu _ _ < <(stats deploy 4)
read -r ro_cpu _ _ < <(stats rollout 4)
read -r ca_cpu _ _ < <(stats canary 4)
read -r wa_cpu _ _ < <(stats waves 4)
ratio=$(ratio "$ro_med" "$de_med")
ratio_w=$(ratio "$wa_med" "$ca_med")
v_ratio=$(verdict "$ratio" "<=" 1.05)
loads=$(awk -F'\t' '{print $5; print $6}' "$dir/results.tsv" | sort -g | awk '{a[NR] = $1} END {printf "%s to %s", a[1], a[NR]}')

echo
echo "== rollout vs deploy --all: $ncust customers, one image, stand-in stacks, STAMP_STANDIN_DELAY=$delay s, --parallel $parallel, $runs run(s) each (median)"
printf '%-64s %9s %9s\n' "" "wall" "cpu"
printf '%-64s %8.2fs %8.2fs\n' "a. deploy --all" "$de_med" "$de_cpu"
printf '%-64s %8.2fs %8.2fs\n' "b. rollout --all, one wave (100%), soak 0" "$ro_med" "$ro_cpu"
printf '%-64s %9s   goal <= 1.05: %s\n' "b / a" "$ratio" "$v_ratio"
printf '%-64s %8.2fs %8.2fs\n' "c. deploy --all --canary 1" "$ca_med" "$ca_cpu"
printf '%-64s %8.2fs %8.2fs\n' "d. rollout --all, waves 1 / 25% / 100%, soak 0" "$wa_med" "$wa_cpu"
printf '%-64s %9s   (no goal: the waves wait for each other)\n' "d / c" "$ratio_w"
echo
echo "== the halt: waves 1 / 25% / 100%, max_failures 1, ${bad[*]} (the first of the last wave) fail their frontends apply"
printf '%-64s %8.2fs\n' "from the failure that exceeded the budget to the rollout's exit" "$halt_s"
printf '%-64s %9s   goal 0: %s\n' "applies started after that failure" "$after" "$v_halt"
printf '%-64s %9s\n' "applies started after the first failure" "$after_first"
printf '%-64s %9s\n' "applies started before the budget was exceeded" "$before"
printf '%-64s %9s of %d\n' "customers deployed (ok)" "$deployed" "$ncust"
echo "load average (1 min) around the runs: $loads on $(nproc) cores"
echo "$cpu, $ncpu cores; $v_tf, $v_packer, $v_aws, moto $v_moto; $v_stamp ($rev)"
[ "$v_ratio" = met ] || echo "MISSED: the rollout took $ratio x deploy --all (goal <= 1.05)."
[ "$v_halt" = met ] || echo "MISSED: $after apply(s) started after the failure (goal: none)."
