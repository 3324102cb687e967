#!/usr/bin/env bash
# Installs what the browser tests need on a fresh Debian machine (Python 3, Node, Rust present):
# Debian's Chromium and a venv with Playwright (driver only: never `playwright install`, which
# downloads a browser of its own), pyotp, aiosmtpd, pytest and authlib (+ requests), and Node's
# openid-client for the OIDC relying-party tests (oidc_node/, `npm ci` from its lock). Safe to
# run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
    echo "setup.sh: installing chromium from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian splits venv support out of python3.
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

"$venv/bin/python" -c "import playwright, pyotp, aiosmtpd, pytest, authlib, requests"

# openid-client (test_oidc.py runs oidc_node/rp.mjs): exactly the versions in its lock.
if ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: installing nodejs and npm from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
node_dir="$here/oidc_node"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.lock.installed"; then
    (cd "$node_dir" && npm ci --silent --no-audit --no-fund)
    cp "$node_dir/package-lock.json" "$node_dir/node_modules/.lock.installed"
fi
node -e "import('$node_dir/node_modules/openid-client/build/index.js')" 
/usr/bin/chromium --version 2>/dev/null
echo "setup.sh: ready"
