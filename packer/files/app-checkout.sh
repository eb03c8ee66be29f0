#!/usr/bin/env bash
# Clones APP_REPO into APP_DIR and checks out exactly GIT_ID, a full commit hash:
# stamp resolves the customer's git_id (a branch, a tag) to the commit before the
# build and passes only the hash, so the image holds the commit its key names even
# if the branch moves during the build. Run as the app user by 30-app.sh.
set -euo pipefail

: "${APP_REPO:?set APP_REPO to the application git URL}"
: "${GIT_ID:?set GIT_ID to the commit to deploy}"
: "${APP_DIR:?set APP_DIR to the directory to clone into}"

case "${GIT_ID}" in
  *[!0-9a-f]*)
    echo "app-checkout: GIT_ID=${GIT_ID} is not a full commit hash (stamp passes the commit its git_id names)" >&2
    exit 2
    ;;
esac
if [ "${#GIT_ID}" -ne 40 ] && [ "${#GIT_ID}" -ne 64 ]; then
  echo "app-checkout: GIT_ID=${GIT_ID} is not a full commit hash (40 or 64 hex digits)" >&2
  exit 2
fi
case "${APP_REPO}" in
  -* | *::*)
    echo "app-checkout: APP_REPO=${APP_REPO} is not a repository address" >&2
    exit 2
    ;;
esac

# `--` before every argument that comes from outside: git never reads one as an option.
if [ ! -d "${APP_DIR}/.git" ]; then
  git -c protocol.ext.allow=never clone --quiet --no-checkout -- "${APP_REPO}" "${APP_DIR}"
fi
git -C "${APP_DIR}" -c protocol.ext.allow=never fetch --quiet --tags origin
# A commit that no branch or tag points at any more (its branch moved on) is
# fetched by its hash.
if ! git -C "${APP_DIR}" cat-file -e "${GIT_ID}^{commit}" 2>/dev/null; then
  git -C "${APP_DIR}" -c protocol.ext.allow=never fetch --quiet origin -- "${GIT_ID}"
fi
git -C "${APP_DIR}" checkout --quiet --force --detach "${GIT_ID}" --
revision=$(git -C "${APP_DIR}" rev-parse --verify HEAD)
if [ "${revision}" != "${GIT_ID}" ]; then
  echo "app-checkout: checked out ${revision}, not ${GIT_ID}" >&2
  exit 1
fi
echo "${revision}"
