#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (docs/fuzzing.md) for a bounded time each and reports
# executions, speed, memory and findings per target.
#
#   bench/fuzz.sh [-t SECONDS] [-r RUNS] [-j JOBS] [-s SANITIZER] [--merge] [--no-build] [TARGET...]
#
#   -t SECONDS   time per target (default 60); -r RUNS stops a target after RUNS executions
#                instead (whichever comes first when both are given)
#   -j JOBS      targets run at once (default 1)
#   -s SAN       sanitizer for the build: address (default; also finds leaks) or none (faster)
#   --merge      afterwards, replace the committed corpus (fuzz/corpus/<target>) by a
#                smallest set of inputs, from it and the run's, that reaches every edge
#                either reached (libFuzzer -set_cover_merge on edges alone)
#   --no-build   use the binaries already built
#   TARGET...    default: every target (`cargo fuzz list`)
#
# Needs the nightly toolchain; installs cargo-fuzz (--locked) if `cargo fuzz` is missing.
# Each run starts from the committed corpus and writes new inputs to a work corpus under
# $FUZZ_WORK (default: $FUZZ_TARGET_DIR/work), never into fuzz/corpus unless --merge.
# A finding (crash, panic, failed assertion, timeout > 10 s, leak, > 2 GiB RSS) is saved in
# $FUZZ_WORK/artifacts/<target>/; the script exits 1 if there was any. Replay one with
#   $FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release/<target> <artifact>
# then add it to tests/fuzz_regressions.rs as a regular test. Extra libFuzzer flags: FUZZ_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=60 runs="" jobs=1 san=address merge=0 build=1 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) secs=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    -s) san=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
work=${FUZZ_WORK:-$target_dir/work}
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "bench/fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

cd "$root/fuzz"
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
if [ "$build" = 1 ]; then
  echo "== cargo fuzz build (sanitizer: $san)"
  start=$(date +%s)
  one=()
  [ ${#targets[@]} -eq 1 ] && one=("${targets[0]}")
  cargo +nightly fuzz build -s "$san" --target-dir "$target_dir" "${one[@]}"
  echo "   built in $(( $(date +%s) - start )) s"
fi

run_one() {
  local t=$1 corpus=$work/corpus/$t art=$work/artifacts/$t log=$work/logs/$t.log
  rm -rf "$art"
  mkdir -p "$corpus" "$art" "$(dirname "$log")" "$root/fuzz/corpus/$t"
  local dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=(-dict="$root/fuzz/dict/$t.dict")
  local limit=(-max_total_time="$secs")
  [ -n "$runs" ] && limit+=(-runs="$runs")
  # shellcheck disable=SC2086
  "$bin_dir/$t" "$corpus" "$root/fuzz/corpus/$t" "${limit[@]}" "${dict[@]}" \
    -artifact_prefix="$art/" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    ${FUZZ_ARGS:-} >"$log" 2>&1 || true
}

# The api target keeps its database in a temporary directory that outlives the process
# (libFuzzer exits without running destructors): give the runs one of their own, in memory
# where possible, and remove it afterwards.
tmp_base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp_base=/dev/shm
TMPDIR=$(mktemp -d "$tmp_base/latchkey-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

echo "== fuzzing ${#targets[@]} targets, ${secs} s${runs:+ or $runs runs} each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

status=0
printf '%-16s %8s %14s %10s %8s %8s %8s  %s\n' target seconds executions execs/s rss_mb edges corpus findings
for t in "${targets[@]}"; do
  log=$work/logs/$t.log
  stat() { grep -o "stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$' || echo "?"; }
  execs=$(stat number_of_executed_units)
  speed=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | grep -o '[0-9]* second' | grep -o '[0-9]*' || echo "?")
  edges=$(grep -o 'DONE *cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  corpus=$(grep -o 'DONE .* corp: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  found=$(find "$work/artifacts/$t" -type f | wc -l)
  if [ "$found" -gt 0 ] || ! grep -q 'Done [0-9]* runs' "$log"; then
    status=1
    what="$found: $(find "$work/artifacts/$t" -type f -printf '%f ' | head -c 300) (log: $log)"
  else
    what=0
  fi
  printf '%-16s %8s %14s %10s %8s %8s %8s  %s\n' "$t" "$took" "$execs" "$speed" "$rss" "$edges" "$corpus" "$what"
done

if [ "$merge" = 1 ]; then
  echo "== merging new coverage into fuzz/corpus/"
  for t in "${targets[@]}"; do
    before=$(find "$root/fuzz/corpus/$t" -type f | wc -l)
    rm -rf "$work/merged/$t"
    mkdir -p "$work/merged/$t"
    if "$bin_dir/$t" -set_cover_merge=1 -use_counters=0 -use_cmp=0 "$work/merged/$t" \
      "$root/fuzz/corpus/$t" "$work/corpus/$t" >"$work/logs/$t.merge.log" 2>&1; then
      rm -rf "$root/fuzz/corpus/$t"
      mv "$work/merged/$t" "$root/fuzz/corpus/$t"
    else
      echo "   $t: merge failed, corpus kept (log: $work/logs/$t.merge.log)"
    fi
    echo "   $t: $before → $(find "$root/fuzz/corpus/$t" -type f | wc -l) inputs"
  done
fi
exit $status
