#!/usr/bin/env bash
# The image's site: nginx serving app_repo at git_id from /var/www/site.
set -euo pipefail
: "${APP_REPO:?set app_repo (stamp.toml or the customer file)}"
: "${GIT_ID:?set git_id (stamp.toml or the customer file)}"

apt-get update -q
apt-get install -y -q --no-install-recommends nginx git ca-certificates
rm -rf /var/www/site
git clone --quiet -- "$APP_REPO" /var/www/site
git -C /var/www/site checkout --quiet --force "$GIT_ID"
rm -rf /var/www/site/.git
cat > /etc/nginx/sites-available/default <<'CONF'
server {
    listen 80 default_server;
    root /var/www/site;
    index index.html;
    location / {
        try_files $uri $uri/ =404;
    }
}
CONF
systemctl enable nginx
apt-get clean
