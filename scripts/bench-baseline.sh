#!/usr/bin/env bash
# The hand-written baseline scripts/bench.sh times `stamp deploy` against: the
# same tool commands stamp runs for a fresh deploy of one customer, in the same
# order, with the same arguments, working directories and environment, and the
# same generated files -- taken from a reference stamp run (BL_TEMPLATE) and
# completed with this run's ids (vpc/subnets, AMI) exactly as stamp does.
# bench.sh checks after every run that the command lines match stamp's one to one,
# but for what stamp does in-process through the AWS SDK and a bash script can only
# do with a process: the state bucket (the aws CLI here) and the stacks' outputs
# (`terraform output` here; stamp reads them from the state object).
#
# Not meant to be run by hand: bench.sh sets these variables.
#   BL_ROOT      directory stamp runs the aws CLI and `packer version` in (the config dir)
#   BL_WORK      stamp's [paths] work (holds terraformrc, plugin-cache, <customer>/)
#   BL_VARS      stamp's [paths] vars (the packer var file goes there)
#   BL_TEMPLATE  generated files of the reference run: terraform/, app/, vars.json,
#                frontends.tfvars.json, template_hash, image_key
#   BL_ENDPOINT  the emulator's URL
#   BL_AWS BL_TERRAFORM BL_PACKER  the tools (absolute paths, as stamp resolved them)
#   BL_PACKER_TEMPLATE  the packer template (absolute)
#   BL_TIMES     file receiving "stage<TAB>seconds<TAB>command" per command
#   BL_CUSTOMER BL_REGION BL_ENV BL_GIT_ID  the customer (acme, eu-west-1, production, master)
set -euo pipefail

customer=${BL_CUSTOMER:-acme}
region=${BL_REGION:-eu-west-1}
env_name=${BL_ENV:-production}
git_id=${BL_GIT_ID:-master}
root=$BL_ROOT
work=$BL_WORK
cust="$work/$customer"
logs="$cust/logs-baseline"
aws=$BL_AWS
terraform=$BL_TERRAFORM
packer=$BL_PACKER
times=$BL_TIMES
image_key=$(<"$BL_TEMPLATE/image_key")

# The environment stamp gives every tool (tool_env, src/tools/find.rs).
export AWS_DEFAULT_REGION="$region" AWS_REGION="$region" AWS_PAGER="" \
  TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 AWS_ENDPOINT_URL="$BL_ENDPOINT"
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ -z "${AWS_PROFILE:-}" ]; then
  export AWS_ACCESS_KEY_ID=stamp-emulator AWS_SECRET_ACCESS_KEY=stamp-emulator
fi
mkdir -p "$work" "$logs"
if [ -z "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "${HOME:-/nonexistent}/.terraformrc" ]; then
  [ -e "$work/terraformrc" ] || : > "$work/terraformrc"
  export TF_CLI_CONFIG_FILE="$work/terraformrc"
fi
if [ -z "${TF_PLUGIN_CACHE_DIR:-}" ]; then
  mkdir -p "$work/plugin-cache"
  export TF_PLUGIN_CACHE_DIR="$work/plugin-cache"
fi

stage=""
log=""
begin_stage() { stage=$1 log="$logs/$1.log"; : > "$log"; }

# summary CMD...: sets $sum to "aws s3api head-bucket", "terraform plan", ... (no fork).
sum=""
summary() {
  sum=${1##*/}
  shift
  if [ "${1:-}" = --endpoint-url ]; then shift 2; fi
  sum+=" ${1:-}"
  if [[ ${2:-} != -* ]]; then sum+=" ${2:-}"; fi
}

# run OK_CODES DIR OUT CMD...: runs CMD in DIR with stdin closed, stdout to OUT
# (or the stage log if OUT is -), stderr to the stage log; logs the command line
# like stamp does and its duration to $times. Sets $rc; fails unless rc is in OK_CODES.
run() {
  local ok=$1 dir=$2 out=$3 t0 t1
  shift 3
  local line
  printf -v line ' %q' "$@"
  printf '\n[%s] $ cd %q &&%s\n' "$EPOCHREALTIME" "$dir" "$line" >> "$log"
  [ "$out" = - ] && out=$log
  t0=$EPOCHREALTIME
  rc=0
  (cd "$dir" && exec "$@") < /dev/null >> "$out" 2>> "$log" || rc=$?
  t1=$EPOCHREALTIME
  summary "$@"
  local us=$((${t1/./} - ${t0/./}))
  printf '%s\t%d.%06d\t%s\n' "$stage" $((us / 1000000)) $((us % 1000000)) "$sum" >> "$times"
  if [[ " $ok " != *" $rc "* ]]; then
    echo "bench-baseline: $* exited $rc (log $log)" >&2
    exit 1
  fi
}

tmp="$cust/.baseline-tmp"
mkdir -p "$tmp"

# ---------------------------------------------------------------- bucket
begin_stage bucket
run 0 "$root" "$tmp/sts.json" "$aws" --endpoint-url "$BL_ENDPOINT" sts get-caller-identity --output json
cat "$tmp/sts.json" >> "$log"
account=$(jq -er .Account "$tmp/sts.json")
bucket="tfstate-$account-$customer"
run "0 254 255" "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" s3api head-bucket --bucket "$bucket"
if [ "$rc" != 0 ]; then
  run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" s3 mb "s3://$bucket" --region "$region"
fi
run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" s3api put-bucket-versioning --bucket "$bucket" \
  --versioning-configuration Status=Enabled
run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" s3api put-bucket-encryption --bucket "$bucket" \
  --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"},"BucketKeyEnabled":true}]}'
run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" s3api put-public-access-block --bucket "$bucket" \
  --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true

# ---------------------------------------------------------------- stacks
# stack DIR: init, plan, apply when the plan has changes, outputs to $tmp/outputs.json.
stack() {
  local dir=$1
  if [ -f "$dir/stamp.s3.tfbackend" ]; then # a partial backend "s3" {}, completed per customer
    run 0 "$dir" - "$terraform" init -input=false -no-color -reconfigure -backend-config=stamp.s3.tfbackend
  else
    run 0 "$dir" - "$terraform" init -input=false -no-color -reconfigure
  fi
  run "0 2" "$dir" - "$terraform" plan -input=false -json -detailed-exitcode -lock-timeout=60s -out=stamp.tfplan -var-file=stamp.tfvars.json
  if [ "$rc" = 2 ]; then
    run 0 "$dir" - "$terraform" apply -input=false -json -lock-timeout=60s stamp.tfplan
  fi
  run 0 "$dir" "$tmp/outputs.json" "$terraform" output -json -no-color
  cat "$tmp/outputs.json" >> "$log"
}

# The working copy with stamp's generated files (backend, tfvars, remote state).
begin_stage vpc
mkdir -p "$cust/terraform"
cp -R "$BL_TEMPLATE/terraform/." "$cust/terraform/"
stack "$cust/terraform/vpc"
jq -c '{vpc_id: .vpc_id.value, build_subnet_id: .build_subnet_id.value,
        public_subnet_ids: .public_subnet_ids.value, private_subnet_ids: .private_subnet_ids.value}' \
  "$tmp/outputs.json" > "$tmp/vpc.json"

# ---------------------------------------------------------------- ami
begin_stage ami
mkdir -p "$BL_VARS"
jq --slurpfile v "$tmp/vpc.json" '.build_vpc = $v[0].vpc_id | .build_subnet = $v[0].build_subnet_id' \
  "$BL_TEMPLATE/vars.json" > "$BL_VARS/$customer.json"
mkdir -p "$cust/app"
cp -R "$BL_TEMPLATE/app/." "$cust/app/"
# The image of this customer's inputs, by the key stamp computed (see fleet/bakes.rs).
run 0 "$root" "$tmp/images.json" "$aws" --endpoint-url "$BL_ENDPOINT" ec2 describe-images --owners self --output json --filters \
  "Name=tag-key,Values=stamp:template_hash" "Name=tag:stamp:image_key,Values=$image_key"
cat "$tmp/images.json" >> "$log"
ami=$(jq -r '[.Images[]?] | sort_by(.CreationDate) | reverse | .[0].ImageId // empty' "$tmp/images.json")
if [ -z "$ami" ]; then
  run 0 "$root" - "$packer" version
  export PACKER_NO_COLOR=1
  # stamp bakes in a copy of the template directory of its own.
  bake="$work/bakes/$image_key/$customer"
  mkdir -p "$bake"
  cp -R "$(dirname "$BL_PACKER_TEMPLATE")/." "$bake/"
  run 0 "$bake" "$tmp/packer.out" "$packer" build -machine-readable \
    "-var-file=$BL_VARS/$customer.json" -only=emulator "$(basename "$BL_PACKER_TEMPLATE")"
  unset PACKER_NO_COLOR
  cat "$tmp/packer.out" >> "$log"
  # `time,builder,artifact,0,id,eu-west-1:ami-...`
  ami=$(awk -F, -v r="$region" '$3 == "artifact" && $5 == "id" { n = split($6, p, "%!\\(PACKER_COMMA\\)");
        for (i = 1; i <= n; i++) { split(p[i], kv, ":"); if (kv[1] == r) { print kv[2]; exit } } }' "$tmp/packer.out")
  case "$ami" in ami-*) ;; *) echo "bench-baseline: packer reported no AMI in $region" >&2; exit 1 ;; esac
  # packer tagged the image (customer, commit, template hash, image key); stamp reads
  # the tags back to check them and adds the git_id as the customer wrote it.
  run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" ec2 describe-images --image-ids "$ami" --query 'Images[0].Tags' --output json
  run 0 "$root" - "$aws" --endpoint-url "$BL_ENDPOINT" ec2 create-tags --resources "$ami" --tags "Key=stamp:git_id,Value=$git_id"
fi

# ---------------------------------------------------------------- frontends
begin_stage frontends
fe="$cust/terraform/frontends/$env_name"
jq --arg ami "$ami" --slurpfile v "$tmp/vpc.json" \
  '.ami_id = $ami | .vpc_id = $v[0].vpc_id | .public_subnet_ids = $v[0].public_subnet_ids | .private_subnet_ids = $v[0].private_subnet_ids' \
  "$BL_TEMPLATE/frontends.tfvars.json" > "$fe/stamp.tfvars.json"
stack "$fe"
rm -rf "$tmp"
echo "bench-baseline: deployed $customer (ami $ami)" >&2
