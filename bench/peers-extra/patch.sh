#!/usr/bin/env bash
# usage: bench/peers-extra/patch.sh PEERS_COPY
# Patches a writable copy of ../shared/peers (the original is read-only) for bench/peers.sh and
# bench/scale.sh; every patch is checked, so a changed upstream line fails loudly:
#  1. common/measure.sh runs $PRE before each try: a refresh run spends its token pool, so a
#     retry after a disturbed run must mint a fresh one (otherwise it measures refused
#     requests and /healthz; seen: "63,931 req/s, 99 non-2xx").
#  2. latchkey/bench.sh mints its refresh pool through PRE, copies SEED_DB (when set) to
#     data/latchkey.db before the server starts, leaves its server's pid, and also measures
#     sign-up at 1/16/64 connections (the `bench` org is made with signupMode open).
#  3. Every server's bench.sh reads its resident memory right after seeding and again after
#     IDLE_WAIT seconds (default 6) with nothing to do: Latchkey's hashing threads hand their
#     argon2 block (19 MiB each) back after 5 s idle, and "idle" is read the same way for all.
set -euo pipefail
P=$1
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "patch.sh: $*" >&2; exit 1; }
M=$P/common/measure.sh
sed -i 's|^for t in \$(seq 1 \${TRIES:-4}); do$|&\n  if [ -n "${PRE:-}" ]; then eval "$PRE"; fi|' "$M"
grep -q 'eval "$PRE"' "$M" || fail "measure.sh: its retry loop changed"
B=$P/latchkey/bench.sh
sed -i 's|^rm -rf data && mkdir -p data$|&\nif [ -n "${SEED_DB:-}" ]; then cp "$SEED_DB" data/latchkey.db; fi|' "$B"
grep -q 'SEED_DB' "$B" || fail "bench.sh: its 'rm -rf data' line changed"
sed -i 's|^PID=\$!$|&; echo $PID > "$OUT/server.pid"|' "$B"
grep -q 'server.pid' "$B" || fail "bench.sh: its 'PID=\$!' line changed"
# The refresh pool minted before every try, not once before the first.
sed -i '/^  BASE=\$U python3 mint.py >> "\$OUT\/seed.log"$/d' "$B"
sed -i 's|^  \$W "\$OUT" refresh-c\$c \$PID \$c lua/refresh.lua \$U$|  PRE="BASE=$U python3 mint.py >> $OUT/seed.log" $W "$OUT" refresh-c$c $PID $c lua/refresh.lua $U|' "$B"
grep -q 'PRE="BASE=' "$B" || fail "bench.sh: its refresh line changed"
grep -q 'mint.py >> "$OUT/seed.log"$' "$B" && fail "bench.sh: the one-off mint is still there"
# Sign-up: one connection (the time of one sign-up) and 16/64, after the other scenarios.
cp "$HERE/signup.lua" "$P/latchkey/lua/signup.lua"
sed -i 's|^echo "idle RSS at the end:|for c in 1 16 64; do $W "$OUT" signup-c$c $PID $c lua/signup.lua $U; done\n&|' "$B"
grep -q 'signup-c\$c' "$B" || fail "bench.sh: its last lines changed"
S=$P/latchkey/seed.py
sed -i 's|{"slug": "bench", "name": "Bench"}|{"slug": "bench", "name": "Bench", "settings": {"signupMode": "open"}}|' "$S"
grep -q 'signupMode' "$S" || fail "seed.py: its org line changed"
# Idle memory: right after the seed, and after IDLE_WAIT s of nothing, for all three.
for peer in latchkey pocketbase better-auth; do
  F=$P/$peer/bench.sh
  sed -i 's|^echo "idle RSS after seed:|echo "RSS right after seed: $(awk '"'"'/^VmRSS/{print $2}'"'"' /proc/$PID/status) kB" \| tee -a "$OUT/seed.log"; sleep ${IDLE_WAIT:-6}\n&|' "$F"
  grep -q 'RSS right after seed' "$F" || fail "$peer/bench.sh: its idle RSS line changed"
done
