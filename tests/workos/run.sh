#!/usr/bin/env bash
# Runs both WorkOS SDK harnesses (Python workos 10.8.0 under pytest, Node @workos-inc/node 8.13.0)
# against a running server:
#   WORKOS_API_KEY=sk_… WORKOS_CLIENT_ID=client_… tests/workos/run.sh http://127.0.0.1:8080 [LABEL]
# LABEL (default "latchkey") names the results: out/LABEL-python.json and out/LABEL-node.json,
# one record per SDK call. With LABEL ≠ emulator and out/emulator-*.json present, also prints the
# differential check (compare.py). What the server must provide: README.md.
# Exit 0 only when no call failed in either harness.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: run.sh BASE_URL [LABEL]}"
label="${2:-latchkey}"
: "${WORKOS_API_KEY:?set WORKOS_API_KEY (the secret of a client with profile workos)}"
: "${WORKOS_CLIENT_ID:?set WORKOS_CLIENT_ID}"

"$here/setup.sh" >/dev/null || exit 2
mkdir -p "$here/out"
export WORKOS_BASE_URL="$target" WORKOS_TARGET="$label"
export WORKOS_RUN_ID="${WORKOS_RUN_ID:-$(date +%s)$RANDOM}"
export WORKOS_RESULTS="$here/out/$label-python.json" WORKOS_RESULTS_NODE="$here/out/$label-node.json"

cd "$here"
timeout --kill-after=30 "${WORKOS_TESTS_TIMEOUT:-900}" \
    "$here/.venv/bin/python" -m pytest -q -rfs "${@:3}"
py=$?
(cd "$here/node" && WORKOS_RUN_ID="${WORKOS_RUN_ID}n" timeout --kill-after=30 "${WORKOS_TESTS_TIMEOUT:-900}" node sdk.mjs) \
    > "$here/out/$label-node.jsonl"
nd=$?
"$here/.venv/bin/python" "$here/compare.py" summary "$here/out/$label-python.json" "$here/out/$label-node.json"
if [ "$label" != emulator ] && [ -f "$here/out/emulator-python.json" ]; then
    "$here/.venv/bin/python" "$here/compare.py" diff "$label" || py=1
fi
[ $py -eq 0 ] && [ $nd -eq 0 ]
