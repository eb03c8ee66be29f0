#!/usr/bin/env bash
# Fleet benchmarks (figures in docs/benchmarks.md).
#
# 1. Fleet efficiency: 16 customers (distinct names and CIDR blocks, one git_id, so
#    one image) on the stand-in stacks, every stand-in resource create waiting
#    STAMP_STANDIN_DELAY=3 s as AWS would. Measured side by side in one run, each
#    from a fresh emulator (moto reset) and an empty work dir:
#      a. stamp deploy --all --parallel 8 --auto-approve       (one stamp, one bake)
#      b. a bash loop of 16 `stamp deploy <c> --auto-approve`, one after another
#      c. make -j8 over one target per customer running `stamp deploy <c> --auto-approve`
#         (the `make customer CUSTOMER=x` way: separate stamp processes, nothing shared)
#      d. the ideal: one bake + ceil(16/8) x one customer's deploy without its bake,
#         from a single-customer deploy and the ami stage of its report.
#    Reported: wall times, a / ideal (goal <= 1.15), the packer builds each approach
#    ran (AMIs registered in the emulator, and `packer build` lines in the logs), and
#    the CPU time of each (user+sys of the whole process tree: on a small machine the
#    floor is CPU, not the ideal's waiting).
# 2. 10,000 customer files: wall time and peak RSS (/usr/bin/time -v) of `stamp list`
#    and `stamp validate --all`. Goals: list < 1 s, validate --all < 5 s, < 100 MB.
#    No emulator: the fleet file names an endpoint that is never contacted.
#
# Self-contained: its own emulator (scripts/emulator.sh: moto on a free loopback
# port), a temp dir with its own
# stamp.toml (stand-in stacks tests/standin/terraform, stand-in packer template,
# [packer] only = ["emulator"], app templates templates/app), builds stamp (release)
# unless STAMP_BIN is set. A missed goal is printed as MISSED, never hidden; the
# script fails only if a deploy or a check fails.
#
#   BENCH_RUNS=1        measured runs of each (median reported; order rotates per run)
#   BENCH_DELAY=3       STAMP_STANDIN_DELAY, seconds per stand-in resource create
#   BENCH_FILES=10000   customer files for benchmark 2
#   BENCH_ONLY=fleet|files   run one of the two benchmarks
#   STAMP_BIN=...       use this stamp binary instead of building target/release/stamp
#   BENCH_KEEP=1        keep the temp dir (logs, per-run timings) and print its path
set -euo pipefail

BENCH_NAME=bench-fleet
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
runs=${BENCH_RUNS:-1}
delay=${BENCH_DELAY:-3}
nfiles=${BENCH_FILES:-10000}
only=${BENCH_ONLY:-}
ncust=16
parallel=8
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_DELAY must be a number of seconds"
[[ $nfiles =~ ^[1-9][0-9]{0,4}$ ]] || die "BENCH_FILES must be 1..99999"
case "$only" in "" | fleet | files) ;; *) die "BENCH_ONLY must be fleet or files" ;; esac

# ---------------------------------------------------------------- prerequisites
need_pkg make make
bench_setup
export STAMP_STANDIN_DELAY=$delay

# ---------------------------------------------------------------- temp dir
bench_tmpdir
: > "$dir/results.tsv"
# The app's git_id is looked up in app_repo before a bake: a local one, offline.
"$root/scripts/app-repo.sh" "$dir/app"

# time_run KIND RUN CMD...: one timed run under /usr/bin/time -v; appends
# "kind run wall_s cpu_s rss_kb" to results.tsv. Exits on failure. Its stdout goes
# to $stdout_to if set (e.g. /dev/null), else to the run's stdout.txt.
stdout_to=""
time_run() {
  local kind=$1 n=$2 out t0 t1 rc=0 us cpu rss
  shift 2
  out="$dir/runs/$kind-$n"
  mkdir -p "$out"
  t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$out/time.txt" "$@" > "${stdout_to:-$out/stdout.txt}" 2> "$out/stderr.txt" || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then
    tail -n 30 "$out/stderr.txt" >&2
    die "$kind run $n failed (exit $rc); output in $out (set BENCH_KEEP=1 to keep it)"
  fi
  us=$((${t1/./} - ${t0/./}))
  cpu=$(cpu_seconds "$out/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
  printf '%s\t%s\t%d.%06d\t%s\t%s\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000)) "$cpu" "$rss" >> "$dir/results.tsv"
  printf 'bench-fleet: %-9s run %d: %d.%02ds (cpu %ss)\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000 / 10000)) "$cpu" >&2
}

# ================================================================ 1. fleet efficiency
fleet_bench() {
  local cfg c i n order kind names=() images builds ok moto0
  emulator_start emulator

  cfg="$dir/fleet"
  mkdir -p "$cfg/customers"
  fleet_file "$cfg/stamp.toml" standin "$dir" customers "$endpoint"
  fleet_customers "$cfg/customers" "$ncust"
  # One make target per customer, as `make customer CUSTOMER=x` would run it.
  {
    echo ".PHONY: all ${names[*]}"
    echo "all: ${names[*]}"
    for c in "${names[@]}"; do
      printf '%s:\n\t@"%s" --config "%s" deploy %s --auto-approve > "%s" 2>&1\n' \
        "$c" "$stamp" "$cfg/stamp.toml" "$c" "$dir/make-logs/$c.log"
    done
  } > "$dir/fleet.mk"
  # The bash loop.
  {
    echo 'set -e'
    for c in "${names[@]}"; do
      printf '"%s" --config "%s" deploy %s --auto-approve > "%s" 2>&1\n' "$stamp" "$cfg/stamp.toml" "$c" "$dir/loop-logs/$c.log"
    done
  } > "$dir/loop.sh"

  reset() {
    emulator_reset
    rm -rf "$dir/work" "$dir/vars" "$dir/make-logs" "$dir/loop-logs"
    mkdir -p "$dir/make-logs" "$dir/loop-logs"
  }
  # CPU seconds moto has used so far (utime + stime of its process).
  moto_cpu() {
    local stat
    stat=$(< "/proc/$moto_pid/stat")
    awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / t}' <<< "${stat##*) }"
  }
  aws_emu() {
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_PAGER="" "$tools/aws" --endpoint-url "$endpoint" --region eu-west-1 "$@"
  }
  # after KIND RUN CUSTOMERS...: every customer deployed ok; AMIs and packer builds
  # counted; moto's CPU time since the run started ($moto0) recorded.
  after() {
    local kind=$1 n=$2 c st mcpu
    shift 2
    mcpu=$(awk -v a="$(moto_cpu)" -v b="$moto0" 'BEGIN {printf "%.2f", a - b}')
    for c in "$@"; do
      st=$(jq -r .status "$dir/work/$c/last-run.json" 2> /dev/null || echo missing)
      [ "$st" = ok ] || die "$kind run $n: $c's last-run.json status is $st (logs in $dir/work/$c/logs)"
    done
    images=$(aws_emu ec2 describe-images --owners self --query 'length(Images)' --output text)
    builds=$(cat "$dir"/work/*/logs/ami.log | grep -c '\] \$ cd .* build -machine-readable' || true)
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$n" "$images" "$builds" "$mcpu" >> "$dir/images.tsv"
    say "$kind run $n: $images AMI(s) registered, $builds packer build(s), moto cpu ${mcpu}s"
  }
  : > "$dir/images.tsv"

  say "warm-up: one customer, not timed (disk caches, packer plugin check)"
  reset
  time_run warmup 0 "$stamp" --config "$cfg/stamp.toml" deploy "${names[0]}" --auto-approve
  sed -i '/^warmup\t/d' "$dir/results.tsv"

  for n in $(seq "$runs"); do
    case $(((n - 1) % 4)) in
      0) order="single fleet loop make" ;;
      1) order="make single fleet loop" ;;
      2) order="loop make single fleet" ;;
      *) order="fleet loop make single" ;;
    esac
    for kind in $order; do
      reset
      moto0=$(moto_cpu)
      case $kind in
        single)
          say "single: stamp deploy ${names[0]} --auto-approve --json"
          time_run single "$n" "$stamp" --config "$cfg/stamp.toml" deploy "${names[0]}" --auto-approve --json
          after single "$n" "${names[0]}"
          jq -e '.customers[0].stages[] | select(.name == "ami") | .detail | startswith("built ")' "$dir/runs/single-$n/stdout.txt" > /dev/null ||
            die "single run $n: the ami stage did not bake (see $dir/runs/single-$n/stdout.txt)"
          printf 'bake\t%s\t%s\n' "$n" "$(jq '.customers[0].stages[] | select(.name == "ami") | .duration_s' "$dir/runs/single-$n/stdout.txt")" >> "$dir/results.tsv"
          ;;
        fleet)
          say "fleet: stamp deploy --all --parallel $parallel --auto-approve --json ($ncust customers)"
          time_run fleet "$n" "$stamp" --config "$cfg/stamp.toml" deploy --all --parallel "$parallel" --auto-approve --json
          ok=$(jq .summary.ok "$dir/runs/fleet-$n/stdout.txt")
          [ "$ok" = "$ncust" ] || die "fleet run $n: summary.ok is $ok, not $ncust"
          after fleet "$n" "${names[@]}"
          ;;
        loop)
          say "loop: $ncust x stamp deploy <c> --auto-approve, one after another"
          time_run loop "$n" bash "$dir/loop.sh"
          after loop "$n" "${names[@]}"
          ;;
        make)
          say "make: make -j$parallel, one target per customer (stamp deploy <c> --auto-approve)"
          time_run make "$n" make -f "$dir/fleet.mk" -j"$parallel" all
          after make "$n" "${names[@]}"
          ;;
      esac
    done
  done
  emulator_stop emulator
}

# ================================================================ 2. 10,000 customer files
files_bench() {
  local cfg="$dir/files" n kind lines
  mkdir -p "$cfg/customers"
  # Never contacted: list and validate call no AWS and run no tool.
  fleet_file "$cfg/stamp.toml" standin "$cfg" customers "http://127.0.0.1:9"
  say "generating $nfiles customer files"
  # Odd customers set a distinct /24 CIDR block, even ones take the stack's default.
  awk -v n="$nfiles" -v d="$cfg/customers" 'BEGIN {
    for (i = 1; i <= n; i++) {
      f = sprintf("%s/c%05d.toml", d, i)
      printf "git_id = \"v1\"\n" > f
      if (i % 2) printf "\n[vpc.vars]\ncidr_block = \"10.%d.%d.0/24\"\n", int(i / 256), i % 256 > f
      close(f)
    }
  }'
  # Checks, not timed (and they warm the page cache for the timed runs).
  lines=$("$stamp" --config "$cfg/stamp.toml" list | wc -l)
  [ "$lines" = $((nfiles + 1)) ] || die "stamp list printed $lines lines, expected $((nfiles + 1))"
  "$stamp" --config "$cfg/stamp.toml" validate --all > /dev/null 2> "$dir/validate-check.txt" ||
    { tail -n 5 "$dir/validate-check.txt" >&2; die "stamp validate --all failed on the generated files"; }
  grep -q "^$nfiles customer(s) valid" "$dir/validate-check.txt" || die "validate --all did not check $nfiles customers"
  stdout_to=/dev/null
  for n in $(seq "$runs"); do
    time_run list "$n" "$stamp" --config "$cfg/stamp.toml" list
    time_run validate "$n" "$stamp" --config "$cfg/stamp.toml" validate --all
  done
  stdout_to=""
}

[ "$only" = files ] || fleet_bench
[ "$only" = fleet ] || files_bench

# ---------------------------------------------------------------- report
bench_describe
md="$dir/report.md"
: > "$md"

if [ "$only" != files ]; then
  read -r fl_med fl_min _ < <(stats fleet 3)
  read -r lo_med _ _ < <(stats loop 3)
  read -r mk_med _ _ < <(stats make 3)
  read -r si_med si_min _ < <(stats single 3)
  read -r bk_med _ _ < <(stats bake 3)
  read -r fl_cpu _ _ < <(stats fleet 4)
  read -r lo_cpu _ _ < <(stats loop 4)
  read -r mk_cpu _ _ < <(stats make 4)
  read -r si_cpu _ _ < <(stats single 4)
  rounds=$(((ncust + parallel - 1) / parallel))
  ideal=$(awk -v b="$bk_med" -v s="$si_med" -v r="$rounds" 'BEGIN {printf "%.2f", b + r * (s - b)}')
  ratio=$(awk -v a="$fl_med" -v i="$ideal" 'BEGIN {printf "%.2f", a / i}')
  ratio_min=$(awk -v a="$fl_min" -v b="$bk_med" -v s="$si_min" -v r="$rounds" 'BEGIN {printf "%.2f", a / (b + r * (s - b))}')
  read -r fl_moto _ _ < <(stats fleet 5 "$dir/images.tsv")
  # The CPU floor: everything the --all run computed (its process tree and moto) over the cores.
  floor=$(awk -v c="$fl_cpu" -v m="$fl_moto" -v n="$ncpu" 'BEGIN {printf "%.2f", (c + m) / n}')
  bound=$(awk -v i="$ideal" -v f="$floor" 'BEGIN {printf "%.2f", (f > i) ? f : i}')
  ratio_bound=$(awk -v a="$fl_med" -v b="$bound" 'BEGIN {printf "%.2f", a / b}')
  v_ratio=$(verdict "$ratio" "<=" 1.15)
  img() { # KIND COLUMN -> value of the last run (every run should agree)
    awk -F'\t' -v k="$1" -v c="$2" '$1 == k {v = $c} END {print v}' "$dir/images.tsv"
  }
  vs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
  vs_md() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

  echo
  echo "== 1. fleet efficiency: $ncust customers, one image, stand-in stacks, STAMP_STANDIN_DELAY=$delay s, $runs run(s) each"
  printf '%-46s %9s %9s %9s %6s %7s\n' "" "wall" "vs fleet" "cpu" "AMIs" "builds"
  printf '%-46s %8.2fs %9s %8.2fs %6s %7s\n' "a. stamp deploy --all --parallel $parallel" "$fl_med" "1.00x" "$fl_cpu" "$(img fleet 3)" "$(img fleet 4)"
  printf '%-46s %8.2fs %9s %8.2fs %6s %7s\n' "b. bash loop of $ncust single deploys" "$lo_med" "$(vs "$lo_med" "$fl_med")" "$lo_cpu" "$(img loop 3)" "$(img loop 4)"
  printf '%-46s %8.2fs %9s %8.2fs %6s %7s\n' "c. make -j$parallel, one stamp per customer" "$mk_med" "$(vs "$mk_med" "$fl_med")" "$mk_cpu" "$(img make 3)" "$(img make 4)"
  printf '%-46s %8.2fs %9s %8.2fs %6s %7s\n' "   one customer alone (full deploy)" "$si_med" "" "$si_cpu" "$(img single 3)" "$(img single 4)"
  printf '%-46s %8.2fs\n' "   its bake (ami stage, from --json)" "$bk_med"
  printf '%-46s %8.2fs   = bake + %d x (customer - bake)\n' "d. ideal" "$ideal" "$rounds"
  printf '%-46s %9s   (best run: %s) goal <= 1.15: %s\n' "ratio a / ideal" "$ratio" "$ratio_min" "$v_ratio"
  printf '%-46s %8.2fs   ((cpu of a + moto %ss) / %d cores: the floor on this machine)\n' "CPU floor for a" "$floor" "$fl_moto" "$ncpu"
  printf '%-46s %9s   (a / max(ideal, CPU floor))\n' "ratio a / what this machine allows" "$ratio_bound"
  if [ "$v_ratio" = MISSED ]; then
    echo "MISSED: the fleet run took $ratio x the ideal (goal <= 1.15)."
    awk -v f="$floor" -v i="$ideal" 'BEGIN {if (f > i) print "  The fleet run needs " f " s of CPU per core, more than the ideal (" i " s): this machine is CPU-bound, the ideal counts only waiting."}'
  fi

  cat >> "$md" << EOF

Fleets (\`scripts/bench-fleet.sh\`): $ncust customers with one image (same \`git_id\`), the
stand-in stacks with every resource create waiting ${delay} s (\`STAMP_STANDIN_DELAY\`), each
approach from a fresh emulator, $runs run(s), median. "Builds" counts \`packer build\` runs,
"AMIs" the images registered in the emulator; CPU is user+sys of the whole process tree.

| | wall | vs \`--all\` | CPU | AMIs | builds |
|---|---|---|---|---|---|
| \`stamp deploy --all --parallel $parallel\` | $(f2 "$fl_med") s | 1.00× | $(f2 "$fl_cpu") s | $(img fleet 3) | $(img fleet 4) |
| bash loop of $ncust \`stamp deploy <c>\` | $(f2 "$lo_med") s | $(vs_md "$lo_med" "$fl_med")× | $(f2 "$lo_cpu") s | $(img loop 3) | $(img loop 4) |
| \`make -j$parallel\`, one \`stamp deploy <c>\` per target | $(f2 "$mk_med") s | $(vs_md "$mk_med" "$fl_med")× | $(f2 "$mk_cpu") s | $(img make 3) | $(img make 4) |
| ideal: bake + $rounds × (one customer − bake) | $ideal s | | | 1 | 1 |

One customer alone: $(f2 "$si_med") s, of which $(f2 "$bk_med") s bake. \`--all\` / ideal = **$ratio** (goal ≤ 1.15: $v_ratio).
On this machine the CPU floor of the \`--all\` run (CPU time of its process tree and of moto / $ncpu cores)
is $floor s: \`--all\` / max(ideal, CPU floor) = $ratio_bound.
EOF
fi

if [ "$only" != fleet ]; then
  read -r li_med li_min li_max < <(stats list 3)
  read -r va_med va_min va_max < <(stats validate 3)
  read -r _ _ li_rss < <(stats list 5)
  read -r _ _ va_rss < <(stats validate 5)
  v_li=$(verdict "$li_med" "<" 1)
  v_va=$(verdict "$va_med" "<" 5)
  # 100 MB = 97,656 KiB (time -v reports KiB).
  v_li_m=$(verdict "$li_rss" "<" 97656)
  v_va_m=$(verdict "$va_rss" "<" 97656)
  echo
  echo "== 2. $nfiles customer files, $runs run(s) each (stdout to /dev/null)"
  printf '%-24s %9s %9s %9s %12s\n' "" median min max "peak RSS"
  printf '%-24s %8.2fs %8.2fs %8.2fs %12s   time < 1 s: %s, memory < 100 MB: %s\n' "stamp list" "$li_med" "$li_min" "$li_max" "$(mib "$li_rss")" "$v_li" "$v_li_m"
  printf '%-24s %8.2fs %8.2fs %8.2fs %12s   time < 5 s: %s, memory < 100 MB: %s\n' "stamp validate --all" "$va_med" "$va_min" "$va_max" "$(mib "$va_rss")" "$v_va" "$v_va_m"
  for v in "list:$v_li:$li_med:1" "validate --all:$v_va:$va_med:5"; do
    IFS=: read -r what verdict_ secs goal <<< "$v"
    [ "$verdict_" = MISSED ] && echo "MISSED: stamp $what took $(f2 "$secs") s with $nfiles customers (goal < $goal s)."
  done
  for v in "list:$v_li_m:$li_rss" "validate --all:$v_va_m:$va_rss"; do
    IFS=: read -r what verdict_ kb <<< "$v"
    [ "$verdict_" = MISSED ] && echo "MISSED: stamp $what peaked at $(mib "$kb") (goal < 100 MB)."
  done
  cat >> "$md" << EOF

$nfiles customer files (\`scripts/bench-fleet.sh\`, $runs run(s), median wall time, peak RSS from \`/usr/bin/time -v\`):

| | wall | peak RSS | goal |
|---|---|---|---|
| \`stamp list\` | $(f2 "$li_med") s | $(mib "$li_rss") | < 1 s, < 100 MB: $v_li, $v_li_m |
| \`stamp validate --all\` | $(f2 "$va_med") s | $(mib "$va_rss") | < 5 s, < 100 MB: $v_va, $v_va_m |
EOF
fi

printf '\nMachine: %s × %s. Tools: %s, %s, moto %s; %s (%s).\n' "$ncpu" "$cpu" "$v_tf" "$v_packer" "$v_moto" "$v_stamp" "$rev" >> "$md"
echo
echo "== Markdown for docs/benchmarks.md"
cat "$md"
