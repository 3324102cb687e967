#!/usr/bin/env bash
# The differential baseline: starts WorkOS's own emulator (`workos emulate` from npm workos 0.14.0,
# in-memory, key sk_test_default, any client id), runs both harnesses against it and keeps the
# results in out/emulator-python.json and out/emulator-node.json (EMULATOR.md reads them).
#   tests/workos/emulate.sh            (port: WORKOS_EMULATOR_PORT, default 4100)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${WORKOS_EMULATOR_PORT:-4100}"
"$here/setup.sh" >/dev/null || exit 2
mkdir -p "$here/out"

(cd "$here/node" && exec node node_modules/workos/dist/bin.js emulate --port "$port" --json) \
    > "$here/out/emulator.log" 2>&1 &
emu=$!
trap 'kill "$emu" 2>/dev/null; wait "$emu" 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "emulate.sh: emulator did not start" >&2; cat "$here/out/emulator.log" >&2; exit 2; }

WORKOS_API_KEY=sk_test_default WORKOS_CLIENT_ID="${WORKOS_CLIENT_ID:-client_emulate}" \
    "$here/run.sh" "http://127.0.0.1:$port" emulator
rc=$?
echo "emulate.sh: results in $here/out/emulator-python.json and $here/out/emulator-node.json"
exit $rc
