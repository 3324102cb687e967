#!/usr/bin/env bash
# Starts a throwaway Latchkey for the harness and runs run.sh against it:
#   tests/workos/latchkey.sh [path-to-latchkey-binary]      (default: target/debug/latchkey)
# A fresh config from `latchkey init` in a temp dir, with: [workos] enabled, a loopback port,
# cookies.secure = false, abuse limits raised for one run's worth of sign-ins from 127.0.0.1,
# mail to the log. Then an admin key, a first-party client with profile workos whose redirect
# and post-logout URI is the harness's listener, and run.sh with LATCHKEY_ADMIN_KEY (the orgs that
# require 2FA or email verification) and LATCHKEY_DB (the rehash check). Results: out/latchkey-*.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:-${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/latchkey}}"
[ -x "$bin" ] || { echo "latchkey.sh: no latchkey binary at $bin" >&2; exit 2; }
port="${WORKOS_LATCHKEY_PORT:-18080}"
redirect="${WORKOS_REDIRECT_URI:-http://127.0.0.1:8765/callback}"
dir="$(mktemp -d)"
"$here/setup.sh" >/dev/null || exit 2

"$bin" --config "$dir/lk.toml" init >/dev/null || exit 2
python3 - "$dir" "$port" <<'PY'
import re, sys
d, port = sys.argv[1], sys.argv[2]
p = f"{d}/lk.toml"
s = open(p).read()
def put(section, key, value):
    global s
    m = re.search(rf"(?ms)^\[{re.escape(section)}\]\n(.*?)(?=^\[|\Z)", s)
    body = m.group(1)
    line = f"{key} = {value}\n"
    new = re.sub(rf"(?m)^#?\s*{key} = .*\n", line, body, count=1) if re.search(rf"(?m)^#?\s*{key} = ", body) else body + line
    s = s[:m.start(1)] + new + s[m.end(1):]
put("server", "bind", f'"127.0.0.1:{port}"')
put("server", "public_url", f'"http://127.0.0.1:{port}"')
put("database", "path", f'"{d}/lk.db"')
put("cookies", "secure", "false")
for k in ("login_ip_per_minute", "email_per_hour", "email_ip_per_hour"):
    put("security", k, "10000")
put("email", "transport", '"log"')
put("workos", "enabled", "true")
open(p, "w").write(s)
PY
"$bin" --config "$dir/lk.toml" check-config >/dev/null || exit 2
"$bin" --config "$dir/lk.toml" serve > "$dir/serve.log" 2>&1 &
srv=$!
trap 'kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; cp "$dir/serve.log" "$here/out/latchkey-serve.log" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "latchkey.sh: server did not start" >&2; cat "$dir/serve.log" >&2; exit 2; }
admin_key="$("$bin" --config "$dir/lk.toml" admin-key create --name workos-harness)" || exit 2
client="$("$bin" --config "$dir/lk.toml" client create --name workos-harness --redirect-uri "$redirect" \
    --post-logout-redirect-uri "$redirect" --first-party --profile workos)" || exit 2
read -r client_id api_key < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["client"]["id"], d["clientSecret"])' "$client")

mkdir -p "$here/out"
WORKOS_API_KEY="$api_key" WORKOS_CLIENT_ID="$client_id" LATCHKEY_ADMIN_KEY="$admin_key" \
    LATCHKEY_DB="$dir/lk.db" WORKOS_REDIRECT_URI="$redirect" \
    "$here/run.sh" "http://127.0.0.1:$port" latchkey
