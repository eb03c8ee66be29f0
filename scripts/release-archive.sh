#!/usr/bin/env bash
# Packs a built stamp binary as a release asset, as .github/workflows/release.yml does
# for each target: stamp-<target>.tar.gz (a directory stamp-<target>/ with the
# binary, LICENSE, README.md and CHANGELOG.md) and stamp-<target>.tar.gz.sha256
# (`sha256sum` format). The binary must say it is the tag's version.
#
#   scripts/release-archive.sh TARGET TAG BINARY OUTDIR      e.g. ... x86_64-unknown-linux-gnu v0.2.0 target/x86_64-unknown-linux-gnu/release/stamp dist
set -euo pipefail

target=${1:?usage: release-archive.sh TARGET TAG BINARY OUTDIR}
tag=${2:?usage: release-archive.sh TARGET TAG BINARY OUTDIR}
binary=${3:?usage: release-archive.sh TARGET TAG BINARY OUTDIR}
out=${4:?usage: release-archive.sh TARGET TAG BINARY OUTDIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

case "$target" in
x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
*) echo "error: target $target: the releases are x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu" >&2; exit 2 ;;
esac
version=${tag#v}
said=$("$binary" --version)
if [[ $said != "stamp $version "* && $said != "stamp $version" ]]; then
  echo "error: tag $tag, but $binary says \`$said\`: set version = \"$version\" in Cargo.toml (and CHANGELOG.md) before tagging" >&2
  exit 1
fi

name="stamp-$target"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
install -m 0755 "$binary" "$stage/$name/stamp"
for f in LICENSE README.md CHANGELOG.md; do
  if [ -f "$root/$f" ]; then
    install -m 0644 "$root/$f" "$stage/$name/$f"
  else
    echo "error: $root/$f is missing: a release ships it" >&2
    exit 1
  fi
done
mkdir -p "$out"
# Reproducible: sorted names, fixed owner and times (the commit's).
mtime=$(git -C "$root" log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -C "$stage" -cf - "$name" | gzip -n -9 > "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz: $said, sha256 $(cut -d' ' -f1 "$out/$name.tar.gz.sha256")"
