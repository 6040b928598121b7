#!/usr/bin/env bash
# The 503 SlowDown test (tests/integration/test_cellar_slow_down.py: 20 buckets created, re-run and deleted through
# cellar_bucket's list, a quarter of all requests answered 503 by the recording proxy, the RGW seeing them or not)
# run RUNS times in a row (default 20) against one throwaway RGW on free loopback ports, to find a flaky outcome.
# Not part of CI.
#
#   tests/benchmarks/cellar_fault_loop.sh [PYTEST ARGS ...]        say, -k applied for one variant
#   RUNS=50 tests/benchmarks/cellar_fault_loop.sh
#
# KEEPDATA_RGW_ENV=.../rgw.env reuses a running RGW instead of starting one. Prints each run's verdict and seconds,
# then "runs: N passed, N failed", the seconds per run (min, median, max) and the load averages before and after;
# exits non-zero when any run failed, naming the logs of the failed runs (kept in a work directory).
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
kd_activate

RUNS=${RUNS:-20}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || kd_die "RUNS must be a whole number of runs, 1 or more (got '$RUNS')"
TEST="$KD_ROOT/tests/integration/test_cellar_slow_down.py"
W=$(mktemp -d "$KD_WORK/fault-loop.XXXXXX")
own_rgw=""

cleanup() {
  if [ -n "$own_rgw" ]; then KEEPDATA_RGW_DIR="$own_rgw" "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [ -z "${KEEPDATA_RGW_ENV:-}" ]; then
  own_rgw="$KD_WORK/rgw-fault-loop"
  kd_step "start a throwaway RGW on free ports"
  export KEEPDATA_RGW_DIR="$own_rgw" KEEPDATA_RGW_PORT=auto KEEPDATA_MON_PORT=auto
  "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
  "$KD_ROOT/tests/rig/rgw.sh" up >/dev/null
  export KEEPDATA_RGW_ENV="$own_rgw/rgw.env"
fi

load_before=$(loadavg)
kd_step "$RUNS runs of $(basename "$TEST") (load averages $load_before)"
passed=0 failed=() seconds=()
for run in $(seq 1 "$RUNS"); do
  t0=$(now_ms) rc=0
  (cd "$KD_ROOT" && pytest -q -p no:cacheprovider "$TEST" "$@") >"$W/run-$run.log" 2>&1 || rc=$?
  ms=$(($(now_ms) - t0))
  s=$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms / 1000 }')
  seconds+=("$s")
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    echo "run $run: passed in $s s"
  else
    failed+=("$run")
    echo "run $run: FAILED in $s s (log: $W/run-$run.log)"
    grep -E '^(FAILED|E  )' "$W/run-$run.log" | head -n 8 | sed 's/^/  | /' || true
  fi
done

stats=$(printf '%s\n' "${seconds[@]}" | sort -n | awk '{a[NR] = $1} END { printf "min %.1f, median %.1f, max %.1f", a[1], (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[NR] }')
kd_step "done"
echo "runs: $passed passed, ${#failed[@]} failed"
echo "seconds per run: ${seconds[*]}"
echo "seconds per run: $stats"
echo "load averages (1, 5, 15 min): before $load_before, after $(loadavg)"
if ((${#failed[@]})); then
  echo "failed runs: ${failed[*]} (logs in $W)"
  exit 1
fi
rm -rf "$W"
