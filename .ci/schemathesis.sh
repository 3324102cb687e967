#!/usr/bin/env bash
# Fuzzes a live Latchkey with schemathesis, driven by the server's own OpenAPI document
# (GET /api/v1/openapi.json). Fails on any 5xx, and on any answer whose status, content type,
# headers or body the document does not describe.
#
# Needs the Rust toolchain and Python 3 (schemathesis is installed from PyPI into a venv under
# ${LATCHKEY_CI_CACHE:-~/.cache/latchkey-ci}). Knobs (environment):
#   ST_MAX_EXAMPLES  test cases per operation and pass (default 20)
#   ST_TIMEOUT       seconds for the whole fuzzing (default 1200)
#   ST_SEED          hypothesis seed (default: random; printed by schemathesis for a rerun)
#   ST_WORKERS       concurrent schemathesis workers (default 1: on CPython 3.11.7 concurrent
#                    workers crash hypothesis in ast.parse, "AST constructor recursion depth
#                    mismatch", a CPython bug fixed in 3.11.8 and 3.12)
#   ST_REPORT_DIR    when set, HAR and NDJSON reports of every request go there
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CACHE="${LATCHKEY_CI_CACHE:-$HOME/.cache/latchkey-ci}"
VENV="$CACHE/venv"
# v4 CLI (`-c`, `-n`, `--phases`, schemathesis.toml with [[operations]]); v3 differs. v4 runs
# hypothesis without a deadline (settings(deadline=None)), so a slow answer is not a failure.
SCHEMATHESIS_REQ="schemathesis>=4.32,<5"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-20}"
TIMEOUT="${ST_TIMEOUT:-1200}"
WORKERS="${ST_WORKERS:-1}"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"

echo "== schemathesis: venv in $VENV"
mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q "$SCHEMATHESIS_REQ" "openapi-spec-validator>=0.7,<1"
ST="$VENV/bin/schemathesis"
PY="$VENV/bin/python"
"$ST" --version

echo "== schemathesis: cargo build"
cargo build -q --bin latchkey
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/latchkey"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
CONFIG="$WORK/latchkey.toml"
cat >"$CONFIG" <<EOF
[server]
bind = "127.0.0.1:$PORT"
public_url = "$BASE"
threads = 8

[database]
path = "$WORK/latchkey.db"

[tokens]
# Outlives the run: a token that expired mid-run would turn every later call into a 401.
access_ttl = "6h"

[cookies]
secure = false

[security]
secret_key = "$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
# Generous limits: the fuzzer is one client hammering login, email and /public endpoints.
login_ip_per_minute = 1000000
login_max_failures = 1000000
account_max_failures = 1000000
second_factor_max_failures = 1000000
api_key_login_failures_per_minute = 1000000
public_api_per_minute = 1000000
email_per_hour = 1000000
email_ip_per_hour = 1000000
hash_queue = 4096

[argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[log]
level = "warn"
EOF
"$BIN" --config "$CONFIG" check-config

echo "== schemathesis: server on $BASE"
ADMIN_KEY=$("$BIN" --config "$CONFIG" admin-key create --name schemathesis)
"$BIN" --config "$CONFIG" serve 2>"$WORK/server.log" &
SERVER_PID=$!
"$PY" - "$BASE" <<'PYEOF'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("server did not come up")
PYEOF

# `fixture SLUG`: through the API, an org SLUG with an owner who logs in and makes an API key;
# prints `ACCESS_TOKEN API_KEY`.
fixture() {
  "$PY" - "$BASE" "$ADMIN_KEY" "$1" <<'PYEOF'
import json, sys, urllib.request, urllib.error
base, admin, slug = sys.argv[1:4]
password = "schemathesis owner password 1"

def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["data"]
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read()!r}")

op = {"Authorization": "Bearer " + admin}
call("POST", "/api/v1/admin/orgs", {"slug": slug, "name": slug, "settings": {"signupMode": "open"}}, op)
email = f"owner@{slug}.test"
user = call("POST", "/api/v1/admin/users", {"email": email, "password": password, "name": "Owner",
                                            "isEmailVerified": True}, op)["user"]
call("POST", f"/api/v1/admin/orgs/{slug}/members", {"userId": user["id"], "role": "owner"}, op)
token = call("POST", "/api/v1/auth/login", {"email": email, "password": password},
             {"X-Org-Slug": slug})["accessToken"]
key = call("POST", "/api/v1/org/api-keys", {"name": "schemathesis"},
           {"X-Org-Slug": slug, "Authorization": "Bearer " + token})["key"]
print(token, key)
PYEOF
}

# `st_config SLUG TOKEN KEY`: credentials by area; X-Org-Slug pinned to SLUG wherever the
# document has it.
st_config() {
  cat <<TOML
[generation]
with-security-parameters = false

[parameters]
"header.X-Org-Slug" = "$1"

[[operations]]
include-path-regex = "^/api/v1/admin/"
headers = { Authorization = "Bearer $ADMIN_KEY" }

[[operations]]
include-path-regex = "^/api/v1/public/"
headers = { X-API-Key = "$3" }

[[operations]]
include-path-regex = "^/api/v1/(auth|org)(/|\$)"
headers = { Authorization = "Bearer $2" }
TOML
}

# Operations documented ahead of their handlers (NOT_YET_ROUTED in tests/openapi.rs) are fuzzed
# only once the server routes them (an unknown route answers 404 "No route for …").
routed() { # PATH
  "$PY" - "$BASE$1" <<'PYEOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="GET"), timeout=10)
except urllib.error.HTTPError as e:
    sys.exit(1 if e.code == 404 and b"No route for" in e.read() else 0)
PYEOF
}
echo "== schemathesis: the served document is valid OpenAPI 3.1"
"$PY" - "$BASE/api/v1/openapi.json" <<'PYEOF'
import json, sys, urllib.request
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
validate(doc)
print(f"{get_spec_version(doc)}: valid, {sum(len(v) for v in doc['paths'].values())} operations")
PYEOF

SKIP=''
if ! routed /api/v1/admin/outbox; then
  echo "not routed yet, not fuzzed: /api/v1/admin/outbox"
  SKIP="$SKIP|adminListOutbox|adminRetryOutbox"
fi
if ! routed /api/v1/org/webhooks; then
  echo "not routed yet, not fuzzed: /api/v1/org/webhooks"
  SKIP="$SKIP|[A-Za-z]*Webhooks?[A-Za-z]*"
fi

# Passes (by operationId), each with a fresh org, owner, session and API key, so that an
# operation which ends the session, the key, the owner's membership or the org only blunts the
# rest of its own pass. Each pass that can end them has a listing operation to take real ids
# from (schemathesis reuses values from earlier answers).
ENDERS='removeMember|deactivateMember|updateMember|revokeSession|revokeApiKey|publicRevokeSessions|adminUpdateUser|adminDeleteUser|adminRevokeUserSessions|adminDeleteOrg|logout|deleteOrg'
PASSES=(
  "main|-^($ENDERS$SKIP)\$"
  "members|^(listMembers|getMember|updateMember|removeMember|deactivateMember|reactivateMember)\$"
  "sessions|^(listSessions|revokeSession)\$"
  "api-keys|^(listApiKeys|revokeApiKey)\$"
  "public-sessions|^(publicListUsers|publicRevokeSessions)\$"
  "admin-users|^(adminListUsers|adminGetUser|adminUpdateUser|adminDeleteUser|adminRevokeUserSessions)\$"
  "admin-orgs|^(adminListOrgs|adminGetOrg|adminDeleteOrg)\$"
  "logout|^logout\$"
  "delete-org|^deleteOrg\$"
)
START=$SECONDS
fuzz() { # NAME SLUG schemathesis-filter-args…
  local name=$1 slug=$2 token key left
  shift 2
  read -r token key < <(fixture "$slug")
  [ -n "$token" ] && [ -n "$key" ] || { echo "fixture $slug failed" >&2; return 1; }
  st_config "$slug" "$token" "$key" >"$WORK/$name.toml"
  left=$((TIMEOUT - (SECONDS - START)))
  [ "$left" -gt 0 ] || { echo "out of time (ST_TIMEOUT=$TIMEOUT)" >&2; return 124; }
  echo "== schemathesis pass: $name"
  # From $WORK: schemathesis keeps its cache in the working directory.
  (cd "$WORK" && timeout "$left" "$ST" --config-file "$WORK/$name.toml" run \
    "$BASE/api/v1/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --workers "$WORKERS" \
    --phases examples,coverage,fuzzing \
    --request-timeout 30 \
    --generation-database none \
    ${ST_SEED:+--seed "$ST_SEED"} \
    --no-color \
    ${ST_REPORT_DIR:+--report har,ndjson --report-dir "$ST_REPORT_DIR/$name"} \
    "$@")
}
status=0
n=0
failed=()
for p in "${PASSES[@]}"; do
  name=${p%%|*} ids=${p#*|} n=$((n + 1))
  if [ "${ids:0:1}" = - ]; then
    filter=(--exclude-operation-id-regex "${ids:1}")
  else
    filter=(--include-operation-id-regex "$ids")
  fi
  fuzz "$name" "org-$n-$name" "${filter[@]}" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; failed+=("$name"); }
done
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed in pass(es): ${failed[*]}; last server log lines:" >&2
  tail -n 50 "$WORK/server.log" >&2 || true
else
  echo "== schemathesis: no 5xx, every answer as documented"
fi
exit "$status"
