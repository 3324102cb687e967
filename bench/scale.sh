#!/usr/bin/env bash
# Scale benchmark (performance issue: "with 1 M users and 10 k orgs, every figure within 10 % of
# its empty-database value; report the database size per 1 M users"). Runs the scenario set of
# the peers benchmark (../shared/peers/latchkey/bench.sh: 100 bench users seeded through the
# API into an org `bench`, then login at 1 connection, and login / me / verify / refresh at 16
# and 64 connections, DUR each, through common/measure.sh with its quiet-machine wait and
# retries) twice:
#   (a) on a fresh, empty database (what the peers benchmark always does);
#   (b) on a copy of a database holding USERS users in ORGS orgs made by bench/scale.py (with
#       its ended sessions, audit entries, events and outbox emails), the bench users and
#       org seeded on top of it the same way;
# then prints one table: figure, empty, 1M, ratio (1M / empty), and whether it is within 10 %.
#
#   bench/scale.sh                        # 1 M users / 10 k orgs, 10 s per run (~5 min + generation)
#   DUR=3s bench/scale.sh                 # quick check of the harness (not for figures)
#   DUR=2s TRIES=1 MAXWAIT=3 bench/scale.sh   # quickest check on a busy machine (~2 min)
#   USERS=100000 ORGS=1000 bench/scale.sh
#
# The big database is generated once (25-30 s for 1 M users, 1.0 GiB) and cached in
# ${CARGO_TARGET_DIR:-target}/bench-scale/, keyed by the schema (PRAGMA user_version and a hash
# of the schema the binary makes), the generator's hash and USERS/ORGS; a cache older than 7
# days is made again (its ended sessions would start reaching the 30-day retention, and the
# maintenance sweep deleting them would disturb the runs). It is migrated only, never started:
# the signing keys are made at the first start under the run's own secret, as on the empty
# database. The peers folder is read-only: it is copied to a temporary directory, and its
# bench.sh is patched there so that SEED_DB, when set, is copied to data/latchkey.db before
# the server starts (and so that it leaves its server's pid for the cleanup). Both runs use one
# copy of the binary taken at the start. A run whose server stopped before the end (bench.sh
# carries on without it, whatever stopped it: e.g. another session stopping latchkey processes
# by name) is refused, its output and server log kept in bench-scale/failed-NAME/.
#
# Environment: USERS (1000000), ORGS (10000), DUR (10s), LATCHKEY_BIN (default
# $CARGO_TARGET_DIR/release/latchkey; never built here: waited for up to 5 minutes when missing),
# PEERS (../shared/peers), and measure.sh's TRIES (4), MAXWAIT (240), MAXOTHER (20).
# Needs wrk, curl, jq, bc, sqlite3, python3. Loopback only; every wrk run is bounded (timeout
# 60 s); the servers and the temporary directory are removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${USERS:-1000000}
ORGS=${ORGS:-10000}
export DUR=${DUR:-10s}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${LATCHKEY_BIN:-$TARGET_DIR/release/latchkey}
PEERS=${PEERS:-$ROOT/../shared/peers}
CACHE=$TARGET_DIR/bench-scale

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for c in wrk curl jq bc sqlite3 python3; do command -v "$c" >/dev/null || die "$c is required"; done
[ -f "$PEERS/latchkey/bench.sh" ] || die "no peers benchmark at $PEERS"

WORK=
BENCH_PID=
cleanup() {
  local rc=$? f pid
  # bench.sh stops its own server (its EXIT trap); the pid file covers one it left behind.
  if [ -n "$BENCH_PID" ]; then kill -TERM "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    for f in "$WORK"/out-*/server.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binary may be rebuilt under us: wait for it rather than build.
for i in $(seq 1 300); do
  [ -x "$BIN" ] && break
  [ "$i" = 1 ] && log "waiting for $BIN (up to 5 min)"
  sleep 1
done
[ -x "$BIN" ] || die "$BIN missing (build it: cargo build --release --bin latchkey)"

WORK=$(mktemp -d /tmp/latchkey-scale.XXXXXX)
# Both runs use one copy of the binary, whatever is rebuilt meanwhile.
mkdir "$WORK/bin"
cp "$BIN" "$WORK/bin/latchkey"
log "binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1), sha256 $(sha256sum "$BIN" | cut -c1-12))"
BIN=$WORK/bin/latchkey
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
config() { # config DBPATH → a config file for `migrate`
  local f=$WORK/migrate-$RANDOM.toml
  printf '[database]\npath = "%s"\n[cookies]\nsecure = false\n[security]\nsecret_key = "%s"\n' "$1" "$(secret)" >"$f"
  echo "$f"
}

# The cache key: the schema this binary makes, the generator, the size.
"$BIN" --config "$(config "$WORK/probe.db")" migrate 2>/dev/null
VERSION=$(sqlite3 "$WORK/probe.db" 'PRAGMA user_version')
KEY=$({ sqlite3 "$WORK/probe.db" .schema; cat "$ROOT/bench/scale.py"; } | sha256sum | cut -c1-12)
BIG=$CACHE/scale-v$VERSION-u$USERS-o$ORGS-$KEY.db
mkdir -p "$CACHE"
if [ -f "$BIG" ] && [ -n "$(find "$BIG" -mtime +6)" ]; then
  log "cached database older than 7 days: making it again"
  rm -f "$BIG"
fi
if [ -f "$BIG" ]; then
  log "cached: $BIG"
else
  # Older generations of this size (another schema or generator) go; nothing else is touched.
  find "$CACHE" -maxdepth 1 -name "scale-v*-u$USERS-o$ORGS-*.db*" -delete
  log "generating $USERS users / $ORGS orgs into $BIG (schema version $VERSION)"
  "$BIN" --config "$(config "$BIG.tmp")" migrate 2>/dev/null
  python3 "$ROOT/bench/scale.py" "$BIG.tmp" --users "$USERS" --orgs "$ORGS" | tee "$CACHE/scale-$KEY.txt"
  rm -f "$BIG.tmp-wal" "$BIG.tmp-shm"
  mv "$BIG.tmp" "$BIG"
  mv "$CACHE/scale-$KEY.txt" "$BIG.txt"
fi
BIG_BYTES=$(stat -c %s "$BIG")

# A writable copy of the peers folder, its bench.sh taught SEED_DB (bench/peers-extra/patch.sh).
cp -r "$PEERS" "$WORK/peers"
"$ROOT/bench/peers-extra/patch.sh" "$WORK/peers"
B=$WORK/peers/latchkey/bench.sh

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if port_free "$p"; then echo "$p"; return; fi
  done
  die "no free port found"
}

# failed NAME WHY: keeps the run's output (not its database) and stops with what went wrong.
failed() {
  local out=$WORK/out-$1
  rm -rf "$CACHE/failed-$1"
  cp -r "$out" "$CACHE/failed-$1"
  tail -n 15 "$out/bench.txt" >&2 || true
  grep -E '^[0-9]{4}-' "$out/server.log" | tail -n 5 >&2 || true
  if grep -q 'signal received' "$out/server.log" 2>/dev/null; then
    log "$1: the server got a SIGTERM before bench.sh was done, at $(grep 'signal received' "$out/server.log" | cut -c1-24) (if bench.sh did not fail first: from outside, e.g. another session stopping latchkey processes)"
  fi
  die "$1: $2 (output and server log kept in $CACHE/failed-$1/)"
}

run() { # run NAME [SEED_DB]
  local out=$WORK/out-$1
  mkdir -p "$out"
  log "$1: bench.sh (DUR=$DUR)${2:+ on a copy of $(basename "$2")}"
  SEED_DB=${2:-} OUT=$out PORT=$(free_port) LK_BIN=$BIN "$B" >"$out/bench.txt" 2>&1 &
  BENCH_PID=$!
  wait "$BENCH_PID" || failed "$1" "bench.sh failed"
  BENCH_PID=
  rm -rf "$CACHE/failed-$1"
  grep -E 'idle RSS' "$out/seed.log" | sed "s/^/  /" >&2 || true
  # bench.sh goes on when its server is gone (wrk just fails): refuse such a run.
  # 12 scenarios: login at 1 connection; login, me, verify, refresh at 16 and 64; sign-up at
  # 1, 16 and 64 (bench/peers-extra/patch.sh adds the sign-ups).
  if [ "$(grep -c . "$out/summary.tsv" 2>/dev/null)" != 12 ] || ! grep -q 'idle RSS at the end: [0-9]' "$out/seed.log"; then
    failed "$1" "the server was gone before the end ($(grep -c . "$out/summary.tsv" 2>/dev/null || echo 0) of 12 scenarios done)"
  fi
  local db=$WORK/peers/latchkey/data/latchkey.db
  # bench.sh has sent its server SIGTERM: wait for the exit (its last checkpoint), then the
  # file and its WAL as the run left them.
  local pid
  pid=$(cat "$out/server.pid" 2>/dev/null || true)
  for _ in $(seq 1 300); do
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || break
    sleep 0.1
  done
  echo "$(stat -c %s "$db") $( [ -f "$db-wal" ] && stat -c %s "$db-wal" || echo 0)" >"$out/db_bytes"
  rm -rf "$WORK/peers/latchkey/data"
}

run empty
run big "$BIG"

# The table: per scenario req/s, p50, p99 (ms), peak RSS; per database the idle RSS.
python3 - "$WORK/out-empty" "$WORK/out-big" "$USERS" "$ORGS" "$BIG_BYTES" "$DUR" <<'PY'
import re, sys
empty_dir, big_dir, users, orgs, big_bytes, dur = sys.argv[1:7]
users, orgs, big_bytes = int(users), int(orgs), int(big_bytes)

def ms(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", v or "")
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

def load(d):
    rows, order, disturbed = {}, [], set()
    for line in open(f"{d}/summary.tsv"):
        f = line.rstrip("\n").split("\t")
        kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
        label = f[0]
        if label not in rows:
            order.append(label)
        rows[label] = kv
        if line.rstrip().endswith("DISTURBED"):
            disturbed.add(label)
    idle = {}
    for line in open(f"{d}/seed.log"):
        m = re.match(r"idle RSS (after seed|at the end): (\d+) kB", line)
        if m:
            idle[m.group(1)] = int(m.group(2)) / 1024
    return rows, order, disturbed, idle, [int(x) for x in open(f"{d}/db_bytes").read().split()]

e_rows, order, e_dist, e_idle, e_db = load(empty_dir)
b_rows, _, b_dist, b_idle, b_db = load(big_dir)
label_1m = f"{users / 1e6:g}M" if users >= 1e6 else f"{users // 1000}k"
print(f"\nscale: empty database vs {users:,} users / {orgs:,} orgs (DUR={dur} per run; ratio = {label_1m} / empty)")
print(f"{'figure':<26} {'empty':>10} {label_1m:>10} {'ratio':>7}  within 10 %")
worst = []

def row(name, e, b, higher_is_better):
    if e is None or b is None or e == 0:
        print(f"{name:<26} {e if e is not None else '-':>10} {b if b is not None else '-':>10} {'-':>7}")
        return
    r = b / e
    ok = abs(r - 1) <= 0.10
    worse = (r < 1) if higher_is_better else (r > 1)
    mark = "yes" if ok else ("NO (worse)" if worse else "no (better)")
    if not ok and worse:
        worst.append(name)
    print(f"{name:<26} {e:>10.1f} {b:>10.1f} {r:>7.2f}  {mark}")

for label in order:
    e, b = e_rows[label], b_rows.get(label, {})
    tag = " *" if label in e_dist or label in b_dist else ""
    row(f"{label} req/s{tag}", float(e.get("req/s") or 0) or None, float(b.get("req/s") or 0) or None, True)
    row(f"{label} p50 ms{tag}", ms(e.get("p50")), ms(b.get("p50")), False)
    row(f"{label} p99 ms{tag}", ms(e.get("p99")), ms(b.get("p99")), False)
    for k in ("non2xx",):
        if (e.get(k) or "0") != "0" or (b.get(k) or "0") != "0":
            print(f"{label + ' ' + k:<26} {e.get(k):>10} {b.get(k):>10}   (should be 0)")
for k in ("after seed", "at the end"):
    row(f"idle RSS {k} MiB", e_idle.get(k), b_idle.get(k), False)
row("peak RSS MiB (HWM)", max(float(r.get("HWM_MiB", 0)) for r in e_rows.values()),
    max(float(r.get("HWM_MiB", 0)) for r in b_rows.values()), False)
if e_dist or b_dist:
    print("* a run disturbed by foreign CPU on every try (measure.sh's DISTURBED): read with care")
mib = lambda b: b / 1048576
print(f"\ndatabase after the run: empty {mib(e_db[0]):.1f} MiB + WAL {mib(e_db[1]):.1f} MiB; "
      f"{users:,} users {mib(b_db[0]):.1f} MiB + WAL {mib(b_db[1]):.1f} MiB ({mib(big_bytes):.1f} MiB as generated)")
print(f"database size per 1 M users: {mib(big_bytes) * 1e6 / users:.0f} MiB ({big_bytes * 1e6 / users / 1e9:.2f} GB; "
      "users, memberships, 10 % ended sessions, audit, events, outbox; see the .txt beside the cached file)")
if worst:
    print("outside 10 % and worse: " + ", ".join(worst))
PY
[ -f "$BIG.txt" ] && { echo; echo "generation ($BIG.txt):"; sed 's/^/  /' "$BIG.txt"; }
