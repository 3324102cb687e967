#!/usr/bin/env bash
# Outbox benchmark: events caused by real HTTP requests (PUT /api/v1/auth/me on a keep-alive
# connection: the change, its user.updated event and the outbox rows commit in the request's
# transaction, and the request pipeline wakes the worker, as for any handler) → delivered to
# local HTTP receivers on 127.0.0.1. Prints deliveries/s and latency percentiles (from the
# answer, and from the request being sent) for requests paced at 10/s (an idle worker woken
# by each request) and 500/s, a burst to one and to four endpoints, and the slow-receiver
# isolation case. Results are recorded in docs/benchmarks.md ("## Outbox").
#
#   bench/outbox.sh                       # 5000 requests per burst
#   OUTBOX_BENCH_EVENTS=20000 bench/outbox.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTBOX_BENCH_EVENTS="${OUTBOX_BENCH_EVENTS:-5000}"
cargo test --release --test outbox_bench -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep -E 'burst|paced|slow|test result'
