#!/usr/bin/env bash
# The scale figures with the two databases interleaved: bench/scale.sh measures the empty
# database and then the big one, minutes apart, and on this shared VM throughput drifts by
# ±15 % (once 40 %) over such a span, which then shows up as a scale ratio (seen: /auth/me at
# 64 connections 0.68 in one run, while a direct re-check on the big database measured it as
# fast as the empty one). Here every round measures both, one after the other, so drift
# falls on both sides:
#
#     bench/scale-ab.sh                  # after bench/scale.sh made the cached database
#     ROUNDS=6 DUR=5s bench/scale-ab.sh BIN
#
# For each round (ROUNDS, default 4) and each database (the empty one and a copy of the newest
# target/bench-scale/scale-*.db, or SCALE_DB; empty first in odd rounds, big first in even
# ones, so that drift within a round does not always fall on the same side; the copy is
# synced to disk before its server starts): starts BIN (default target/release/latchkey)
# through bench/lib.sh (the peers' seed: 100 users in org `bench`; warn logs), then measures
# /auth/me, /public/verify and refresh (a fresh token pool before each) at 16 and 64
# connections with wrk -t1 for DUR (5s). Prints, per figure, each round's ratio (big ÷ empty)
# of requests/s, p99 latency and the server's CPU time per request (utime + stime over the
# run ÷ requests, as bench/cpu.sh), and their median. A run with an error (wrk failed, a
# non-2xx answer) stops the script. The raw lines are kept in
# ${CARGO_TARGET_DIR:-target}/bench-scale/scale-ab-<time>.txt. Loopback only; bounded; servers and copies removed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-4}
DUR=${DUR:-5s}
BIN=$(realpath "${1:-$ROOT/target/release/latchkey}")
CACHE=${CARGO_TARGET_DIR:-$ROOT/target}/bench-scale
SCALE_DB=${SCALE_DB:-$( (ls -t "$CACHE"/scale-*.db 2>/dev/null || true) | head -1)}
[ -n "$SCALE_DB" ] && [ -f "$SCALE_DB" ] || { echo "no scale database: run bench/scale.sh first (or set SCALE_DB)" >&2; exit 2; }
SCALE_DB=$(realpath "$SCALE_DB")
mkdir -p "$CACHE"
out=$CACHE/scale-ab-$(date -u +%Y%m%dT%H%M%SZ).txt
. "$ROOT/bench/lib.sh"
lk_workdir lk-scale-ab
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
run() { # run LUA C -> "req/s p99_ms cpu_us_per_request"
  local before after
  before=$(ticks)
  timeout 60 wrk -t1 -c"$2" -d"$DUR" --latency -s "lua/$1.lua" "$U" > "$W/wrk.txt" || return 1
  after=$(ticks)
  ! grep -q "Non-2xx" "$W/wrk.txt" || return 1
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1}
    /Requests\/sec/ {r = $2}
    / 99%/ {p = $2; if (p ~ /us$/) p = p / 1000; else if (p ~ /ms$/) p = p + 0; else if (p ~ /s$/) p = p * 1000}
    END {if (n > 0 && r > 0 && p > 0) print r, p, t * 1000000 / hz / n; else exit 1}' "$W/wrk.txt"
}
for round in $(seq 1 "$ROUNDS"); do
  order="empty big"
  [ $((round % 2)) = 0 ] && order="big empty"
  for db in $order; do
    if [ $db = big ]; then SEED_DB=$SCALE_DB; else SEED_DB=; fi
    lk_start "$BIN"
    # lk_start copied the big database: its dirty pages go to disk before the runs.
    sync
    for c in 16 64; do
      for s in me verify refresh; do
        if [ $s = refresh ]; then BASE=$U python3 mint.py > /dev/null; fi
        if ! figures=$(run $s $c); then
          echo "round $round, $db database, $s at $c connections failed:" >&2
          cat "$W/wrk.txt" >&2
          exit 1
        fi
        echo "$round $db $s-c$c $figures" | tee -a "$out" >&2
      done
    done
    kill $PID; wait $PID 2>/dev/null || true; PID=
  done
done
echo "scale A/B: $ROUNDS rounds on the empty database and $(basename "$SCALE_DB"), DUR=$DUR (raw: $out)"
python3 - "$out" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, db, fig, rps, p99, cpu = line.split()
    runs[fig].setdefault(r, {})[db] = (float(rps), float(p99), float(cpu))
fmt = lambda xs: ' '.join(f'{x:.2f}' for x in xs)
for k, what in enumerate(["requests/s", "p99 latency", "server CPU per request"]):
    print(f"\n{what}, big ÷ empty: each round's ratio, then their median")
    for fig in sorted(runs, key=lambda f: (f.split('-c')[1].zfill(3), f)):
        xs = [d['big'][k] / d['empty'][k] for _, d in sorted(runs[fig].items())
              if len(d) == 2 and d['empty'][k] > 0]
        if xs:
            print(f"  {fig:<12} {fmt(xs):<40} {statistics.median(xs):.2f}")
PY
