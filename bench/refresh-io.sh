#!/usr/bin/env bash
# What one refresh writes to storage, and to which B-trees:
#
#     bench/refresh-io.sh [LK_BIN]      # default: target/release/latchkey (built if missing)
#
# Starts the binary on a fresh database on 127.0.0.1, seeds it with the peers' harness
# (../shared/peers/latchkey: 100 users, each logged in once; files copied, never changed), and
# for 1, 16 and 64 connections runs the harness's refresh scenario (every request presents a
# live token and rotates it) for 5 s with wrk: the process's storage writes (`write_bytes` of
# /proc/PID/io: WAL frames and checkpoint copies) per refresh. Then one 1 s run at one
# connection is stopped with SIGKILL and its WAL read by bench/walpages.py: frames per commit,
# by table and index. Bounded in time; the server and its directory are removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LK_BIN=${1:-$ROOT/target/release/latchkey}
[ -x "$LK_BIN" ] || (cd "$ROOT" && cargo build --release --bin latchkey)
LK_BIN=$(cd "$(dirname "$LK_BIN")" && pwd)/$(basename "$LK_BIN")
. "$ROOT/bench/lib.sh"
lk_workdir refresh-io
written() { awk '/^write_bytes/{print $2}' /proc/$PID/io; }
lk_start "$LK_BIN"
for c in 1 16 64; do
  BASE=$U python3 mint.py > /dev/null
  before=$(written)
  n=$(wrk -t1 -c$c -d5s -s lua/refresh.lua $U | awk '/requests in/{print $1}')
  sleep 1.5   # the maintenance thread's checkpoint of what the run left
  echo "refresh c$c: $n refreshes in 5 s, $(( ($(written) - before) / n )) bytes written per refresh"
done
kill $PID; wait $PID 2>/dev/null || true
lk_start "$LK_BIN"
BASE=$U python3 mint.py > /dev/null
sleep 1
wrk -t1 -c1 -d1s -s lua/refresh.lua $U > /dev/null
kill -9 $PID; wait $PID 2>/dev/null || true; PID=
echo "WAL of a 1 s refresh run at one connection (each commit is one refresh):"
python3 "$ROOT/bench/walpages.py" data/latchkey.db
