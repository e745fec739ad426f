#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz/, for CTest and `make fuzz`.
#
#   run-fuzzer.sh replay BINARY SEED_DIR
#       Runs every seed once. Fails on a crash.
#   run-fuzzer.sh fuzz BINARY SECONDS SEED_DIR CORPUS_DIR CRASH_DIR [--fresh]
#       Fuzzes for SECONDS (0: until interrupted), starting from the seeds
#       and the inputs already in CORPUS_DIR, where new ones go (--fresh
#       empties it first); the seeds are only read. A crashing input goes to
#       CRASH_DIR, with the whole log (CRASH_DIR/last-run.log). Prints what
#       ran, for how long and how fast; on a crash, the report's start and
#       the command that replays it, and fails.
#
# The log streams to the terminal when there is one; otherwise (CTest) only
# the summary and a crash report are printed.
set -euo pipefail
mode=${1:?mode: replay or fuzz}
bin=${2:?binary}
name=$(basename "$bin")

report() {  # report LOG: the crash report's first lines, and the input
  local log=$1
  echo "---- $name: crash report (full log: $log)"
  # From the first sign of trouble to the sanitizer's summary, without
  # libFuzzer's and libc's own frames.
  sed -n '/check failed\|ERROR: \|runtime error\|deadly signal/,/^SUMMARY/p' \
    "$log" |
    grep -Ev ' in (fuzzer::|__sanitizer_|raise|abort|main|_start|__libc|__pthread)|libc\.so|^NOTE: |^ +Combine libFuzzer' |
    sed 's/ (BuildId: [0-9a-f]*)//' | head -n 40
  local input
  input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p; s/^Running: \(.*\)$/\1/p' \
    "$log" | tail -n 1)
  [[ -n $input ]] && echo "---- replay: $bin $input"
  return 0
}

case $mode in
  replay)
    seeds=${3:?seed dir}
    log=$(mktemp --suffix=".$name.log")  # kept if a seed crashes
    mapfile -t files < <(find "$seeds" -type f | sort)
    ((${#files[@]})) || { echo "$name: no seeds in $seeds"; exit 1; }
    if ! "$bin" "${files[@]}" >"$log" 2>&1; then
      report "$log"
      exit 1
    fi
    rm -f "$log"
    echo "$name: ${#files[@]} seeds from $seeds ran without a finding"
    ;;
  fuzz)
    seconds=${3:?seconds}
    seeds=${4:?seed dir}
    corpus=${5:?corpus dir}
    crashes=${6:?crash dir}
    [[ ${7:-} == --fresh ]] && rm -rf "$corpus"
    mkdir -p "$corpus" "$crashes"
    log=$crashes/last-run.log
    # Slow inputs (long bursts of commands, big directories) get less of
    # the fuzzer's time than fast ones: several times the executions.
    args=(-print_final_stats=1 -timeout=30 -rss_limit_mb=2560
          -entropic_scale_per_exec_time=1 "-artifact_prefix=$crashes/")
    ((seconds > 0)) && args+=("-max_total_time=$seconds")
    echo "$name: fuzzing for $( ((seconds > 0)) && echo "$seconds s" ||
      echo "ever (Ctrl-C stops)"), seeds $seeds, corpus $corpus"
    start=$SECONDS
    status=0
    if [[ -t 1 ]]; then
      "$bin" "${args[@]}" "$corpus" "$seeds" 2>&1 | tee "$log" || status=$?
    else
      "$bin" "${args[@]}" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
    fi
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
    echo "$name: ran $((SECONDS - start)) s, $(stat number_of_executed_units) execs" \
      "($(stat average_exec_per_sec)/s), $(stat new_units_added) new inputs," \
      "corpus $(find "$corpus" -type f | wc -l) files, peak RSS $(stat peak_rss_mb) MB"
    if ((status != 0)); then
      report "$log"
      exit 1
    fi
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
