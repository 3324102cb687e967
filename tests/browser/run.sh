#!/usr/bin/env bash
# Runs the browser tests: a real `latchkey serve`, a real SMTP sink, Debian's headless Chromium.
#   tests/browser/run.sh [path-to-latchkey-binary] [extra pytest args...]
# Without a binary, builds one with cargo (honouring CARGO_TARGET_DIR). Screenshots go to
# tests/browser/out/. Exits non-zero when a test fails; bounded by BROWSER_TESTS_TIMEOUT (900 s).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

bin="${1:-}"
if [ $# -gt 0 ]; then shift; fi
if [ -z "$bin" ]; then
    bin="${LATCHKEY_BIN:-}"
fi
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --quiet --bin latchkey)
    bin="${CARGO_TARGET_DIR:-$repo/target}/debug/latchkey"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
if [ ! -x "$bin" ]; then
    echo "run.sh: no latchkey binary at $bin" >&2
    exit 2
fi

"$here/setup.sh" >/dev/null

rm -rf "$here/out"
mkdir -p "$here/out"
export LATCHKEY_BIN="$bin"
export BROWSER_TESTS_OUT="$here/out"
cd "$here"
set +e
timeout --kill-after=30 "${BROWSER_TESTS_TIMEOUT:-900}" \
    "$here/.venv/bin/python" -m pytest -p no:cacheprovider -rA "$@"
rc=$?
set -e
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "run.sh: the browser tests ran out of time" >&2
fi
echo "run.sh: screenshots in $here/out/"
exit $rc
