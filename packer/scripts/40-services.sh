#!/usr/bin/env bash
# puma as a systemd service on a unix socket, nginx in front of it, and the boot
# helper the user data calls. Neither service is started here: the user data
# writes the customer's configuration and secrets first, then starts them.
set -euo pipefail

install -m 0644 /tmp/stamp-files/puma.service /etc/systemd/system/puma.service
install -m 0755 /tmp/stamp-files/stamp-secrets.py /usr/local/sbin/stamp-secrets

rm -f /etc/nginx/sites-enabled/default
# The site file is the app's config/nginx/server.conf, rendered by stamp.
ln -sfn /srv/app/config/nginx/server.conf /etc/nginx/sites-enabled/app.conf
# Hide the version and keep nginx's own defaults otherwise.
printf 'server_tokens off;\n' > /etc/nginx/conf.d/stamp.conf

systemctl daemon-reload
systemctl disable --now nginx
systemctl disable puma
