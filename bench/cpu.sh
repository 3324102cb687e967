#!/usr/bin/env bash
# The server's CPU time per request, binaries interleaved: on this shared VM throughput moves
# by ±15 % from one minute to the next, and CPU per request moves less (still take the
# minimum or the median of several rounds):
#
#     bench/cpu.sh OLD_BIN NEW_BIN [...]                  # refresh at 16 connections
#     SCENARIO=me C=64 ROUNDS=8 bench/cpu.sh OLD NEW      # any lua/<SCENARIO>.lua of the harness
#
# For each round (ROUNDS, default 6) and each binary: starts it on 127.0.0.1 on a fresh
# database seeded by the peers' harness (bench/lib.sh), mints a fresh token pool, and runs
# wrk -t1 -c$C for DUR (3s) against the scenario. The server's utime + stime
# (/proc/PID/stat) over the run, divided by the requests wrk counted, is its CPU per request;
# wrk's own CPU is not in it. Prints, per binary, the rounds' µs per request in ascending
# order, and their requests/s. Loopback only; bounded; the server and its copy are removed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: bench/cpu.sh BIN [BIN...]" >&2; exit 2; }
ROUNDS=${ROUNDS:-6}
DUR=${DUR:-3s}
C=${C:-16}
SCENARIO=${SCENARIO:-refresh}
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
. "$ROOT/bench/lib.sh"
lk_workdir lk-cpu
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
out=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for bin in "${BINS[@]}"; do
    lk_start "$bin"
    BASE=$U python3 mint.py > /dev/null
    before=$(ticks)
    n=$(timeout 60 wrk -t1 -c"$C" -d"$DUR" -s "lua/$SCENARIO.lua" "$U" | awk '/requests in/{print $1}')
    after=$(ticks)
    secs=${DUR%s}
    echo "$(basename "$bin") $(( (after - before) * 1000000 / $(getconf CLK_TCK) / n )) $(( n / secs ))" >> "$out"
    kill $PID; wait $PID 2>/dev/null || true; PID=
  done
done
echo "$SCENARIO, $C connections, $ROUNDS rounds of $DUR: server CPU µs per request (ascending), requests/s"
sort -k1,1 -k2,2n "$out" | awk '{us[$1] = us[$1] " " $2; rs[$1] = rs[$1] " " $3}
  END {for (b in us) print b ": µs/request" us[b] "; requests/s" rs[b]}'
rm -f "$out"
