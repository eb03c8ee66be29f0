#!/usr/bin/env bash
# stamp's own overhead: wall time of `stamp deploy acme` on the emulator (moto)
# divided by the wall time of scripts/bench-baseline.sh, a bash script running the
# same tool commands in the same order with the same environment. Goal: <= 1.05.
# Also reports stamp's own peak RSS (VmHWM of the stamp process, sampled every
# 20 ms) and, from /usr/bin/time -v, the peak RSS of the whole process tree
# (the largest tool: that is terraform/aws, not stamp).
#
# Self-contained: starts its own emulator (scripts/emulator.sh: moto on a free
# loopback port), works in a temp dir
# (its own stamp.toml: the demo fleet with the REAL stacks under terraform/ on the
# real hashicorp/aws provider, the real packer template's emulator builder),
# builds stamp (release) unless STAMP_BIN is set. Every measured run is a fresh
# deploy: emulator reset and work dir wiped before each. Runs alternate order.
#
#   BENCH_RUNS=5      measured runs of each
#   STAMP_BIN=...     use this stamp binary instead of building target/release/stamp
#   BENCH_KEEP=1      keep the temp dir (logs, per-run timings) and print its path
#
# Exits non-zero if any deploy fails or the baseline's commands differ from stamp's.
set -euo pipefail

BENCH_NAME=bench
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
runs=${BENCH_RUNS:-5}
customer=acme
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"

# ---------------------------------------------------------------- prerequisites
bench_setup
# The tools the baseline runs: those stamp resolves on the same PATH.
aws_bin=$(command -v aws)
packer_bin=$(command -v packer)
terraform_bin="$tools/terraform"

# ---------------------------------------------------------------- temp dir, emulator
bench_tmpdir
emulator_start emulator

# The app's git_id is looked up in app_repo before a bake: a local one, offline, as
# the demo's (examples/demo/stamp.toml names one relative to the repository).
"$root/scripts/app-repo.sh" "$dir/app"
cfg="$dir/config"
mkdir -p "$cfg"
cp -R "$root/examples/demo/customers" "$cfg/customers"
sed -e "s|^terraform = .*|terraform = \"$root/terraform\"|" \
  -e "s|^packer = .*|packer = \"$root/packer/template.json\"|" \
  -e "s|^work = .*|work = \"$dir/work\"|" \
  -e "s|^vars = .*|vars = \"$dir/vars\"|" \
  -e "s|^app_templates = .*|app_templates = \"$root/templates/app\"|" \
  -e "s|^endpoint = .*|endpoint = \"$endpoint\"|" \
  -e "s|^app_repo = .*|app_repo = \"$dir/app\"|" \
  "$root/examples/demo/stamp.toml" > "$cfg/stamp.toml"

reset() {
  emulator_reset
  rm -rf "$dir/work" "$dir/vars"
}

# ---------------------------------------------------------------- measuring
# watch_hwm PID_OF_TIME FILE: writes the peak VmHWM (kB) of time's child to FILE.
watch_hwm() {
  local tpid=$1 out=$2 child="" max=0 k v fd
  exec {fd}<> <(:)
  while [ -z "$child" ] && [ -e "/proc/$tpid" ]; do
    child=""
    read -r child _ < "/proc/$tpid/task/$tpid/children" 2> /dev/null || true  # no trailing newline
    [ -n "$child" ] || read -r -t 0.005 -u "$fd" _ || true
  done
  [ -n "$child" ] || return 0
  while [ -e "/proc/$child/status" ]; do
    v=""
    while read -r k v _; do
      [ "$k" = VmHWM: ] && break
      v=""
    done < "/proc/$child/status" 2> /dev/null || true
    [ -n "$v" ] || break
    if ((v > max)); then max=$v; printf '%s\n' "$max" > "$out"; fi
    read -r -t 0.02 -u "$fd" _ || true
  done
}

# measure KIND RUN CMD...: one timed run; appends "kind run wall_s tree_rss_kb own_hwm_kb" to results.
measure() {
  local kind=$1 n=$2 out t0 t1 tpid wpid rc=0 us rss hwm
  shift 2
  out="$dir/runs/$kind-$n"
  mkdir -p "$out"
  t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$out/time.txt" "$@" > "$out/stdout.txt" 2> "$out/stderr.txt" &
  tpid=$!
  watch_hwm "$tpid" "$out/hwm" &
  wpid=$!
  wait "$tpid" || rc=$?
  t1=$EPOCHREALTIME
  wait "$wpid" 2> /dev/null || true
  if [ "$rc" != 0 ]; then
    tail -n 30 "$out/stderr.txt" >&2
    die "$kind run $n failed (exit $rc); output in $out (set BENCH_KEEP=1 to keep it)"
  fi
  us=$((${t1/./} - ${t0/./}))
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
  hwm=$(cat "$out/hwm" 2> /dev/null || echo 0)
  printf '%s\t%s\t%d.%06d\t%s\t%s\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000)) "$rss" "$hwm" >> "$dir/results.tsv"
  printf 'bench: %-9s run %d: %d.%02ds\n' "$kind" "$n" $((us / 1000000)) $((us % 1000000 / 10000)) >&2
}

# commands LOGDIR: the tool command lines of a deploy, in order, ids masked.
commands() {
  "$py" - "$1" << 'EOF'
import re, shlex, sys, os
d = sys.argv[1]
for stage in ("bucket", "vpc", "ami", "frontends"):
    for line in open(os.path.join(d, stage + ".log"), encoding="utf-8", errors="replace"):
        m = re.match(r"^\[[^\]]*\] \$ (.*)$", line.rstrip("\n"))
        if not m:
            continue
        t = shlex.split(m.group(1))
        assert t[0] == "cd" and t[2] == "&&", line
        cwd, argv = t[1], t[3:]
        while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
            argv.pop(0)
        s = " ".join(shlex.quote(a) for a in argv)
        s = re.sub(r"\b(ami|vpc|subnet|snap|i)-[0-9a-f]{8,}\b", r"\1-X", s)
        print(stage, cwd, s, sep=" | ")
EOF
}

# The two commands timed (`env` execs them: time's child is stamp or the baseline's bash).
stamp_cmd=(env STAMP_AWS_ENDPOINT="$endpoint" STAMP_TERRAFORM="$terraform_bin"
  "$stamp" --config "$cfg/stamp.toml" deploy "$customer" --auto-approve --no-progress)
baseline_cmd() { # RUN
  baseline=(env BL_ROOT="$cfg" BL_WORK="$dir/work" BL_VARS="$dir/vars" BL_TEMPLATE="$dir/template" BL_ENDPOINT="$endpoint"
    BL_AWS="$aws_bin" BL_TERRAFORM="$terraform_bin" BL_PACKER="$packer_bin"
    BL_PACKER_TEMPLATE="$root/packer/template.json" BL_TIMES="$dir/runs/baseline-$1/times.tsv"
    "$root/scripts/bench-baseline.sh")
}

check_stamp() { # RUN
  local out="$dir/runs/stamp-$1"
  [ "$(jq -r .status "$dir/work/$customer/last-run.json")" = ok ] || die "stamp run $1: last-run.json status is not ok"
  cp "$dir/work/$customer/last-run.json" "$out/last-run.json"
  commands "$dir/work/$customer/logs" > "$out/commands.txt"
  diff -u "$dir/reference-commands.txt" "$out/commands.txt" >&2 || die "stamp run $1 ran other commands than the reference run"
}

check_baseline() { # RUN
  local out="$dir/runs/baseline-$1"
  commands "$dir/work/$customer/logs-baseline" > "$out/commands-all.txt"
  # What stamp does in-process (the SDK) and the baseline with a process: the state
  # bucket's calls and `terraform output` (stamp reads the outputs from the state).
  grep -v -e '^bucket | ' -e '/terraform output -json -no-color$' "$out/commands-all.txt" > "$out/commands.txt" || true
  diff -u "$dir/reference-commands.txt" "$out/commands.txt" >&2 || die "baseline run $1 ran other commands than stamp (diff above)"
}

# ---------------------------------------------------------------- reference run
echo "bench: reference run (stamp, not timed: warms caches, captures generated files and commands)" >&2
mkdir -p "$dir/runs"
: > "$dir/results.tsv"
reset
measure reference 0 "${stamp_cmd[@]}"
sed -i '/^reference\t/d' "$dir/results.tsv"
commands "$dir/work/$customer/logs" > "$dir/reference-commands.txt"
tpl="$dir/template"
mkdir -p "$tpl"
cp -R "$dir/work/$customer/terraform" "$tpl/terraform"
find "$tpl/terraform" \( -name .terraform -o -name .standin -o -name 'terraform.tfstate*' \) -prune -exec rm -rf {} +
find "$tpl/terraform" -name stamp.tfplan -delete
cp -R "$dir/work/$customer/app" "$tpl/app"
cp "$dir/vars/$customer.json" "$tpl/vars.json"
cp "$tpl/terraform/frontends/production/stamp.tfvars.json" "$tpl/frontends.tfvars.json"
jq -r .template_hash "$tpl/vars.json" > "$tpl/template_hash"
# The image key stamp looked the AMI up by (fleet/bakes.rs), from its log.
grep -o 'stamp:image_key,Values=[0-9a-f]*' "$dir/work/$customer/logs/ami.log" | head -n 1 | cut -d= -f2 > "$tpl/image_key"
[ -s "$tpl/image_key" ] || die "no image key in the reference run's ami log"

# ---------------------------------------------------------------- measured runs
for n in $(seq "$runs"); do
  if ((n % 2)); then order="stamp baseline"; else order="baseline stamp"; fi
  for kind in $order; do
    reset
    mkdir -p "$dir/runs/$kind-$n"
    if [ "$kind" = stamp ]; then
      measure stamp "$n" "${stamp_cmd[@]}"
      check_stamp "$n"
    else
      baseline_cmd "$n"
      measure baseline "$n" "${baseline[@]}"
      check_baseline "$n"
    fi
  done
done

# ---------------------------------------------------------------- report
read -r s_med s_min s_max < <(stats stamp 3)
read -r b_med b_min b_max < <(stats baseline 3)
read -r _ _ s_hwm < <(stats stamp 5)
read -r _ _ s_tree < <(stats stamp 4)
read -r _ _ b_tree < <(stats baseline 4)
ratio_med=$(ratio "$s_med" "$b_med")
ratio_min=$(ratio "$s_min" "$b_min")

# Per stage: stamp's last-run.json durations vs the baseline's command times.
stages=$(for n in $(seq "$runs"); do
  jq -r --arg n "$n" '.stages[] | "stamp\t\(.name)\t\(.duration_s)"' "$dir/runs/stamp-$n/last-run.json"
  jq -r --arg n "$n" '"stamp\t(outside stages)\t\(.duration_s - ([.stages[].duration_s] | add))"' "$dir/runs/stamp-$n/last-run.json"
  awk -F'\t' -v n="$n" '{s[$1] += $2} END {for (k in s) printf "baseline\t%s\t%.3f\n", k, s[k]}' "$dir/runs/baseline-$n/times.tsv"
done)
stage_median() { # KIND STAGE
  awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s {print $3}' <<< "$stages" | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) {print "-"; exit} m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m}'
}

bench_describe

echo
echo "== stamp deploy vs bash baseline: $runs runs each, fresh deploy of $customer on moto, alternating order"
printf '%-34s %9s %9s %9s\n' "" median min max
printf '%-34s %8.2fs %8.2fs %8.2fs\n' "stamp deploy" "$s_med" "$s_min" "$s_max"
printf '%-34s %8.2fs %8.2fs %8.2fs\n' "bash baseline (same commands)" "$b_med" "$b_min" "$b_max"
printf '%-34s %9s %9s\n' "ratio stamp/baseline (goal <= 1.05)" "$ratio_med" "$ratio_min"
printf '%-34s %9s\n' "stamp peak RSS (own, max of runs)" "$(mib "$s_hwm")"
printf '%-34s %9s   (baseline: %s; the largest tool process)\n' "process tree peak RSS (time -v)" "$(mib "$s_tree")" "$(mib "$b_tree")"
echo
echo "per stage, median seconds (stamp: last-run.json; baseline: sum of its tool commands):"
printf '  %-18s %9s %9s\n' stage stamp baseline
for s in bucket vpc ami frontends "(outside stages)"; do
  printf '  %-18s %9s %9s\n' "$s" "$(stage_median stamp "$s")" "$(stage_median baseline "$s")"
done
echo
echo "== Markdown for docs/benchmarks.md"
cat << EOF

Overhead of stamp itself: a fresh \`stamp deploy $customer\` on the emulator (moto) against
\`scripts/bench-baseline.sh\`, a bash script running the same tool commands in the same order
(\`scripts/bench.sh\`, $runs runs each, alternating, emulator reset and work dir wiped before each run).

| | median | min |
|---|---|---|
| \`stamp deploy\` | $(printf '%.2f' "$s_med") s | $(printf '%.2f' "$s_min") s |
| bash baseline | $(printf '%.2f' "$b_med") s | $(printf '%.2f' "$b_min") s |
| ratio (goal ≤ 1.05) | $ratio_med | $ratio_min |
| stamp peak RSS | $(mib "$s_hwm") | |

Machine: $ncpu × $cpu. Tools: $v_tf, hashicorp/aws 5.100.0, $v_packer, $v_aws, moto $v_moto; $v_stamp ($rev).
EOF
