#!/usr/bin/env bash
# A/B of release binaries on the peers' scenarios, one machine, one after the other:
#
#     bench/ab.sh OLD_BIN NEW_BIN [...]        # each binary on a fresh database
#     SEED_DB=target/bench-scale/scale-….db bench/ab.sh OLD_BIN NEW_BIN   # on a copy of that one
#
# For each round (ROUNDS, default 2) and each binary: starts it on 127.0.0.1 with the peers'
# config (rate limits off), seeds it with ../shared/peers/latchkey (100 users in org `bench`,
# files copied, never changed), then measures, each after common/wait-quiet.sh: refresh at 16
# and 64 connections (a fresh token pool from mint.py before each), and `/auth/me` at 64,
# with wrk -t1 for DUR (6s). Prints one line per binary and round: requests/s and p99.
# Loopback only; every wrk run is bounded; the server and its directory are removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: bench/ab.sh BIN [BIN...]" >&2; exit 2; }
PEERS=${PEERS:-$ROOT/../shared/peers}
ROUNDS=${ROUNDS:-2}
DUR=${DUR:-6s}
COMMON=$PEERS/common
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
. "$ROOT/bench/lib.sh"
lk_workdir lk-ab
quiet() { MAXWAIT=${MAXWAIT:-60} "$COMMON/wait-quiet.sh" > /dev/null || true; }
rate() { awk '/Requests\/sec/{r=$2} / 99%/{p=$2} END{printf "%s/s p99 %s", r, p}'; }

for round in $(seq 1 "$ROUNDS"); do
  for bin in "${BINS[@]}"; do
    lk_start "$bin"
    line="round $round $(basename "$bin"):"
    for c in 16 64; do
      BASE=$U python3 mint.py > /dev/null
      quiet
      line="$line refresh c$c $(timeout 60 wrk -t1 -c$c -d$DUR --latency -s lua/refresh.lua $U | rate);"
    done
    quiet
    line="$line me c64 $(timeout 60 wrk -t1 -c64 -d$DUR --latency -s lua/me.lua $U | rate)"
    echo "$line"
    kill $PID; wait $PID 2>/dev/null || true; PID=
  done
done
