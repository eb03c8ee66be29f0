#!/usr/bin/env bash
# The from-scratch release build, measured: `scripts/bench-build.sh [REV...]` (default
# HEAD; WORKTREE is the working tree with its uncommitted changes). For each REV, back
# to back: its files (git archive) in a scratch directory, an empty CARGO_TARGET_DIR,
# `cargo build --release --locked --timings`, and the figures: wall time, CPU time
# (user+sys, which the machine's other work disturbs less than wall time), the number
# of crates compiled, the size of the binary, and the ten slowest units from cargo's
# timings. Downloads are excluded (`cargo fetch` first). Figures in docs/build-time.md.
#
#   scripts/bench-build.sh 89cff34 HEAD     # before and after, under the same load
#   BENCH_DIR=/work/buildtime-target        # the scratch directory (deleted per run)
#   BENCH_DEMO=1                            # then a fresh `make demo` too (below)
#   BENCH_KEEP=DIR                          # keep each binary as DIR/stamp-REV
#
# With BENCH_DEMO=1, after the build: a fresh `make demo` in another copy of REV, as a
# new user runs it from a fresh clone: an empty .tools/ (pip installs moto and the AWS
# CLI; a terraform and packer already on the machine are used, as setup-tools.sh does),
# an empty target/, then the demo's deploy against the emulator. pip's download cache
# is left as it is (warm after the first run), so both REVs install alike.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch="${BENCH_DIR:-/tmp/stamp-bench-build}"
[ "$#" -gt 0 ] || set -- HEAD

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "toolchain: $(rustc --version), $(cargo --version)"

for rev in "$@"; do
  if [ "$rev" = WORKTREE ]; then
    commit=$(git -C "$root" stash create)
    commit=${commit:-$(git -C "$root" rev-parse HEAD)}
  else
    commit=$(git -C "$root" rev-parse --verify "$rev^{commit}")
  fi
  rm -rf "$scratch"
  mkdir -p "$scratch/src"
  git -C "$root" archive "$commit" | tar -x -C "$scratch/src"
  cd "$scratch/src"
  cargo fetch --locked --quiet
  export CARGO_TARGET_DIR="$scratch/target"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -v -o "$scratch/time.txt" cargo build --release --locked --timings >"$scratch/build.log" 2>&1 || {
    tail -30 "$scratch/build.log" >&2
    echo "bench-build: the build of $rev failed" >&2
    exit 1
  }
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  python3 - "$rev" "$commit" "$scratch" "$load_before" "$load_after" <<'PY'
import json, re, sys, pathlib
rev, commit, scratch, load_before, load_after = sys.argv[1:]
scratch = pathlib.Path(scratch)
t = (scratch / "time.txt").read_text()
def field(name):
    return re.search(re.escape(name) + r": (.*)", t).group(1).strip()
user, sys_ = float(field("User time (seconds)")), float(field("System time (seconds)"))
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
log = (scratch / "build.log").read_text()
crates = len(re.findall(r"^\s*Compiling ", log, re.M))
binary = scratch / "target/release/stamp"
size = binary.stat().st_size / 1e6 if binary.exists() else 0
print(f"\n== {rev} ({commit[:9]})")
print(f"wall {secs:.0f} s, cpu {user + sys_:.0f} s (user {user:.0f} + sys {sys_:.0f}), {crates} crates, "
      f"binary {size:.1f} MB, max rss {int(field('Maximum resident set size (kbytes)')) // 1024} MiB")
print(f"load average before {load_before}, after {load_after}")
html = scratch / "target/cargo-timings/cargo-timing.html"
m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", html.read_text(), re.S) if html.exists() else None
if m:
    units = json.loads(m.group(1))
    units.sort(key=lambda u: -u["duration"])
    print("slowest units (s, wall time of each, overlapping):")
    for u in units[:10]:
        print(f"  {u['duration']:6.1f}  {u['name']} {u['version']}{' (' + u['target'].strip() + ')' if u['target'].strip() else ''}")
PY
  if [ -n "${BENCH_KEEP:-}" ]; then
    mkdir -p "$BENCH_KEEP"
    cp "$scratch/target/release/stamp" "$BENCH_KEEP/stamp-$rev"
  fi
  if [ "${BENCH_DEMO:-}" = 1 ]; then
    rm -rf "$scratch"
    mkdir -p "$scratch/demo"
    git -C "$root" archive "$commit" | tar -x -C "$scratch/demo"
    cd "$scratch/demo"
    start=$(date +%s)
    env -u CARGO_TARGET_DIR -u MAKEFLAGS /usr/bin/time -v -o "$scratch/demo-time.txt" make demo >"$scratch/demo.log" 2>&1 || {
      tail -30 "$scratch/demo.log" >&2
      echo "bench-build: make demo of $rev failed" >&2
      exit 1
    }
    took=$(( $(date +%s) - start ))
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.0f", s}' "$scratch/demo-time.txt")
    echo "fresh make demo: wall $took s, cpu $cpu s (user+sys of make and its children), load average after $(cut -d' ' -f1-3 /proc/loadavg)"
    grep -m1 "is deployed" "$scratch/demo.log" || true
  fi
  cd "$root"
done
rm -rf "$scratch"
