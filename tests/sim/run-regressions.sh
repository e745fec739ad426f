#!/usr/bin/env bash
# Runs every seed in regressions.txt with quorate-sim.
#   run-regressions.sh QUORATE_SIM REGRESSIONS_FILE
set -uo pipefail
sim=$1
file=$2
failures=0
count=0
while read -r seed members scenario unsafe expected; do
  [[ -z ${seed:-} || $seed == \#* ]] && continue
  count=$((count + 1))
  args=(--seed="$seed" --runs=1 --members="$members" --scenario="$scenario")
  if [[ -n ${unsafe:-} ]]; then
    out=$("$sim" "${args[@]}" --unsafe="$unsafe" 2>&1)
    if [[ $out != *"$expected"* ]]; then
      echo "regression: seed $seed with --unsafe=$unsafe no longer reports '$expected'"
      echo "$out" | tail -3
      failures=$((failures + 1))
    fi
  elif ! out=$("$sim" "${args[@]}" 2>&1); then
    echo "regression: seed $seed fails again:"
    echo "$out" | grep -A1 FAIL
    failures=$((failures + 1))
  fi
done <"$file"
echo "regressions: $count seeds, $failures failed"
((failures == 0))
