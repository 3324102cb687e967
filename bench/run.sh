#!/usr/bin/env bash
# Latchkey's benchmark, one command:
#
#     bench/run.sh                 # full run: 10 s per measurement, a few minutes in all
#     BENCH_QUICK=1 bench/run.sh   # 3 s per measurement (to check the harness, not for figures)
#
# It installs what it needs if missing (curl, jq, wrk — Debian packages; skipped with a warning
# when not root), builds the release binary and the load generator (examples/loadgen.rs),
# starts `latchkey serve` on 127.0.0.1 on a temporary directory with a bench config (real
# argon2 defaults, per-IP limits raised, log level warn), creates an admin key, an org with
# open signup and 16 users through the operator API, and measures:
#   auth  — one argon2id hash time, logins/s at 16 clients, refresh/s with rotation at 64
#           connections, GET /auth/me/s at 64 connections, peak RSS under a 256-connection
#           login flood;
#   http  — GET /healthz and GET /api/v1/auth/me at 16/64/256 keep-alive connections (req/s,
#           p99, connections progressing, server threads and RSS), and one wrk cross-check;
#   and first a server.threads sweep (BENCH_THREAD_CANDIDATES, default "2 4 8 16") whose best
#   value (by GET /auth/me req/s at 64 connections) is used for everything else.
# Results replace the sections between <!-- bench:auth:start/end --> and
# <!-- bench:http:start/end --> in docs/benchmarks.md (created if absent; other sections kept).
# Raw JSON of every run is left in $CARGO_TARGET_DIR/bench-results/.
#
# Environment: BENCH_QUICK=1 (3 s runs), BENCH_DURATION=S (seconds per measurement),
# BENCH_THREADS=N (skip the sweep, use N), BENCH_THREAD_CANDIDATES="2 4 8 16",
# BENCH_OUT=FILE (default docs/benchmarks.md), CARGO_TARGET_DIR (default ./target).
# All load stays on 127.0.0.1 and every run is bounded in time; the server and the temporary
# directory are removed on exit, whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DUR=${BENCH_DURATION:-3}
  SWEEP_DUR=2
else
  DUR=${BENCH_DURATION:-10}
  SWEEP_DUR=5
fi
FLOOD_DUR=$DUR
CANDIDATES=${BENCH_THREAD_CANDIDATES:-"2 4 8 16"}
OUT=${BENCH_OUT:-docs/benchmarks.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/latchkey
LOADGEN=$TARGET_DIR/release/examples/loadgen
RAW=$TARGET_DIR/bench-results
ORG=bench-org
USERS=16
PASSWORD_PREFIX="bench passphrase"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Clean-up: the server and the temporary directory go, on success, failure or Ctrl-C.
WORK=
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  local rc=$?
  stop_server
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$rc" != 0 ] && [ -f "$WORK/server.log" ]; then
      log "server log (last 20 lines):"
      tail -n 20 "$WORK/server.log" >&2 || true
    fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools.
apt_updated=0
install_pkg() { # install_pkg PACKAGE — Debian package, only as root
  [ "$(id -u)" = 0 ] || return 1
  command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$1" >/dev/null 2>&1; then
    [ "$apt_updated" = 1 ] || { apt-get update -q >/dev/null 2>&1 || true; apt_updated=1; }
    apt-get install -y -q "$1" >/dev/null 2>&1 || return 1
  fi
}
for tool in curl jq; do
  command -v "$tool" >/dev/null || install_pkg "$tool" || die "$tool is required (apt-get install $tool)"
done
HAVE_WRK=1
if ! command -v wrk >/dev/null; then
  log "wrk missing; installing it (apt-get install -y wrk)"
  install_pkg wrk || { HAVE_WRK=0; log "warning: cannot install wrk (not root?); the wrk cross-check is skipped"; }
fi

log "building (cargo build --release --examples --bins)"
cargo build --release --examples --bins -q
[ -x "$BIN" ] && [ -x "$LOADGEN" ] || die "build products missing under $TARGET_DIR/release"

WORK=$(mktemp -d /tmp/latchkey-bench.XXXXXX)
RES=$WORK/results
mkdir -p "$RES"

# ---------------------------------------------------------------------------------------------
# The server.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"
BASE=http://127.0.0.1:$PORT
CFG=$WORK/bench.toml
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

write_config() { # write_config THREADS
  cat >"$CFG" <<EOF
# Latchkey bench config (bench/run.sh). Argon2 and the hashing gate are at their defaults;
# per-IP and per-account abuse limits are raised so they do not cap throughput.
[server]
bind = "127.0.0.1:$PORT"
public_url = "$BASE"
threads = $1
max_connections = 1024

[database]
path = "$WORK/bench.db"

[security]
secret_key = "$SECRET"
max_concurrent_hashes = 0      # default: one per core
hash_queue = 64                # default
login_ip_per_minute = 1000000000
login_max_failures = 1000000000
public_api_per_minute = 1000000000
email_per_hour = 1000000000
email_ip_per_hour = 1000000000

[cookies]
secure = false

[argon2]
memory_kib = 19456
iterations = 2
parallelism = 1

[log]
level = "warn"
EOF
}

start_server() { # start_server THREADS
  stop_server
  write_config "$1"
  "$BIN" --config "$CFG" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "latchkey serve exited at start"
    if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "latchkey serve did not answer /healthz within 30 s"
}

proc_field() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

# Shows a command the way a reader can rerun it against the bench server: the port, the
# temporary directory, the access token and the server's pid become $PORT, $WORK, $TOKEN and
# $SERVER_PID (double-quoted where they sit inside a quoted argument, so the shell expands them).
show_cmd() {
  local out="" a prev=""
  for a in "$@"; do
    a=${a//"$LOADGEN"/cargo run -q --release --example loadgen --}
    a=${a//"$BASE"/http://127.0.0.1:\$PORT}
    a=${a//"$WORK"/\$WORK}
    if [ -n "${TOKEN:-}" ]; then a=${a//"$TOKEN"/\$TOKEN}; fi
    if [ "$prev" = --watch-pid ]; then a=\$SERVER_PID; fi
    prev=$a
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,\$-]+$ || "$a" == "cargo run -q --release --example loadgen --" ]]; then
      out+="$a "
    elif [[ "$a" == *'$'* && "$a" != *[\"\\\`]* ]]; then
      out+="\"$a\" "
    else
      out+="'${a//\'/\'\\\'\'}' "
    fi
  done
  printf '%s' "${out% }"
}

# lg NAME ARGS… — runs the load generator, keeps its JSON as $RES/NAME.json and the command
# as $RES/NAME.cmd.
lg() {
  local name=$1
  shift
  show_cmd "$LOADGEN" "$@" >"$RES/$name.cmd"
  "$LOADGEN" "$@" >"$RES/$name.json" || die "loadgen failed for $name"
  log "$name: $(jq -c '{requests, req_per_s, p99: .latency_ms.p99, status, errors, progressing: .connections_progressing}' "$RES/$name.json")"
}
j() { jq -r "$2" "$RES/$1.json"; }

admin() { # admin METHOD PATH BODY
  curl -fsS -X "$1" "$BASE$2" -H "Authorization: Bearer $ADMIN_KEY" \
    -H 'Content-Type: application/json' -d "$3"
}

# ---------------------------------------------------------------------------------------------
# Machine facts, set-up.
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
NPROC=$(nproc)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
[ -n "$CPU" ] || CPU=$(uname -m)
KERNEL=$(uname -r)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes)"
WRK_THREADS=$NPROC
[ "$WRK_THREADS" -gt 64 ] && WRK_THREADS=64

log "workdir $WORK, port $PORT, $NPROC cores ($CPU), load $LOAD_START"
start_server 8
ADMIN_KEY=$("$BIN" --config "$CFG" admin-key create --name bench)
admin POST /api/v1/admin/orgs \
  "{\"slug\":\"$ORG\",\"name\":\"Bench Org\",\"settings\":{\"signupMode\":\"open\"}}" >/dev/null
: >"$WORK/logins.txt"
for i in $(seq 1 "$USERS"); do
  email="user$i@bench.test"
  uid=$(admin POST /api/v1/admin/users \
    "{\"email\":\"$email\",\"password\":\"$PASSWORD_PREFIX $i\",\"name\":\"Bench User $i\",\"isEmailVerified\":true}" |
    jq -r .data.user.id)
  admin POST "/api/v1/admin/orgs/$ORG/members" "{\"userId\":\"$uid\",\"role\":\"member\"}" >/dev/null
  printf '{"email":"%s","password":"%s %s"}\n' "$email" "$PASSWORD_PREFIX" "$i" >>"$WORK/logins.txt"
done
log "created admin key, org $ORG (open signup), $USERS users"
TOKEN=$(curl -fsS -X POST "$BASE/api/v1/auth/login" -H "X-Org-Slug: $ORG" \
  -H 'Content-Type: application/json' -d "$(head -n1 "$WORK/logins.txt")" | jq -r .data.accessToken)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "login for the bearer token failed"
ME_HEADERS=(--header "X-Org-Slug: $ORG" --header "Authorization: Bearer $TOKEN")
# An owner creates the org API key that /public/verify is measured with.
owner_id=$(admin POST /api/v1/admin/users \
  "{\"email\":\"owner@bench.test\",\"password\":\"$PASSWORD_PREFIX owner\",\"isEmailVerified\":true}" |
  jq -r .data.user.id)
admin POST "/api/v1/admin/orgs/$ORG/members" "{\"userId\":\"$owner_id\",\"role\":\"owner\"}" >/dev/null
OWNER_TOKEN=$(curl -fsS -X POST "$BASE/api/v1/auth/login" -H "X-Org-Slug: $ORG" -H 'Content-Type: application/json' \
  -d "{\"email\":\"owner@bench.test\",\"password\":\"$PASSWORD_PREFIX owner\"}" | jq -r .data.accessToken)
API_KEY=$(curl -fsS -X POST "$BASE/api/v1/org/api-keys" -H "X-Org-Slug: $ORG" -H "Authorization: Bearer $OWNER_TOKEN" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | jq -r .data.key)
[ -n "$API_KEY" ] && [ "$API_KEY" != null ] || die "could not create the API key"
VERIFY_ARGS=(--url "$BASE/api/v1/public/verify" --method POST --header "X-API-Key: $API_KEY"
  --body "{\"token\":\"$TOKEN\"}")
LOGIN_ARGS=(--url "$BASE/api/v1/auth/login" --method POST --header "X-Org-Slug: $ORG")

# ---------------------------------------------------------------------------------------------
# server.threads sweep.
# Each candidate gets a fresh server: GET /auth/me at 64 connections (throughput), then a login
# burst with 2 × threads connections (at least 16) so that every worker thread hashes, and the
# server's VmHWM after it. The pick is the highest me/s among candidates whose VmHWM stays under
# the 256 MB memory target (the highest overall if none does).
if [ -n "${BENCH_THREADS:-}" ]; then
  THREADS=$BENCH_THREADS
  SWEEP_NOTE="server.threads = $THREADS (BENCH_THREADS; no sweep)"
else
  best=0
  best_any=0
  THREADS=
  THREADS_ANY=8
  for t in $CANDIDATES; do
    start_server "$t"
    lg "sweep-$t" --url "$BASE/api/v1/auth/me" "${ME_HEADERS[@]}" --connections 64 \
      --duration "$SWEEP_DUR" --watch-pid "$SERVER_PID" --label "threads=$t"
    burst=$((2 * t))
    [ "$burst" -ge 16 ] || burst=16
    lg "sweep-login-$t" "${LOGIN_ARGS[@]}" --bodies "$WORK/logins.txt" --connections "$burst" \
      --duration "$SWEEP_DUR" --watch-pid "$SERVER_PID" --label "threads=$t"
    hwm_kb=$(proc_field "$SERVER_PID" VmHWM)
    echo "$hwm_kb" >"$RES/sweep-hwm-$t.txt"
    r=$(j "sweep-$t" .req_per_s)
    if awk -v a="$r" -v b="$best_any" 'BEGIN{exit !(a>b)}'; then best_any=$r; THREADS_ANY=$t; fi
    if [ "$hwm_kb" -lt $((256 * 1024)) ] && awk -v a="$r" -v b="$best" 'BEGIN{exit !(a>b)}'; then
      best=$r
      THREADS=$t
    fi
  done
  if [ -n "$THREADS" ]; then
    SWEEP_NOTE="server.threads = $THREADS: of {$CANDIDATES}, the highest GET /api/v1/auth/me req/s at 64 connections among those whose peak RSS after a login burst stays under 256 MB (sweep below)"
  else
    THREADS=$THREADS_ANY
    SWEEP_NOTE="server.threads = $THREADS: of {$CANDIDATES}, the highest GET /api/v1/auth/me req/s at 64 connections; none kept its peak RSS after a login burst under 256 MB (sweep below)"
  fi
fi
log "using server.threads = $THREADS"
start_server "$THREADS"

# ---------------------------------------------------------------------------------------------
# Auth.
# Hash time: sequential requests on one connection, median latency. A login for an unknown
# email runs exactly one argon2id verify (against the server's dummy hash) and writes nothing;
# minus the median of a trivial request (GET /healthz) on the same path, that is one hash plus
# the org lookup and JSON parsing (microseconds).
lg hash-trivial --url "$BASE/healthz" --connections 1 --requests 200 --duration 30
lg hash-unknown "${LOGIN_ARGS[@]}" --body '{"email":"nobody@bench.test","password":"not the password"}' \
  --connections 1 --requests 10 --duration 60
lg hash-login "${LOGIN_ARGS[@]}" --bodies "$WORK/logins.txt" --connections 1 --requests 10 --duration 60
HASH_MS=$(awk -v a="$(j hash-unknown .latency_ms.p50)" -v b="$(j hash-trivial .latency_ms.p50)" 'BEGIN{printf "%.2f", a-b}')

lg login-16 "${LOGIN_ARGS[@]}" --bodies "$WORK/logins.txt" --connections 16 --duration "$DUR"

# 64 sessions (4 per user), one refresh token each, then rotation at 64 connections.
lg mint-refresh "${LOGIN_ARGS[@]}" --bodies "$WORK/logins.txt" --connections 16 --requests 4 \
  --duration 120 --save-field refreshToken --save-to "$WORK/refresh-tokens.txt"
[ "$(j mint-refresh .saved)" -ge 64 ] || die "could not mint 64 refresh tokens"
lg refresh-64 --url "$BASE/api/v1/auth/refresh" --refresh-tokens "$WORK/refresh-tokens.txt" \
  --connections 64 --duration "$DUR" --watch-pid "$SERVER_PID"

# ---------------------------------------------------------------------------------------------
# HTTP layer, on a fresh server process so that its RSS is the HTTP layer's, not memory kept
# from the hashing above.
start_server "$THREADS"
for c in 16 64 256; do
  lg "healthz-$c" --url "$BASE/healthz" --connections "$c" --duration "$DUR" --watch-pid "$SERVER_PID"
done
for c in 16 64 256; do
  lg "me-$c" --url "$BASE/api/v1/auth/me" "${ME_HEADERS[@]}" --connections "$c" --duration "$DUR" \
    --watch-pid "$SERVER_PID"
done
lg verify-64 "${VERIFY_ARGS[@]}" --connections 64 --duration "$DUR" --watch-pid "$SERVER_PID"
WRK_CMD="wrk -t$WRK_THREADS -c64 -d${DUR}s --latency http://127.0.0.1:\$PORT/healthz"
if [ "$HAVE_WRK" = 1 ]; then
  wrk "-t$WRK_THREADS" -c64 "-d${DUR}s" --latency "$BASE/healthz" >"$RES/wrk-64.txt" 2>&1 || die "wrk failed"
  WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$RES/wrk-64.txt")
  WRK_P99=$(awk '$1=="99%" {print $2}' "$RES/wrk-64.txt")
  WRK_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$RES/wrk-64.txt")
  WRK_ERRS=$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' "$RES/wrk-64.txt")
  log "wrk-64: $WRK_RPS req/s, p99 $WRK_P99"
fi

# ---------------------------------------------------------------------------------------------
# Login flood on a fresh server process, so that VmHWM is the flood's peak.
start_server "$THREADS"
FLOOD_RSS_BEFORE=$(proc_field "$SERVER_PID" VmRSS)
lg flood-256 "${LOGIN_ARGS[@]}" --bodies "$WORK/logins.txt" --connections 256 --duration "$FLOOD_DUR" \
  --watch-pid "$SERVER_PID"
FLOOD_HWM_KB=$(proc_field "$SERVER_PID" VmHWM)
FLOOD_THREADS=$(j flood-256 .server.threads_max)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
stop_server

mkdir -p "$RAW"
cp "$RES"/* "$RAW"/
cp "$CFG" "$RAW/bench.toml"

# ---------------------------------------------------------------------------------------------
# Markdown.
ok() { if awk "BEGIN{exit !($1)}"; then printf '✓'; else printf '✗'; fi; }
# fmt N — a rate for humans: 1,234 (thousands grouped) or 12.3 below 100.
fmt() {
  awk -v v="$1" 'BEGIN {
    if (v + 0 < 100) { printf "%.1f", v; exit }
    s = sprintf("%.0f", v); n = length(s); out = ""
    for (i = 1; i <= n; i++) { out = out substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) out = out "," }
    printf "%s", out
  }'
}
statuses() { jq -r '[.status | to_entries[] | "\(.key): \(.value)"] | join(", ")' "$RES/$1.json"; }
errors() { jq -r 'if (.errors|length)==0 then "none" else [.errors | to_entries[] | "\(.key): \(.value)"] | join(", ") end' "$RES/$1.json"; }
only_200() { jq -e '(.status|keys) == ["200"] and (.errors|length) == 0' "$RES/$1.json" >/dev/null; }
cmd() { cat "$RES/$1.cmd"; }

if [ "$QUICK" = 1 ]; then
  MODE="**quick run** (BENCH_QUICK=1: ${DUR} s per measurement — checks the harness; not figures to quote)"
else
  MODE="full run (${DUR} s per measurement)"
fi
ENV_LINE="Measured $DATE on $NPROC cores ($CPU), Linux $KERNEL, load average at start $LOAD_START / at end $LOAD_END; commit $COMMIT; $MODE. Client and server share the machine."

LOGIN_RPS=$(j login-16 .req_per_s)
LOGIN_TARGET=$(awk -v n="$NPROC" -v h="$HASH_MS" 'BEGIN{ if (h <= 0) h = 0.001; printf "%.1f", 0.9 * n / (h / 1000) }')
REFRESH_RPS=$(j refresh-64 .req_per_s)
ME_RPS=$(j me-64 .req_per_s)
VERIFY_RPS=$(j verify-64 .req_per_s)
FLOOD_HWM_MB=$(awk -v k="$FLOOD_HWM_KB" 'BEGIN{printf "%.1f", k/1024}')
FLOOD_OK_STATUS=$(jq -e '(.status|keys - ["200","429","503"]) == [] and (.errors|length) == 0' "$RES/flood-256.json" >/dev/null && echo 1 || echo 0)

AUTH=$WORK/auth.md
{
  echo "## Authentication"
  echo
  echo "_Written by \`bench/run.sh\`; do not edit between the markers._ $ENV_LINE"
  echo "Server: \`latchkey serve\` with $SWEEP_NOTE; argon2id m=19456 KiB, t=2, p=1 (the defaults);"
  echo "\`security.max_concurrent_hashes\` = 0 (one per core = $NPROC), \`hash_queue\` = 64;"
  echo "\`login_ip_per_minute\` and \`login_max_failures\` raised to 10⁹ so the per-IP limit and lockout do not"
  echo "cap a single-IP benchmark (every run below, the flood included, exercises the hashing gate, not"
  echo "the rate limiter); \`log.level = \"warn\"\`. Data: one org (open signup), $USERS users."
  echo
  echo "| figure | measured | target | |"
  echo "|---|---|---|---|"
  echo "| one argon2id hash (see below) | $HASH_MS ms | — | |"
  echo "| logins/s, 16 clients | $(fmt "$LOGIN_RPS")/s (p99 $(j login-16 .latency_ms.p99) ms) | ≥ 0.9 × $NPROC cores ÷ $HASH_MS ms = $(fmt "$LOGIN_TARGET")/s | $(ok "$LOGIN_RPS >= $LOGIN_TARGET") |"
  echo "| refresh/s with rotation, 64 connections, 64 sessions | $(fmt "$REFRESH_RPS")/s (p99 $(j refresh-64 .latency_ms.p99) ms; chains broken: $(j refresh-64 .refresh_chains_broken)) | ≥ 3,000/s | $(ok "$REFRESH_RPS >= 3000") |"
  echo "| GET /api/v1/auth/me/s, 64 connections, one bearer token | $(fmt "$ME_RPS")/s (p99 $(j me-64 .latency_ms.p99) ms) | ≥ 10,000/s | $(ok "$ME_RPS >= 10000") |"
  echo "| POST /api/v1/public/verify/s, 64 connections, one API key (quota raised) | $(fmt "$VERIFY_RPS")/s (p99 $(j verify-64 .latency_ms.p99) ms; statuses: $(statuses verify-64)) | ≥ 10,000/s | $(ok "$VERIFY_RPS >= 10000") |"
  echo "| peak RSS, 256-connection login flood for $FLOOD_DUR s | $FLOOD_HWM_MB MB VmHWM (RSS before: $((FLOOD_RSS_BEFORE / 1024)) MB; threads: $FLOOD_THREADS) | < 256 MB | $(ok "$FLOOD_HWM_MB < 256") |"
  echo "| flood status histogram | $(statuses flood-256); connection errors: $(errors flood-256); $(j flood-256 .requests) logins at $(fmt "$(j flood-256 .req_per_s)")/s, p50 $(j flood-256 .latency_ms.p50) ms, max $(j flood-256 .latency_ms.max) ms | only 200/429/503 | $(ok "$FLOOD_OK_STATUS == 1") |"
  echo
  echo "What each figure is:"
  echo
  echo "- **One argon2id hash**: the median latency of 10 sequential \`POST /api/v1/auth/login\` for an"
  echo "  unknown email on one keep-alive connection (the server verifies against its dummy hash: exactly one"
  echo "  argon2id verify, no database write) minus the median of 200 sequential \`GET /healthz\` on one"
  echo "  connection ($(j hash-trivial .latency_ms.p50) ms). Raw: unknown-email login p50 $(j hash-unknown .latency_ms.p50) ms;"
  echo "  a successful login (verify + session insert + audit row + JWT signing) p50 $(j hash-login .latency_ms.p50) ms."
  echo "- **logins/s**: 16 keep-alive connections, each logging one of the $USERS users in back to back"
  echo "  (every login = one hash + a new session); statuses: $(statuses login-16). The target assumes the"
  echo "  hashing gate keeps every core busy: 0.9 × cores ÷ hash time."
  echo "- **refresh/s**: 64 sessions minted by 64 logins; each connection rotates its own refresh token"
  echo "  (\`POST /api/v1/auth/refresh\` with \`{\"refreshToken\": …}\`, the next request uses the \`refreshToken\` of"
  echo "  the answer); statuses: $(statuses refresh-64); server threads $(j refresh-64 .server.threads_max)."
  echo "- **me/s**: the \`GET /api/v1/auth/me\` run at 64 connections of the HTTP section below (JWT verify + SQLite reads)."
  echo "  For comparison, the server's peak RSS during the refresh run, i.e. kept from the login runs before it"
  echo "  (the HTTP section restarts the server): $(j refresh-64 .server.rss_max_mb) MB."
  echo "- **peak RSS**: a freshly started server, 256 keep-alive connections logging in back to back for"
  echo "  $FLOOD_DUR s; VmHWM read from \`/proc/PID/status\` after the run (the process's lifetime peak)."
  echo "  With the default \`login_ip_per_minute = 20\` almost all of it would be 429s; here the limit is raised."
  echo
  echo "Commands (against the server \`bench/run.sh\` sets up; \`\$WORK/logins.txt\` holds one login body per user,"
  echo "\`\$WORK/refresh-tokens.txt\` the 64 minted refresh tokens, \`\$TOKEN\` an access token):"
  echo
  echo '```sh'
  echo "# hash time"
  cmd hash-trivial; echo
  cmd hash-unknown; echo
  cmd hash-login; echo
  echo "# logins/s"
  cmd login-16; echo
  echo "# refresh/s"
  cmd mint-refresh; echo
  cmd refresh-64; echo
  echo "# me/s"
  cmd me-64; echo
  echo "# flood (fresh server process)"
  cmd flood-256; echo
  echo '```'
} >"$AUTH"

HTTP=$WORK/http.md
{
  echo "## HTTP layer"
  echo
  echo "_Written by \`bench/run.sh\`; do not edit between the markers._ $ENV_LINE"
  echo "Server: $SWEEP_NOTE. Keep-alive connections driven by \`examples/loadgen.rs\` (one client"
  echo "thread per connection, closed loop); server threads and RSS are the peaks of \`/proc/PID/status\`"
  echo "(Threads, VmRSS) sampled every 100 ms during the run. **progressing** = connections that completed at"
  echo "least one request (all of them must); per-connection = min / median / max requests."
  echo
  echo "| endpoint | connections | req/s | p50 ms | p99 ms | max ms | progressing | per connection | statuses | server threads | server RSS |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for name in healthz-16 healthz-64 healthz-256 me-16 me-64 me-256; do
    c=$(j "$name" .connections)
    prog=$(j "$name" .connections_progressing)
    mark=$(ok "$prog == $c")
    ep="GET /healthz"
    [[ $name == me-* ]] && ep="GET /api/v1/auth/me"
    st=$(statuses "$name")
    [ "$(errors "$name")" = none ] || st="$st; errors: $(errors "$name")"
    echo "| $ep | $c | $(fmt "$(j "$name" .req_per_s)") | $(j "$name" .latency_ms.p50) | $(j "$name" .latency_ms.p99) | $(j "$name" .latency_ms.max) | $prog/$c $mark | $(j "$name" '"\(.requests_per_connection.min) / \(.requests_per_connection.median) / \(.requests_per_connection.max)"') | $st | $(j "$name" .server.threads_max) | $(j "$name" .server.rss_max_mb) MB |"
  done
  echo
  if [ "$HAVE_WRK" = 1 ]; then
    echo "Cross-check with wrk, \`GET /healthz\`, 64 connections: **$(fmt "$WRK_RPS") req/s**, p99 $WRK_P99"
    echo "(loadgen at 64: $(fmt "$(j healthz-64 .req_per_s)") req/s)${WRK_NON2XX:+; non-2xx: $WRK_NON2XX}${WRK_ERRS:+; socket errors: $WRK_ERRS}."
  else
    echo "wrk cross-check skipped: wrk was not installed and could not be (not root)."
  fi
  echo
  if [ -z "${BENCH_THREADS:-}" ]; then
    echo "server.threads sweep (fresh server each; GET /api/v1/auth/me at 64 connections for ${SWEEP_DUR} s, then a"
    echo "login burst of ${SWEEP_DUR} s with 2 × threads connections, at least 16; peak RSS = VmHWM after both):"
    echo
    echo "| server.threads | me req/s | me p99 ms | me progressing | logins/s (burst) | peak RSS | server threads |"
    echo "|---|---|---|---|---|---|---|"
    for t in $CANDIDATES; do
      hwm=$(awk -v k="$(cat "$RES/sweep-hwm-$t.txt")" 'BEGIN{printf "%.1f", k/1024}')
      echo "| $t | $(fmt "$(j "sweep-$t" .req_per_s)") | $(j "sweep-$t" .latency_ms.p99) | $(j "sweep-$t" .connections_progressing)/64 | $(fmt "$(j "sweep-login-$t" .req_per_s)") | $hwm MB | $(j "sweep-$t" .server.threads_max) |"
    done
    echo
  fi
  echo "Commands (\`\$TOKEN\`: an access token of a member of \`$ORG\`):"
  echo
  echo '```sh'
  for name in healthz-16 healthz-64 healthz-256 me-16 me-64 me-256; do cmd "$name"; echo; done
  [ "$HAVE_WRK" = 1 ] && echo "$WRK_CMD"
  if [ -z "${BENCH_THREADS:-}" ]; then
    echo "# sweep, with server.threads = each of $CANDIDATES (shown for the first)"
    cmd "sweep-${CANDIDATES%% *}"; echo
    cmd "sweep-login-${CANDIDATES%% *}"; echo
  fi
  echo '```'
} >"$HTTP"

replace_section() { # replace_section NAME FILE
  local start="<!-- bench:$1:start -->" end="<!-- bench:$1:end -->" tmp
  if grep -qxF "$start" "$OUT"; then
    grep -qxF "$end" "$OUT" || die "$OUT has $start but no $end"
    tmp=$(mktemp "$WORK/out.XXXXXX")
    awk -v s="$start" -v e="$end" -v f="$2" '
      $0 == s { print; while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0 }
      !skip { print }' "$OUT" >"$tmp"
    cat "$tmp" >"$OUT"
  else
    { echo; echo "$start"; cat "$2"; echo "$end"; } >>"$OUT"
  fi
}
if [ ! -f "$OUT" ]; then
  mkdir -p "$(dirname "$OUT")"
  cat >"$OUT" <<'EOF'
# Benchmarks

Measured figures for Latchkey, each with the command that reproduces it. The sections between
`<!-- bench:…:start -->` and `<!-- bench:…:end -->` markers are written by `bench/run.sh`
(`BENCH_QUICK=1 bench/run.sh` for a 3-second smoke run); everything outside them is kept, so
other sections can be added by hand. Figures depend on the machine and on what else it is
doing: each section names the date, core count, CPU and load average it was measured at.
EOF
fi
replace_section auth "$AUTH"
replace_section http "$HTTP"
log "wrote $OUT (raw results in $RAW)"

# A one-screen summary on stdout.
printf 'hash %s ms | logins/s %s (target %s) | refresh/s %s | me/s@64 %s | flood VmHWM %s MB, %s | threads %s\n' \
  "$HASH_MS" "$LOGIN_RPS" "$LOGIN_TARGET" "$REFRESH_RPS" "$ME_RPS" "$FLOOD_HWM_MB" "$(statuses flood-256)" "$THREADS"
