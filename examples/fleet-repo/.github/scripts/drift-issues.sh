#!/usr/bin/env bash
# One GitHub issue per drifted customer, kept up to date from `stamp drift --json`
# (the nightly drift workflow runs it; GH_TOKEN needs `issues: write`):
# - a customer that drifted: its open issue (label stamp-drift, title
#   "stamp drift: <customer>") is opened, or its text replaced by tonight's findings;
# - a customer in sync, pending only, or not deployed: its open issue is closed;
# - a customer whose check failed: its issue is left as it is (nothing is known).
#
#   .github/scripts/drift-issues.sh drift.json
#
# RUN_URL, when set, is linked from the issues (the workflow run with the logs).
set -euo pipefail

report=${1:?usage: drift-issues.sh DRIFT_JSON}
label=stamp-drift
# {"schema_version": 2, "kind": "drift", "customers": [...], "summary": {...}} whatever
# the number of customers (docs/schema/drift.schema.json).
if ! jq -e '.kind == "drift" and (.customers | type) == "array"' "$report" > /dev/null 2>&1; then
  echo "error: $report is not stamp drift's JSON: nothing to bring the issues up to date with" >&2
  exit 1
fi
customers=$(jq -c '.customers[]' "$report")

gh label create "$label" --color d93f0b --description "stamp drift: infrastructure changed outside terraform" --force > /dev/null
open=$(gh issue list --label "$label" --state open --limit 1000 --json number,title)

issue_of() {
  jq -r --arg t "stamp drift: $1" '[.[] | select(.title == $t) | .number][0] // ""' <<< "$open"
}

body=$(mktemp)
trap 'rm -f "$body"' EXIT
while IFS= read -r c; do
  [ -n "$c" ] || continue
  name=$(jq -r '.customer' <<< "$c")
  state=$(jq -r '.drift' <<< "$c")
  number=$(issue_of "$name")
  case "$state" in
  drifted)
    {
      echo "stamp drift found resources of **$name** ($(jq -r '"\(.env), \(.region)"' <<< "$c")) that differ from their state: changed outside terraform."
      echo
      jq -r '.stages[] | select(.drifted != null) | .name as $s | .drifted[]
             | "- `\($s)`: \(.action) `\(.address)`\(if (.attributes // []) != [] then " (" + (.attributes | join(", ")) + ")" else "" end)"' <<< "$c"
      echo
      echo "Checked $(date -u +%Y-%m-%dT%H:%MZ)${RUN_URL:+ by $RUN_URL}. \`stamp plan $name\` shows what a deploy would put back;"
      echo "this issue closes itself once the nightly check finds no drift."
    } > "$body"
    if [ -z "$number" ]; then
      gh issue create --title "stamp drift: $name" --label "$label" --body-file "$body"
    else
      gh issue edit "$number" --body-file "$body"
      echo "updated issue #$number: $name still drifts"
    fi
    ;;
  "in sync" | pending | "not deployed")
    if [ -n "$number" ]; then
      gh issue close "$number" --comment "No drift any more: $name is $state ($(date -u +%Y-%m-%dT%H:%MZ)${RUN_URL:+, $RUN_URL})."
    fi
    ;;
  *)
    echo "warning: $name could not be checked ($state): its issue is left as it is" >&2
    ;;
  esac
done <<< "$customers"
