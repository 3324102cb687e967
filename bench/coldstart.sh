#!/usr/bin/env bash
# Cold-start benchmark (performance issue: "cold start to a served /healthz < 100 ms with a
# 100k-user database"): the time from the exec of `latchkey --config CFG serve` to the first
# 200 answer of GET /healthz, on an empty database and on one with USERS users in USERS/100
# orgs made by bench/scale.py (with its sessions, audit entries, events and outbox rows).
#
#   bench/coldstart.sh            # 100000 users
#   bench/coldstart.sh 1000000    # 1 M users (about 25 s of generation)
#   RUNS=20 bench/coldstart.sh
#
# For each database (`latchkey migrate`, then scale.py for the big one): the first start,
# shown but not counted (it makes the signing keys, an RSA-2048 key among them); RUNS (default
# 10) starts with a warm page cache; RUNS more with the database file and the binary evicted
# from the page cache before each (posix_fadvise DONTNEED on those files only: nothing else of
# the machine's cache is dropped). A small Python poller execs the server and tries
# 127.0.0.1:PORT every 1 ms (connect, GET /healthz, read the status line); each start is
# stopped with SIGTERM and awaited before the next. Also shown: exec to the wall-clock stamp of
# the server's own "listening" log line; it is written just after the listener starts
# accepting, so it can come a little after the first 200.
#
# Prints min / median / max ms per row and each database's size (file + WAL). Runs a copy of
# target/release/latchkey taken at the start (built only when missing: cargo build --release
# --bin latchkey). Loopback only; the servers and the temporary directory are removed on exit.
# Environment: RUNS (10), CARGO_TARGET_DIR (./target), LATCHKEY_BIN (overrides the binary),
# FROM_DB=FILE (measure a copy of FILE instead of generating: e.g. the never-started database
# bench/scale.sh caches in target/bench-scale/; one that was started needs the same secret).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${1:-100000}
ORGS=$(( USERS / 100 > 0 ? USERS / 100 : 1 ))
RUNS=${RUNS:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${LATCHKEY_BIN:-$TARGET_DIR/release/latchkey}

log() { printf '[coldstart %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v python3 >/dev/null || die "python3 is required"

WORK=
POLLER_PID=
cleanup() {
  local rc=$? pid
  # The poller stops its server on SIGTERM; the server's pid file covers a poller gone first.
  if [ -n "$POLLER_PID" ]; then kill -TERM "$POLLER_PID" 2>/dev/null || true; wait "$POLLER_PID" 2>/dev/null || true; fi
  if [ -n "$WORK" ] && [ -f "$WORK/server.pid" ]; then
    pid=$(cat "$WORK/server.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      sleep 0.5
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$rc" != 0 ] && [ -f "$WORK/server.log" ]; then tail -n 20 "$WORK/server.log" >&2 || true; fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -x "$BIN" ]; then
  log "no $BIN: cargo build --release --bin latchkey"
  cargo build --release --bin latchkey -q
fi
[ -x "$BIN" ] || die "$BIN missing"

WORK=$(mktemp -d /tmp/latchkey-coldstart.XXXXXX)
# A copy: every start runs the same binary whatever is rebuilt meanwhile, and the cold-cache
# runs evict only this copy from the page cache.
cp "$BIN" "$WORK/latchkey"
BIN=$WORK/latchkey
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The poller: RUNS starts of BIN --config CFG serve; per start, ms from exec to the first 200
# of /healthz and ms from exec to the server's "listening" log line. Prints one summary line.
POLLER=$WORK/poll.py
cat >"$POLLER" <<'PY'
import datetime, os, signal, socket, statistics, subprocess, sys, time
bin_, cfg, port, runs, logpath, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
evict = sys.argv[7:]  # files to drop from the page cache before each start (cold-cache runs)
pidfile = os.path.join(os.path.dirname(logpath), "server.pid")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
REQ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

def healthz_ok():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return False
    try:
        s.sendall(REQ)
        head = s.recv(64)
        return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    except OSError:
        return False
    finally:
        s.close()

def listening_ms(text):
    # "2026-12-01T14:16:47.853Z INFO  listening addr=…": the last such line, as epoch seconds.
    for line in reversed(text.splitlines()):
        if " listening " in line or line.rstrip().endswith(" listening"):
            stamp = line.split()[0].rstrip("Z")
            return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc).timestamp()
    return None

served, listened = [], []
for k in range(runs):
    for path in evict:
        # Only these files' clean pages leave the cache (posix_fadvise DONTNEED), nothing else
        # of the machine's; the disk (or the hypervisor's cache beneath it) serves them again.
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    with open(logpath, "a") as logf:
        start = logf.tell()
        wall0 = time.time()
        t0 = time.perf_counter()
        p = subprocess.Popen([bin_, "--config", cfg, "serve"], stdout=logf, stderr=logf)
        with open(pidfile, "w") as f:
            f.write(str(p.pid))
        try:
            while True:
                if healthz_ok():
                    t1 = time.perf_counter()
                    break
                if p.poll() is not None:
                    sys.exit(f"latchkey serve exited ({p.returncode}) before answering; see its log")
                if time.perf_counter() - t0 > 30:
                    sys.exit("no 200 from /healthz within 30 s")
                time.sleep(0.001)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()
            os.remove(pidfile)
    served.append((t1 - t0) * 1000)
    with open(logpath) as f:
        f.seek(start)
        at = listening_ms(f.read())
    if at is not None:
        listened.append((at - wall0) * 1000)
    time.sleep(0.2)

def stats(v):
    return f"min {min(v):6.1f}  median {statistics.median(v):6.1f}  max {max(v):6.1f} ms" if v else "n/a"
print(f"  {label:<12} served /healthz: {stats(served)}   | 'listening' logged: {stats(listened)}")
print("  each run (ms to the first 200): " + " ".join(f"{x:.1f}" for x in served), file=sys.stderr)
PY

size() { # size DBFILE → "123.4 MiB"
  local b=0 f
  for f in "$1" "$1-wal"; do [ -f "$f" ] && b=$((b + $(stat -c %s "$f"))); done
  awk -v b="$b" 'BEGIN{printf "%.1f MiB", b/1048576}'
}

# poll CFG RUNS LABEL [FILE…]: the poller in the background (so that cleanup can stop it).
poll() {
  local cfg=$1 runs=$2 label=$3
  shift 3
  python3 "$POLLER" "$BIN" "$cfg" "$PORT" "$runs" "$WORK/server.log" "$label" "$@" >"$WORK/poll.out" &
  POLLER_PID=$!
  wait "$POLLER_PID" || die "the poller failed"
  POLLER_PID=
  cat "$WORK/poll.out" >>"$WORK/results.txt"
}

# measure USERS: a fresh database of USERS users (0: empty): the first start, RUNS starts with
# a warm page cache, RUNS with the database and the binary evicted from it.
measure() {
  local users=$1 dir=$WORK/db-$1 cfg title
  mkdir -p "$dir"
  cfg=$dir/latchkey.toml
  cat >"$cfg" <<EOF
[server]
bind = "127.0.0.1:$PORT"
public_url = "http://127.0.0.1:$PORT"

[database]
path = "$dir/latchkey.db"

[cookies]
secure = false

[security]
secret_key = "$SECRET"
EOF
  "$BIN" --config "$cfg" migrate 2>>"$WORK/server.log"
  title="empty database"
  if [ "$users" -gt 0 ] && [ -n "${FROM_DB:-}" ]; then
    log "copying $FROM_DB"
    cp "$FROM_DB" "$dir/latchkey.db"
    "$BIN" --config "$cfg" migrate 2>>"$WORK/server.log"
    title="$(basename "$FROM_DB") ($(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM users").fetchone()[0])' "$dir/latchkey.db") users)"
  elif [ "$users" -gt 0 ]; then
    local orgs=$(( users / 100 > 0 ? users / 100 : 1 ))
    log "generating $users users / $orgs orgs (bench/scale.py)"
    python3 "$ROOT/bench/scale.py" "$dir/latchkey.db" --users "$users" --orgs "$orgs" >"$dir/scale.txt"
    grep -E '^(rows written|database size)' "$dir/scale.txt" | sed 's/^/  /' >&2
    title="$users users / $orgs orgs"
  fi
  echo "$title, $(size "$dir/latchkey.db") (file + WAL):" >>"$WORK/results.txt"
  log "$title: the first start (it makes the signing keys: Ed25519 and RSA-2048), not counted"
  poll "$cfg" 1 "first start"
  log "$title: $RUNS starts, warm page cache"
  poll "$cfg" "$RUNS" "warm cache"
  log "$title: $RUNS starts, the database and the binary evicted from the page cache"
  poll "$cfg" "$RUNS" "cold cache" "$dir/latchkey.db" "$dir/latchkey.db-wal" "$dir/latchkey.db-shm" "$BIN"
}

measure 0
measure "$USERS"

echo
echo "cold start: exec of 'latchkey serve' to the first 200 of GET /healthz, and to its 'listening' log line"
echo "($RUNS runs each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); target < 100 ms with 100k users)"
cat "$WORK/results.txt"
