#!/usr/bin/env bash
# Outbox benchmark: events committed (one per transaction, as handlers do) → delivered to local
# HTTP receivers on 127.0.0.1. Prints deliveries/s and commit→receipt latency percentiles for
# a burst to one and to four endpoints, a paced 500/s run, and the slow-receiver isolation
# case. Results are recorded in docs/benchmarks.md ("## Outbox").
#
#   bench/outbox.sh                       # 5000 events per burst
#   OUTBOX_BENCH_EVENTS=20000 bench/outbox.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTBOX_BENCH_EVENTS="${OUTBOX_BENCH_EVENTS:-5000}"
cargo test --release --test outbox_bench -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep -E 'burst|paced|slow|test result'
