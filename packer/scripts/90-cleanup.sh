#!/usr/bin/env bash
# Leave nothing build-specific in the image: package caches, shell history, SSH host keys and machine id
# (regenerated on first boot).
set -euo pipefail

apt-get -y -q autoremove
apt-get -y -q clean
rm -rf /var/lib/apt/lists/* /tmp/stamp-files
rm -f /root/.bash_history /home/ubuntu/.bash_history /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
cloud-init clean --logs
