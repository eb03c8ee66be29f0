#!/usr/bin/env bash
# Prints the root of an unpacked hashicorp/aws provider mirror (Terraform's
# filesystem-mirror layout: ROOT/registry.terraform.io/hashicorp/aws/VERSION/OS_ARCH/
# terraform-provider-aws_v*), or nothing and exit 1 when there is none.
#   STAMP_TF_PROVIDER_MIRROR=ROOT  names it; it must hold the provider, or this fails.
# Otherwise the usual places are searched, shallowest first.
set -euo pipefail

holds_aws() {
  compgen -G "$1/registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws_v*" >/dev/null
}

if [ -n "${STAMP_TF_PROVIDER_MIRROR:-}" ]; then
  if holds_aws "$STAMP_TF_PROVIDER_MIRROR"; then
    (cd "$STAMP_TF_PROVIDER_MIRROR" && pwd)
    exit 0
  fi
  echo "provider-mirror: STAMP_TF_PROVIDER_MIRROR=$STAMP_TF_PROVIDER_MIRROR holds no registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_v*" >&2
  exit 1
fi

for dir in /opt/tf-plugins /opt/terraform/plugins /usr/local/share/terraform/plugins /usr/share/terraform/plugins \
  "${HOME:-/root}/.terraform.d/plugins" "${HOME:-/root}/.local/share/terraform/plugins"; do
  if [ -d "$dir" ] && holds_aws "$dir"; then
    echo "$dir"
    exit 0
  fi
done
# Anywhere else under the usual roots (bounded depth; errors from unreadable dirs ignored).
found=$(find /opt /usr/local /usr/share /srv "${HOME:-/root}" -maxdepth 9 -type f -path '*/registry.terraform.io/hashicorp/aws/*/terraform-provider-aws_v*' 2>/dev/null | head -n 1 || true)
if [ -n "$found" ]; then
  # ROOT/registry.terraform.io/hashicorp/aws/VERSION/OS_ARCH/FILE -> ROOT
  dirname "$(dirname "$(dirname "$(dirname "$(dirname "$(dirname "$found")")")")")"
  exit 0
fi
exit 1
