#!/usr/bin/env bash
# quorate-chaos leaves nothing behind: interrupted with SIGINT it removes its
# namespaces, links, member processes and data at once; killed with SIGKILL
# (no chance to clean up), the next run removes what it left.
#   cleanup_test.sh QUORATE_CHAOS QUORATE_NODE SCHEDULE_DIR
set -euo pipefail
chaos=$1 node=$2 schedules=$3
if [[ $(id -u) != 0 ]] || ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  echo "skipped: needs root, ip and nft"
  exit 77
fi
dir=$(mktemp -d /tmp/quorate-chaos-cleanup-XXXXXX)
trap 'rm -rf "$dir"' EXIT

# Starts a run in the background; waits until its members are up.
start() {
  "$chaos" --schedule="$schedules/short/kill.chaos" --node_binary="$node" \
    --out="$dir/$1" >"$dir/$1.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    grep -q "members up" "$dir/$1.out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "run $1 did not start:"; cat "$dir/$1.out"; exit 1
}
leftovers() {  # namespaces, links and member processes of run $1
  { ip netns list | grep "^qc$1-" || true
    ip link | grep "qc$1h" || true
    pgrep -f "$dir/.*/data" || true; } | wc -l
}

start interrupted
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[[ $status == 3 ]] || { echo "an interrupted run should exit 3, got $status"; exit 1; }
grep -q "interrupted" "$dir/interrupted/report.txt"
n=$(leftovers "$pid")
[[ $n == 0 ]] || { echo "SIGINT: $n leftovers of run $pid"; exit 1; }
[[ ! -d $dir/interrupted/n1/data ]] || { echo "SIGINT: member data left"; exit 1; }
echo "SIGINT: nothing left"

start killed
killed=$pid
kill -KILL "$killed"
wait "$killed" || true
n=$(leftovers "$killed")
[[ $n -gt 0 ]] || { echo "SIGKILL should have left something to clean"; exit 1; }
start next
grep -q "removed qc$killed-" "$dir/next.out" || { echo "the next run did not clean up:"; cat "$dir/next.out"; exit 1; }
kill -INT "$pid"
wait "$pid" || true
n=$(leftovers "$killed")
[[ $n == 0 ]] || { echo "SIGKILL: $n leftovers of run $killed after the next run"; exit 1; }
echo "SIGKILL: the next run removed what was left"
