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
# For each round (ROUNDS, default 4) and each database (empty, then a copy of the newest
# target/bench-scale/scale-*.db, or SCALE_DB): starts BIN (default target/release/latchkey)
# through bench/lib.sh (the peers' seed: 100 users in org `bench`; warn logs), then measures
# /auth/me, /public/verify and refresh (a fresh token pool before each) at 16 and 64
# connections with wrk -t1 for DUR (5s). Prints, per figure, each round's ratio (big ÷ empty)
# of requests/s, p99 latency and the server's CPU time per request (utime + stime over the
# run ÷ requests: it moves less than throughput here, as in bench/cpu.sh), and their median. Loopback only; bounded; servers and copies removed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-4}
DUR=${DUR:-5s}
BIN=$(realpath "${1:-$ROOT/target/release/latchkey}")
SCALE_DB=${SCALE_DB:-$(ls -t "${CARGO_TARGET_DIR:-$ROOT/target}"/bench-scale/scale-*.db 2>/dev/null | head -1)}
[ -f "$SCALE_DB" ] || { echo "no scale database: run bench/scale.sh first (or set SCALE_DB)" >&2; exit 2; }
. "$ROOT/bench/lib.sh"
lk_workdir lk-scale-ab
out=$(mktemp)
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$W" "$out"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
run() { # run LUA C -> "req/s p99_ms cpu_us_per_request"
  local before after
  before=$(ticks)
  timeout 60 wrk -t1 -c"$2" -d"$DUR" --latency -s "lua/$1.lua" "$U" > "$W/wrk.txt"
  after=$(ticks)
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1}
    /Requests\/sec/ {r = $2}
    / 99%/ {p = $2; if (p ~ /us$/) p = p / 1000; else if (p ~ /ms$/) p = p + 0; else if (p ~ /s$/) p = p * 1000}
    END {print r, p, t * 1000000 / hz / n}' "$W/wrk.txt"
}
for round in $(seq 1 "$ROUNDS"); do
  for db in empty big; do
    if [ $db = big ]; then SEED_DB=$SCALE_DB; else SEED_DB=; fi
    lk_start "$BIN"
    for c in 16 64; do
      for s in me verify refresh; do
        [ $s = refresh ] && BASE=$U python3 mint.py > /dev/null
        echo "$round $db $s-c$c $(run $s $c)" >> "$out"
      done
    done
    kill $PID; wait $PID 2>/dev/null || true; PID=
  done
done
echo "scale A/B: $ROUNDS rounds, each the empty database then $(basename "$SCALE_DB"), DUR=$DUR"
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
        xs = [d['big'][k] / d['empty'][k] for _, d in sorted(runs[fig].items()) if len(d) == 2]
        print(f"  {fig:<12} {fmt(xs):<40} {statistics.median(xs):.2f}")
PY
