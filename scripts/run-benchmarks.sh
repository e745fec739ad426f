#!/usr/bin/env bash
# Runs every benchmark binary of a build directory and prints its numbers.
# Benchmarks measure; they never fail on time.   run-benchmarks.sh BUILD_DIR
set -euo pipefail
build=$1
mapfile -t benches < <(find "$build/tests/bench" -maxdepth 1 -type f -executable -name '*_bench' | sort)
if ((${#benches[@]} == 0)); then
  echo "run-benchmarks: no benchmark binaries in $build/tests/bench" >&2
  exit 1
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for b in "${benches[@]}"; do
  echo "== $(basename "$b")"
  "$b" --benchmark_repetitions="${BENCH_REPETITIONS:-5}" \
    --benchmark_report_aggregates_only=true
done
