#!/usr/bin/env bash
# The "before" figures of docs/benchmarks.md's HTTP section: a trivial endpoint served by
# rouille's own connection layer (tiny_http 0.12, `rouille::Server::new(..).pool_size(8)`),
# driven by the same load generator at 16, 64 and 256 keep-alive connections. Prints one line
# per run: req/s, p99, connections that completed at least one request, server threads.
# usage: bench/baseline.sh [SECONDS]   (127.0.0.1 only; bounded in time)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release --example rouille_baseline --example loadgen
PORT=$((20000 + RANDOM % 20000))
"$TARGET_DIR/release/examples/rouille_baseline" "127.0.0.1:$PORT" 8 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
for c in 16 64 256; do
  "$TARGET_DIR/release/examples/loadgen" --url "http://127.0.0.1:$PORT/healthz" --connections "$c" \
    --duration "$DUR" --watch-pid "$PID" --label "rouille-$c" >"/tmp/rouille-baseline-$c.json" || true
  jq -r --arg c "$c" '"rouille/tiny_http, \($c) connections: \(.req_per_s|floor) req/s, p99 \(.latency_ms.p99) ms, progressing \(.connections_progressing)/\($c), server threads max \(.server.threads_max), statuses \(.status), errors \(.errors)"' \
    "/tmp/rouille-baseline-$c.json"
done
