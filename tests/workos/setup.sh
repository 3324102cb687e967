#!/usr/bin/env bash
# Installs what the WorkOS SDK harness needs (Python 3, Node 20 present): a venv with the official
# Python SDK `workos` 10.8.0, bcrypt (a legacy hash to import), pyotp (TOTP codes), pytest and
# Playwright (driver only, never `playwright install`: it drives Debian's /usr/bin/chromium), and
# `npm ci` in node/ for `@workos-inc/node` 8.13.0 and WorkOS's emulator (`workos` 0.14.0).
# Safe to run again: each part is redone only when its pin list changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ] && [ -z "${WORKOS_NO_BROWSER:-}" ]; then
    echo "setup.sh: installing chromium from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
stamp="$venv/.requirements.installed"
if [ ! -f "$stamp" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
"$venv/bin/python" -c "import workos, bcrypt, pyotp, pytest, playwright"

if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
nstamp="$here/node/node_modules/.package-lock.installed"
if [ ! -f "$nstamp" ] || ! cmp -s "$here/node/package-lock.json" "$nstamp"; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/node/package-lock.json" "$nstamp"
fi
(cd "$here/node" && node --input-type=module -e "await import('@workos-inc/node')")
echo "setup.sh: ready"
