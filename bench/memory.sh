#!/usr/bin/env bash
# Memory benchmark: the resident size of `latchkey serve` (release build, argon2 defaults
# m=19456 KiB t=2 p=1, server.threads = 8, max_concurrent_hashes = 0 = one per core) read from
# /proc/PID/status:
#   1. idle after start: VmRSS one second after /healthz first answers;
#   2. after hashing from many connections: 24 operator-created users (POST /api/v1/admin/users
#      with a password), 24 logins and 8 sign-ups, each group sent 8 at a time on fresh
#      connections so that every HTTP worker handles some; VmRSS two seconds after the last
#      answer (and VmHWM, the lifetime peak);
#   3. a 256-connection login flood for BENCH_FLOOD seconds (default 10) on a fresh server:
#      VmHWM after it.
# Targets (issue 13): idle < 20 MB, after the sequence < 64 MB, flood peak < 128 MB. Figures
# are recorded in docs/benchmarks.md ("## Memory").
#
#   bench/memory.sh                  # builds the release binary and loadgen first
#   BENCH_FLOOD=5 bench/memory.sh
#
# Loopback only; every step is bounded in time; the servers and the temporary directory are
# removed on exit. Needs curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/latchkey
LOADGEN=$TARGET_DIR/release/examples/loadgen
FLOOD=${BENCH_FLOOD:-10}
ORG=mem-org
PASSWORD="memory bench passphrase"

log() { printf '[memory %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v curl >/dev/null || die "curl is required"

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
    if [ "$rc" != 0 ] && [ -f "$WORK/server.log" ]; then tail -n 20 "$WORK/server.log" >&2 || true; fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building (cargo build --release --bins --examples)"
  cargo build --release --bins --examples -q
fi
[ -x "$BIN" ] && [ -x "$LOADGEN" ] || die "build products missing under $TARGET_DIR/release"

WORK=$(mktemp -d /tmp/latchkey-memory.XXXXXX)
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"
BASE=http://127.0.0.1:$PORT
CFG=$WORK/memory.toml
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

start_server() { # start_server DBNAME
  stop_server
  cat >"$CFG" <<EOF
[server]
bind = "127.0.0.1:$PORT"
public_url = "$BASE"
threads = 8
max_connections = 1024

[database]
path = "$WORK/$1.db"

[security]
secret_key = "$SECRET"
max_concurrent_hashes = 0
hash_queue = 64
login_ip_per_minute = 1000000000
login_max_failures = 1000000000

[cookies]
secure = false

[argon2]
memory_kib = 19456
iterations = 2
parallelism = 1

[log]
level = "warn"
EOF
  "$BIN" --config "$CFG" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "latchkey serve exited at start"
    if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "latchkey serve did not answer /healthz within 30 s"
}

kb() { awk -v k="$1:" '$1==k {print $2}' "/proc/$SERVER_PID/status"; }
mb() { awk -v v="$1" 'BEGIN{printf "%.1f", v/1024}'; }

# many N CMD… — runs `CMD i` for i in 1..N, 8 at a time; fails if any fails.
many() {
  local n=$1 i pids=()
  shift
  for i in $(seq 1 "$n"); do
    "$@" "$i" &
    pids+=($!)
    if [ "${#pids[@]}" -ge 8 ]; then
      for p in "${pids[@]}"; do wait "$p" || die "a request failed"; done
      pids=()
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || die "a request failed"; done
}
post() { # post PATH BODY [HEADER]
  curl -fsS --max-time 30 -o /dev/null -X POST "$BASE$1" -H 'Content-Type: application/json' \
    ${3:+-H "$3"} -d "$2"
}
admin_user() {
  local id
  id=$(curl -fsS --max-time 30 -X POST "$BASE/api/v1/admin/users" -H "Authorization: Bearer $ADMIN_KEY" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"op$1@memory.test\",\"password\":\"$PASSWORD $1\",\"isEmailVerified\":true}" |
    sed -E 's/.*"id":"(usr_[^"]+)".*/\1/')
  curl -fsS --max-time 30 -o /dev/null -X POST "$BASE/api/v1/admin/orgs/$ORG/members" \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
    -d "{\"userId\":\"$id\",\"role\":\"member\"}"
}
login() { post /api/v1/auth/login "{\"email\":\"op$1@memory.test\",\"password\":\"$PASSWORD $1\"}" "X-Org-Slug: $ORG"; }
signup() { post /api/v1/auth/signup "{\"email\":\"new$1@memory.test\",\"password\":\"$PASSWORD new $1\"}" "X-Org-Slug: $ORG"; }

# 1 and 2.
start_server seq
sleep 1
IDLE=$(kb VmRSS)
log "idle after start: VmRSS $(mb "$IDLE") MB"
ADMIN_KEY=$("$BIN" --config "$CFG" admin-key create --name memory)
curl -fsS --max-time 30 -o /dev/null -X POST "$BASE/api/v1/admin/orgs" -H "Authorization: Bearer $ADMIN_KEY" \
  -H 'Content-Type: application/json' -d "{\"slug\":\"$ORG\",\"name\":\"Memory\",\"settings\":{\"signupMode\":\"open\"}}"
many 24 admin_user
many 24 login
many 8 signup
sleep 2
AFTER=$(kb VmRSS)
AFTER_HWM=$(kb VmHWM)
THREADS=$(kb Threads)
log "after 24 users + 24 logins + 8 sign-ups: VmRSS $(mb "$AFTER") MB (VmHWM $(mb "$AFTER_HWM") MB, threads $THREADS)"

# 3. A fresh server, 16 users, 256 connections logging in back to back.
start_server flood
ADMIN_KEY=$("$BIN" --config "$CFG" admin-key create --name memory)
curl -fsS --max-time 30 -o /dev/null -X POST "$BASE/api/v1/admin/orgs" -H "Authorization: Bearer $ADMIN_KEY" \
  -H 'Content-Type: application/json' -d "{\"slug\":\"$ORG\",\"name\":\"Memory\",\"settings\":{\"signupMode\":\"open\"}}"
: >"$WORK/logins.txt"
for i in $(seq 1 16); do
  admin_user "$i"
  printf '{"email":"op%s@memory.test","password":"%s %s"}\n' "$i" "$PASSWORD" "$i" >>"$WORK/logins.txt"
done
# The users above were hashed by this server: start the flood from a fresh process.
stop_server
start_server flood
sleep 1
BEFORE_FLOOD=$(kb VmRSS)
"$LOADGEN" --url "$BASE/api/v1/auth/login" --method POST --header "X-Org-Slug: $ORG" \
  --bodies "$WORK/logins.txt" --connections 256 --duration "$FLOOD" --watch-pid "$SERVER_PID" \
  >"$WORK/flood.json" || die "loadgen failed"
FLOOD_HWM=$(kb VmHWM)
FLOOD_AFTER=$(kb VmRSS)
STATUS=$(tr -d " \n" <"$WORK/flood.json" | sed -E "s/.*\"status\":(\{[^}]*\}).*/\1/")
log "256-connection login flood (${FLOOD} s): VmHWM $(mb "$FLOOD_HWM") MB (VmRSS before $(mb "$BEFORE_FLOOD") MB, after $(mb "$FLOOD_AFTER") MB); statuses $STATUS"

verdict() { awk -v v="$1" -v t="$2" 'BEGIN{print (v/1024 < t) ? "ok" : "OVER"}'; }
cat <<EOF
memory (release, argon2 m=19456 t=2 p=1, server.threads=8, max_concurrent_hashes=$(nproc) = cores, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))
idle after start:                       VmRSS $(mb "$IDLE") MB   (target < 20 MB: $(verdict "$IDLE" 20))
after 24 users + 24 logins + 8 sign-ups: VmRSS $(mb "$AFTER") MB   (target < 64 MB: $(verdict "$AFTER" 64)); VmHWM $(mb "$AFTER_HWM") MB, threads $THREADS
256-connection login flood, ${FLOOD} s:    VmHWM $(mb "$FLOOD_HWM") MB   (target < 128 MB: $(verdict "$FLOOD_HWM" 128)); VmRSS before $(mb "$BEFORE_FLOOD") MB, after $(mb "$FLOOD_AFTER") MB; statuses $STATUS
EOF
