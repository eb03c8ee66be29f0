#!/usr/bin/env bash
# The application at the revision stamp asked for, its gems and its assets.
# Per-customer configuration and secrets are NOT baked in: the instance's user
# data writes config/*.yml, config/puma/*.rb, config/nginx/server.conf and the
# environment file at boot.
set -euo pipefail

: "${APP_REPO:?set the packer variable app_repo to the application git URL}"
: "${GIT_ID:?set the packer variable git_id to the commit to deploy}"
APP_DIR=/srv/app

as_app() { runuser -u app -- env HOME=/home/app PATH="/usr/local/bin:/usr/bin:/bin" "$@"; }

# GIT_ID is the commit stamp resolved the customer's git_id to (never a branch);
# app-checkout.sh refuses anything else and checks out exactly that commit.
revision=$(as_app env APP_REPO="${APP_REPO}" GIT_ID="${GIT_ID}" APP_DIR="${APP_DIR}" bash /tmp/stamp-files/app-checkout.sh)

cd "${APP_DIR}"
as_app bundle config --local deployment true
as_app bundle config --local without 'development test'
as_app bundle config --local path vendor/bundle
as_app bundle install --jobs "$(nproc)" --retry 3

# Asset precompilation loads the app in production; it needs a database.yml and
# a secret that exist at build time only. Neither is the real one: both are
# replaced at boot by the user data.
as_app install -d -m 0750 tmp/sockets tmp/pids log
placeholder_db_yml=false
if [ ! -f config/database.yml ]; then
  as_app cp /tmp/stamp-files/database.build.yml config/database.yml
  placeholder_db_yml=true
fi
as_app env RACK_ENV=production RAILS_ENV=production \
  SECRET_KEY_BASE="$(openssl rand -hex 64)" \
  DATABASE_HOST=127.0.0.1 DATABASE_NAME=build DATABASE_USERNAME=build DATABASE_PASSWORD=build \
  bundle exec rake assets:precompile
if [ "${placeholder_db_yml}" = true ]; then
  rm -f config/database.yml
fi

printf '%s\n' "${revision}" > "${APP_DIR}/REVISION"
chown app:app "${APP_DIR}/REVISION"
printf 'git_id=%s\nrevision=%s\ntemplate_hash=%s\n' "${GIT_ID}" "${revision}" "${TEMPLATE_HASH:-unknown}" > /etc/stamp/release
chmod 0644 /etc/stamp/release
