#!/usr/bin/env bash
# scripts/app-repo.sh DIR: a local git repository standing for the app, for the demo
# and the benchmarks, which run offline: stamp looks each git_id up in app_repo
# (git ls-remote) before it bakes, and the emulator's packer builder clones nothing.
# Branches master and main and tags v1 and v1.0.0, on one commit. Kept if it exists.
set -euo pipefail
dir=${1:?usage: scripts/app-repo.sh DIR}
if git -C "$dir" rev-parse --verify --quiet refs/heads/master >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$dir"
g() { git -C "$dir" -c user.name=stamp -c user.email=stamp@localhost -c commit.gpgsign=false -c tag.gpgsign=false "$@"; }
g init --quiet --initial-branch=master
printf 'A stand-in for the app repository (%s): the emulated bake clones nothing.\n' "$(basename "$dir")" > "$dir/README"
g add README
g commit --quiet -m "the demo app"
g branch main
g tag v1
g tag v1.0.0
