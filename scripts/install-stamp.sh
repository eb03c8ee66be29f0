#!/usr/bin/env bash
# Installs a released stamp binary, as the composite action (action.yml) does:
# downloads stamp-<target>.tar.gz and its .sha256 file from BASE/download/vVERSION/
# (BASE/latest/download/ for `latest`), refuses a checksum that does not match, and
# puts the binary in DEST.
#
#   scripts/install-stamp.sh VERSION BASE DEST
#
# BASE is a release download URL such as https://github.com/OWNER/stamp/releases,
# a file:// URL or a directory (the tests point it at a locally built archive).
# Empty: the releases of the repository the action was used from
# (ACTION_REPOSITORY, else the OWNER/REPO of GITHUB_ACTION_PATH, which the runner
# checks out at .../_actions/OWNER/REPO/REF).
set -euo pipefail

version=${1:?usage: install-stamp.sh VERSION BASE DEST}
base=${2-}
dest=${3:?usage: install-stamp.sh VERSION BASE DEST}

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64) target=x86_64-unknown-linux-gnu ;;
Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-gnu ;;
*)
  echo "error: stamp is released for Linux x86_64 and aarch64, not $(uname -s) $(uname -m)" >&2
  echo "  hint: build it instead: cargo install --locked --git https://github.com/OWNER/stamp --tag v<version>" >&2
  exit 2
  ;;
esac

if [ -z "$base" ]; then
  repo=${ACTION_REPOSITORY-}
  if [ -z "$repo" ] && [[ ${GITHUB_ACTION_PATH-} =~ /_actions/([^/]+)/([^/]+)/[^/]+/?$ ]]; then
    repo="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
  fi
  if [ -z "$repo" ]; then
    echo "error: no download-url given and no action repository to take releases from" >&2
    echo "  hint: set the action's download-url input (e.g. https://github.com/OWNER/stamp/releases)" >&2
    exit 2
  fi
  base="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases"
fi
case "$base" in
/*) base="file://$base" ;;
esac
base=${base%/}

version=${version#v}
if [ "$version" = latest ]; then
  from="$base/latest/download"
elif [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
  from="$base/download/v$version"
else
  echo "error: stamp-version \`$1\` is not a version: give one such as 0.2.0 (or v0.2.0), or latest" >&2
  exit 2
fi

archive="stamp-$target.tar.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$archive" "$archive.sha256"; do
  if ! curl -fsSL --retry 3 --retry-delay 2 -o "$tmp/$f" "$from/$f"; then
    echo "error: cannot download $from/$f" >&2
    echo "  hint: is there a release v$version with that file? (stamp-version, download-url)" >&2
    exit 1
  fi
done

expected=$(awk 'NR == 1 { print $1 }' "$tmp/$archive.sha256")
actual=$(sha256sum "$tmp/$archive" | awk '{ print $1 }')
if [ "$expected" != "$actual" ]; then
  echo "error: checksum mismatch for $from/$archive" >&2
  echo "  expected (from $archive.sha256): $expected" >&2
  echo "  downloaded file:                 $actual" >&2
  echo "  hint: the archive is not the one the release published: nothing was installed" >&2
  exit 1
fi

tar -xzf "$tmp/$archive" -C "$tmp"
mkdir -p "$dest"
install -m 0755 "$tmp/stamp-$target/stamp" "$dest/stamp"
said=$("$dest/stamp" --version)
if [ "$version" != latest ] && [[ $said != "stamp $version "* && $said != "stamp $version" ]]; then
  echo "error: $from/$archive holds \`$said\`, not stamp $version" >&2
  rm -f "$dest/stamp"
  exit 1
fi
echo "installed $said in $dest (sha256 $actual)"
