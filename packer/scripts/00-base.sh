#!/usr/bin/env bash
# System packages for the Rails app on Ubuntu 24.04, and the unprivileged user
# the app runs as. Everything here comes from the signed Ubuntu archive.
set -euo pipefail

# cloud-init may still be running apt when packer connects.
cloud-init status --wait >/dev/null || true

# shellcheck source=/dev/null
. /etc/os-release
if [ "${ID}" != "ubuntu" ] || [ "${VERSION_ID}" != "24.04" ]; then
  echo "00-base: expected Ubuntu 24.04, got ${PRETTY_NAME}; the Ruby 2.3 build below is only tested there" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
apt-get -y -q install --no-install-recommends \
  build-essential autoconf bison pkg-config ca-certificates curl git perl \
  libreadline-dev libyaml-dev libffi-dev libgdbm-dev libncurses-dev zlib1g-dev \
  libxml2-dev libxslt1-dev libmysqlclient-dev mysql-client \
  nodejs nginx python3 python3-boto3 jq

id app >/dev/null 2>&1 || useradd --system --create-home --home-dir /home/app --shell /usr/sbin/nologin app
# nginx (www-data) reads the assets and the puma socket through the app group.
usermod -a -G app www-data

install -d -m 0750 -o app -g app /srv/app
install -d -m 0750 -o root -g app /etc/stamp
