#!/usr/bin/env bash
# Redeploy and fleet-visibility benchmarks (figures in docs/benchmarks.md, `make bench-visibility`).
#
# 1. No-op redeploy of an unchanged customer, against its first deploy (goal: the
#    no-op takes at most 10% of the first deploy's time):
#      noop-standin  the stand-in stacks, every resource create waiting BENCH_DELAY s
#                    (STAMP_STANDIN_DELAY) as AWS would; one customer
#      noop-real     the real stacks on the real hashicorp/aws provider, the real
#                    packer template's emulator builder: the demo customer acme of
#                    examples/demo (what `make demo` deploys; the first deploy takes
#                    minutes)
#    Each: a first deploy from an empty emulator, then BENCH_RUNS no-op redeploys
#    (`stamp deploy <c> --auto-approve --json`); the median no-op / first deploy, and
#    the per-stage durations of the runs (from the --json report), so it is visible
#    where a no-op's time goes. A redeploy that changes anything is reported.
# 2. status: BENCH_STATUS_CUSTOMERS (100) customers deployed on the stand-in stacks
#    (delay 0, `stamp deploy --all --parallel 16`, setup, not timed), then
#    `stamp status --all --json` timed BENCH_STATUS_RUNS (5) times: median wall time,
#    peak RSS (/usr/bin/time -v); goal < 5 s. Against the sum of one
#    `stamp status <c> --json` per customer.
# 3. plan: 16 customers deployed on the stand-in stacks (setup), then
#    `stamp plan --all --parallel 8` (BENCH_RUNS runs, median) against the sum of 16
#    single `stamp plan <c>` runs, with STAMP_STANDIN_DELAY=BENCH_DELAY (a plan creates
#    nothing, so the delay never applies; it is set as in the fleet benchmark).
#
# Self-contained: its own emulator (scripts/emulator.sh, moto on a free loopback port,
# reset before each benchmark), a temp dir with its own stamp.toml files, builds stamp
# (release) unless STAMP_BIN is set. A missed goal is printed as MISSED, never hidden;
# the script fails only if a deploy, a plan or a status run fails.
#
#   BENCH_ONLY=noop-standin,noop-real,status,plan   the benchmarks to run (default: all)
#   BENCH_RUNS=3               no-op redeploys per stack kind; plan --all runs
#   BENCH_DELAY=3              STAMP_STANDIN_DELAY for noop-standin and plan
#   BENCH_STATUS_CUSTOMERS=100 customers of the status benchmark (1..250)
#   BENCH_STATUS_RUNS=5        timed `status --all` runs
#   STAMP_BIN=...              use this stamp binary instead of building target/release/stamp
#   BENCH_KEEP=1               keep the temp dir (logs, reports, timings) and print its path
set -euo pipefail

BENCH_NAME=bench-visibility
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
runs=${BENCH_RUNS:-3}
delay=${BENCH_DELAY:-3}
nstatus=${BENCH_STATUS_CUSTOMERS:-100}
status_runs=${BENCH_STATUS_RUNS:-5}
only=${BENCH_ONLY:-noop-standin,noop-real,status,plan}
nplan=16
plan_parallel=8
status_parallel=16
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"
[[ $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_DELAY must be a number of seconds, not '$delay'"
[[ $nstatus =~ ^([1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|250)$ ]] || die "BENCH_STATUS_CUSTOMERS must be 1..250, not '$nstatus'"
[[ $status_runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_STATUS_RUNS must be a positive integer, not '$status_runs'"
declare -A want=()
IFS=, read -r -a picked <<< "$only"
for b in "${picked[@]}"; do
  case "$b" in
    noop-standin | noop-real | status | plan) want[$b]=1 ;;
    *) die "BENCH_ONLY: unknown benchmark '$b' (accepted, comma-separated: noop-standin, noop-real, status, plan)" ;;
  esac
done
[ "${#want[@]}" -gt 0 ] || die "BENCH_ONLY names no benchmark (accepted: noop-standin, noop-real, status, plan)"
wants() { [ -n "${want[$1]:-}" ]; }

# ---------------------------------------------------------------- prerequisites
bench_setup

# ---------------------------------------------------------------- temp dir, emulator
bench_tmpdir
# The app's git_id is looked up in app_repo before a bake: a local one, offline.
"$root/scripts/app-repo.sh" "$dir/app"
: > "$dir/results.tsv"
: > "$dir/stages.tsv"
emulator_start emulator

# write_customers DIR COUNT: customers c001..cNNN, one image (same git_id), distinct CIDR blocks.
write_customers() {
  local i
  mkdir -p "$1"
  for i in $(seq "$2"); do
    printf 'git_id = "v1"\n\n[vpc.vars]\ncidr_block = "10.%d.0.0/16"\n' "$i" > "$1/$(printf 'c%03d' "$i").toml"
  done
}

# time_run KIND RUN CMD...: one timed run under /usr/bin/time -v; appends
# "kind run wall_s cpu_s rss_kb" to results.tsv; its stdout is kept in the run's
# stdout.txt. Exits on failure.
time_run() {
  local kind=$1 n=$2 out t0 t1 rc=0 us cpu rss
  shift 2
  out="$dir/runs/$kind-$n"
  mkdir -p "$out"
  t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$out/time.txt" "$@" > "$out/stdout.txt" 2> "$out/stderr.txt" || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then
    tail -n 30 "$out/stderr.txt" >&2
    die "$kind run $n failed (exit $rc); output in $out (set BENCH_KEEP=1 to keep it)"
  fi
  us=$((${t1/./} - ${t0/./}))
  cpu=$(cpu_seconds "$out/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
  printf '%s\t%s\t%d.%06d\t%s\t%s\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000)) "$cpu" "$rss" >> "$dir/results.tsv"
  [ "${quiet_runs:-0}" = 1 ] ||
    printf 'bench-visibility: %-14s run %d: %d.%02ds (cpu %ss)\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000 / 10000)) "$cpu" >&2
}
wall_of() { awk -F'\t' -v k="$1" -v n="$2" '$1 == k && $2 == n {print $3}' "$dir/results.tsv"; }

sum_of() { # KIND [COLUMN: 3 wall, 4 cpu] -> the sum over the kind's runs
  awk -F'\t' -v k="$1" -v c="${2:-3}" '$1 == k {s += $c} END {printf "%.2f", s}' "$dir/results.tsv"
}

# check_report KIND RUN: the run's --json report (its one customer) says ok or unchanged (nothing to
# do, the no-op's own status); its stage durations go to
# stages.tsv ("kind run stage duration_s changes detail").
check_report() {
  local kind=$1 n=$2 f="$dir/runs/$1-$2/stdout.txt" st
  st=$(jq -r '.customers[0].status' "$f" 2> /dev/null || echo unreadable)
  [ "$st" = ok ] || [ "$st" = unchanged ] || die "$kind run $n: the report's status is $st (see $f and $dir/work)"
  jq -r --arg k "$kind" --arg n "$n" '.customers[0].stages[] |
    [$k, $n, .name, .duration_s,
     (if .changes then (.changes.add + .changes.change + .changes.destroy) else 0 end), .detail] | @tsv' "$f" >> "$dir/stages.tsv"
}
# stage_median KIND STAGE -> median duration_s of that stage over the kind's runs
stage_median() {
  awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $3 == s {print $4}' "$dir/stages.tsv" | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) {print "-"; exit} printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
stage_names() { awk -F'\t' -v k="$1" '$1 == k && !seen[$3]++ {print $3}' "$dir/stages.tsv"; }
# changes KIND -> resources a kind's runs added, changed or destroyed, in total
changes() { awk -F'\t' -v k="$1" '$1 == k {s += $5} END {print s + 0}' "$dir/stages.tsv"; }

md="$dir/report.md"
: > "$md"
declare -A noop=() # "<standin|real>,<first|med|min|max|ratio|v|changes|stages>" -> figure

# ================================================================ 1. no-op redeploy
# noop_bench standin|real
noop_bench() {
  local kind=$1 cfg="$dir/noop-$1" c n first med min max cpu ratio v s ch stages_line
  emulator_reset
  rm -rf "$cfg"
  mkdir -p "$cfg/customers"
  if [ "$kind" = real ]; then
    c=acme
    cp "$root/examples/demo/customers/acme.toml" "$cfg/customers/"
    unset STAMP_STANDIN_DELAY
  else
    c=c001
    write_customers "$cfg/customers" 1
    export STAMP_STANDIN_DELAY=$delay
  fi
  fleet_file "$cfg/stamp.toml" "$kind" "$cfg" "$cfg/customers"
  say "noop-$kind: first deploy of $c ($([ "$kind" = real ] && echo "real stacks: minutes" || echo "stand-in stacks, ${delay} s per create"))"
  time_run "$kind-first" 1 "$stamp" --config "$cfg/stamp.toml" deploy "$c" --auto-approve --json
  check_report "$kind-first" 1
  for n in $(seq "$runs"); do
    time_run "$kind-noop" "$n" "$stamp" --config "$cfg/stamp.toml" deploy "$c" --auto-approve --json
    check_report "$kind-noop" "$n"
  done
  unset STAMP_STANDIN_DELAY

  first=$(wall_of "$kind-first" 1)
  read -r med min max < <(stats "$kind-noop" 3)
  read -r cpu _ _ < <(stats "$kind-noop" 4)
  ratio=$(ratio "$med" "$first")
  v=$(verdict "$ratio" "<=" 0.10)
  ch=$(changes "$kind-noop")
  noop[$kind,first]=$first noop[$kind,med]=$med noop[$kind,min]=$min noop[$kind,max]=$max
  noop[$kind,ratio]=$ratio noop[$kind,v]=$v noop[$kind,changes]=$ch noop[$kind,cpu]=$cpu
  echo
  echo "== 1. no-op redeploy, $kind stacks: customer $c, first deploy then $runs no-op redeploy(s)"
  printf '%-34s %9ss\n' "first deploy" "$(f2 "$first")"
  printf '%-34s %9ss   (min %s, max %s; cpu %ss)\n' "no-op redeploy, median" "$(f2 "$med")" "$(f2 "$min")" "$(f2 "$max")" "$(f2 "$cpu")"
  printf '%-34s %10s   goal <= 0.10: %s\n' "ratio no-op / first" "$ratio" "$v"
  printf '%-34s %10s %10s   %s\n' "per stage, median s" "first" "no-op" "no-op detail (last run)"
  stages_line=""
  for s in $(stage_names "$kind-noop"); do
    printf '%-34s %10s %10s   %s\n' "  $s" "$(stage_median "$kind-first" "$s")" "$(stage_median "$kind-noop" "$s")" \
      "$(awk -F'\t' -v k="$kind-noop" -v s="$s" '$1 == k && $3 == s {d = $6} END {print d}' "$dir/stages.tsv")"
    stages_line+="${stages_line:+, }$s $(stage_median "$kind-noop" "$s") s"
  done
  noop[$kind,stages]=$stages_line
  [ "$ch" = 0 ] || echo "NOT A NO-OP: the redeploys changed $ch resource(s) in total (see the stages' changes in $dir/runs/$kind-noop-*/stdout.txt)"
  [ "$v" = met ] || echo "MISSED: a no-op redeploy on the $kind stacks took $ratio of the first deploy (goal <= 0.10)."
}

# ================================================================ 2. status --all
status_bench() {
  local cfg="$dir/status" n i c deployed med min max rss wall_s single v ok
  emulator_reset
  mkdir -p "$cfg"
  write_customers "$cfg/customers" "$nstatus"
  fleet_file "$cfg/stamp.toml" standin "$cfg" "$cfg/customers"
  export STAMP_STANDIN_DELAY=0
  say "status: deploying $nstatus customers (stand-in stacks, delay 0, --parallel $status_parallel; setup, minutes)"
  time_run status-setup 1 "$stamp" --config "$cfg/stamp.toml" deploy --all --parallel "$status_parallel" --auto-approve --json
  unset STAMP_STANDIN_DELAY
  ok=$(jq .summary.ok "$dir/runs/status-setup-1/stdout.txt")
  [ "$ok" = "$nstatus" ] || die "status setup: summary.ok is $ok, not $nstatus (see $dir/runs/status-setup-1)"
  # A check, not timed: every customer is seen deployed.
  "$stamp" --config "$cfg/stamp.toml" status --all --json > "$dir/status-check.json" 2> "$dir/status-check.err" ||
    { tail -n 20 "$dir/status-check.err" >&2; die "stamp status --all failed"; }
  deployed=$(jq .summary.deployed "$dir/status-check.json")
  [ "$deployed" = "$nstatus" ] || die "stamp status --all sees $deployed deployed customers, not $nstatus (see $dir/status-check.json)"
  [ "$(jq .summary.errors "$dir/status-check.json")" = 0 ] || die "stamp status --all reports errors (see $dir/status-check.json)"
  for n in $(seq "$status_runs"); do
    time_run status-all "$n" "$stamp" --config "$cfg/stamp.toml" status --all --json
    jq .summary.wall_time_s "$dir/runs/status-all-$n/stdout.txt" >> "$dir/status-self.txt"
  done
  say "status: $nstatus single runs of stamp status <c> --json"
  quiet_runs=1
  for i in $(seq "$nstatus"); do
    c=$(printf 'c%03d' "$i")
    time_run status-one "$i" "$stamp" --config "$cfg/stamp.toml" status "$c" --json
  done
  quiet_runs=0
  read -r med min max < <(stats status-all 3)
  read -r _ _ rss < <(stats status-all 5)
  wall_s=$(sort -g "$dir/status-self.txt" | awk '{a[NR] = $1} END {printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  single=$(sum_of status-one)
  st_cpu=$(stats status-all 4 | awk '{print $1}') st_single_cpu=$(sum_of status-one 4)
  v=$(verdict "$med" "<" 5)
  st_med=$med st_min=$min st_max=$max st_rss=$rss st_self=$wall_s st_single=$single st_v=$v
  st_one=$(stats status-one 3 | awk '{print $1}')
  echo
  echo "== 2. stamp status --all --json, $nstatus deployed customers (stand-in stacks), $status_runs run(s)"
  printf '%-40s %9ss   (min %s, max %s; its own summary.wall_time_s %s)\n' "status --all, median" "$(f2 "$med")" "$(f2 "$min")" "$(f2 "$max")" "$wall_s"
  printf '%-40s %9ss\n' "its CPU (user+sys), median" "$(f2 "$st_cpu")"
  printf '%-40s %12s   (largest process of a run: stamp or the aws CLI it runs)\n' "peak RSS (largest run)" "$(mib "$rss")"
  printf '%-40s %9ss   (median one: %ss; cpu %ss)\n' "sum of $nstatus single status runs" "$single" "$(f2 "$st_one")" "$st_single_cpu"
  printf '%-40s %10s\n' "ratio --all / sum of singles" "$(ratio "$med" "$single")"
  printf '%-40s %10s\n' "goal < 5 s" "$v"
  [ "$v" = met ] || echo "MISSED: stamp status --all took $(f2 "$med") s over $nstatus customers (goal < 5 s)."
}

# ================================================================ 3. plan --all
plan_bench() {
  local cfg="$dir/plan" n i c ok med min max single v
  emulator_reset
  mkdir -p "$cfg"
  write_customers "$cfg/customers" "$nplan"
  fleet_file "$cfg/stamp.toml" standin "$cfg" "$cfg/customers"
  export STAMP_STANDIN_DELAY=0
  say "plan: deploying $nplan customers (setup, not timed)"
  time_run plan-setup 1 "$stamp" --config "$cfg/stamp.toml" deploy --all --parallel "$plan_parallel" --auto-approve --json
  ok=$(jq .summary.ok "$dir/runs/plan-setup-1/stdout.txt")
  [ "$ok" = "$nplan" ] || die "plan setup: summary.ok is $ok, not $nplan (see $dir/runs/plan-setup-1)"
  export STAMP_STANDIN_DELAY=$delay
  for n in $(seq "$runs"); do
    time_run plan-all "$n" "$stamp" --config "$cfg/stamp.toml" plan --all --parallel "$plan_parallel" --json
    ok=$(jq .summary.ok "$dir/runs/plan-all-$n/stdout.txt")
    [ "$ok" = "$nplan" ] || die "plan --all run $n: summary.ok is $ok, not $nplan"
  done
  for i in $(seq "$nplan"); do
    c=$(printf 'c%03d' "$i")
    time_run plan-one "$i" "$stamp" --config "$cfg/stamp.toml" plan "$c" --json
    check_report plan-one "$i"
  done
  unset STAMP_STANDIN_DELAY
  read -r med min max < <(stats plan-all 3)
  single=$(sum_of plan-one)
  pl_cpu=$(stats plan-all 4 | awk '{print $1}') pl_single_cpu=$(sum_of plan-one 4)
  pl_med=$med pl_min=$min pl_max=$max pl_single=$single pl_ratio=$(ratio "$med" "$single")
  pl_one=$(stats plan-one 3 | awk '{print $1}')
  pl_changes=$(changes plan-one)
  echo
  echo "== 3. stamp plan --all --parallel $plan_parallel, $nplan deployed customers (stand-in stacks), $runs run(s)"
  printf '%-40s %9ss   (min %s, max %s; cpu %ss)\n' "plan --all --parallel $plan_parallel, median" "$(f2 "$med")" "$(f2 "$min")" "$(f2 "$max")" "$(f2 "$pl_cpu")"
  printf '%-40s %9ss   (median one: %ss; cpu %ss)\n' "sum of $nplan single plans" "$single" "$(f2 "$pl_one")" "$pl_single_cpu"
  printf '%-40s %10s   (%s x faster)\n' "ratio --all / sum of singles" "$pl_ratio" "$(awk -v a="$med" -v b="$single" 'BEGIN {printf "%.1f", b / a}')"
  [ "$pl_changes" = 0 ] || echo "note: the single plans show $pl_changes change(s) on deployed customers"
}

wants noop-standin && noop_bench standin
wants noop-real && noop_bench real
wants status && status_bench
wants plan && plan_bench

# ---------------------------------------------------------------- report
bench_describe
load=$(cut -d' ' -f1-3 /proc/loadavg)

if wants noop-standin || wants noop-real; then
  {
    echo
    echo "No-op redeploy of an unchanged customer (\`stamp deploy <c> --auto-approve --json\` after a first deploy; median of $runs):"
    echo
    echo "| stacks | first deploy | no-op redeploy (min-max; CPU) | ratio | goal | no-op per stage (median) | reproduce |"
    echo "|---|---|---|---|---|---|---|"
    for k in standin real; do
      wants "noop-$k" || continue
      if [ "$k" = standin ]; then what="stand-in, ${delay} s per create"; else what="real (demo \`acme\`)"; fi
      printf '| %s | %s s | %s s (%s-%s; %s s) | %s | ≤ 0.10: %s%s | %s | %s |\n' \
        "$what" "$(f2 "${noop[$k,first]}")" "$(f2 "${noop[$k,med]}")" "$(f2 "${noop[$k,min]}")" "$(f2 "${noop[$k,max]}")" \
        "$(f2 "${noop[$k,cpu]}")" "${noop[$k,ratio]}" "$([ "${noop[$k,v]}" = met ] && echo met || echo '**MISSED**')" \
        "$([ "${noop[$k,changes]}" = 0 ] || echo ", changed ${noop[$k,changes]} resource(s)")" "${noop[$k,stages]}" \
        "\`make bench-visibility BENCH_ONLY=noop-$k\`"
    done
  } >> "$md"
fi
if wants status; then
  cat >> "$md" << EOF

\`stamp status --all --json\` over $nstatus deployed customers (stand-in stacks; median of $status_runs):

| what | figure | goal | reproduce |
|---|---|---|---|
| \`stamp status --all --json\` | $(f2 "$st_med") s ($(f2 "$st_min")-$(f2 "$st_max"); its own \`wall_time_s\` $st_self s) | < 5 s: $([ "$st_v" = met ] && echo met || echo '**MISSED**') | \`make bench-visibility BENCH_ONLY=status\` |
| its CPU (user+sys of the process tree) | $(f2 "$st_cpu") s | | |
| its peak RSS (largest process: stamp or the one aws CLI call it makes) | $(mib "$st_rss") | | |
| sum of $nstatus \`stamp status <c> --json\` | $st_single s ($(f2 "$st_one") s each; CPU $st_single_cpu s) | | |
| \`--all\` / sum of single runs | $(ratio "$st_med" "$st_single") | | |
EOF
fi
if wants plan; then
  cat >> "$md" << EOF

\`stamp plan --all --parallel $plan_parallel\` over $nplan deployed customers (stand-in stacks; median of $runs):

| what | figure | reproduce |
|---|---|---|
| \`stamp plan --all --parallel $plan_parallel --json\` | $(f2 "$pl_med") s ($(f2 "$pl_min")-$(f2 "$pl_max"); CPU $(f2 "$pl_cpu") s) | \`make bench-visibility BENCH_ONLY=plan\` |
| sum of $nplan \`stamp plan <c> --json\` | $pl_single s ($(f2 "$pl_one") s each; CPU $pl_single_cpu s) | |
| \`--all\` / sum of single runs | $pl_ratio | |
EOF
fi
printf '\nMachine: %s × %s, shared with other work (load average at the end: %s). Tools: %s, %s, moto %s; %s (%s).\n' \
  "$ncpu" "$cpu" "$load" "$v_tf" "$v_packer" "$v_moto" "$v_stamp" "$rev" >> "$md"
echo
echo "== Markdown for docs/benchmarks.md"
cat "$md"
