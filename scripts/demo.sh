#!/usr/bin/env bash
# A local cluster of 5 quorate-node processes in 3 zones (az-a: 2, az-b: 2,
# az-c: 1) on loopback, with data in a temporary directory, and a live table
# of the members. `make demo` builds first, then runs this.
#
#   scripts/demo.sh [BUILD_DIR]
#
# Keys: r restarts every killed member, q quits (as does Ctrl-C). Kill a
# member from another terminal with `kill -9 PID` (the table shows PIDs)
# and watch the others elect a new leader.
#
# DEMO_SECONDS=N stops by itself after N seconds and prints the last table
# without colours (the test suite runs it so).
set -euo pipefail
build=${1:-build}
node_bin=$build/src/quorate-node
if [[ ! -x $node_bin ]]; then
  echo "demo: $node_bin is missing; run 'make demo' (it builds first)" >&2
  exit 2
fi
for tool in curl ss; do
  if ! command -v "$tool" >/dev/null; then
    echo "demo: '$tool' is missing; run scripts/install-deps.sh" >&2
    exit 2
  fi
done

names=(n1 n2 n3 n4 n5)
zones=(az-a az-a az-b az-b az-c)
dir=$(mktemp -d /tmp/quorate-demo-XXXXXX)

# Ten free loopback ports: a random run of them that nothing listens on.
pick_ports() {
  local tries base p ok
  for tries in $(seq 50); do
    base=$((20000 + RANDOM % 30000))
    ok=1
    for p in $(seq "$base" $((base + 9))); do
      if [[ -n $(ss -Htan "sport = :$p") ]]; then ok=0; break; fi
    done
    if ((ok)); then echo "$base"; return 0; fi
  done
  echo "demo: found no 10 free ports in a row" >&2
  return 1
}
base=$(pick_ports)
peers=""
for i in "${!names[@]}"; do
  peers+="${peers:+,}${names[$i]}@${zones[$i]}=127.0.0.1:$((base + i))"
done

endpoints=""
for i in "${!names[@]}"; do endpoints+="${endpoints:+,}127.0.0.1:$((base + i))"; done

declare -A pids
start_member() {
  local i=$1
  "$node_bin" --id="${names[$i]}" --zone="${zones[$i]}" \
    --listen="127.0.0.1:$((base + i))" --admin="127.0.0.1:$((base + 5 + i))" \
    --peers="$peers" --data_dir="$dir/${names[$i]}" --cluster_id=demo \
    --segment_bytes=$((4 << 20)) --event_log="$dir/${names[$i]}.events" \
    >>"$dir/${names[$i]}.log" 2>&1 &
  pids[$i]=$!
}

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping the cluster..."
  for i in "${!names[@]}"; do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for i in "${!names[@]}"; do wait "${pids[$i]}" 2>/dev/null || true; done
  rm -rf "$dir"
  echo "stopped; removed $dir"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

for i in "${!names[@]}"; do start_member "$i"; done

field() { sed -n "s/^{.*\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\}[,}].*/\1/p" <<<"$1" | head -1; }

render() {
  local i s role
  printf '%-4s %-6s %-8s %-14s %-6s %-7s %-7s %-7s\n' ID ZONE PID ROLE TERM LEADER MODE COMMIT
  for i in "${!names[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      printf '%-4s %-6s %-8s %-14s\n' "${names[$i]}" "${zones[$i]}" "-" "down"
      continue
    fi
    s=$(curl -s --max-time 0.5 "http://127.0.0.1:$((base + 5 + i))/status" || true)
    if [[ -z $s ]]; then
      printf '%-4s %-6s %-8s %-14s\n' "${names[$i]}" "${zones[$i]}" "${pids[$i]}" "starting"
      continue
    fi
    role=$(field "$s" role)
    printf '%-4s %-6s %-8s %-14s %-6s %-7s %-7s %-7s\n' "${names[$i]}" "${zones[$i]}" \
      "${pids[$i]}" "$role" "$(field "$s" term)" "$(field "$s" leader_id)" \
      "$(field "$s" mode)" "$(field "$s" commit_index)"
  done
}

interactive=0
[[ -t 0 && -t 1 && -z ${DEMO_SECONDS:-} ]] && interactive=1
started=$SECONDS
while true; do
  if ((interactive)); then
    table=$(render)
    clear
    echo "Quorate demo: 5 members in 3 zones on loopback; data in $dir"
    echo
    echo "$table"
    echo
    echo "Kill a member from another terminal: kill -9 PID  (try the leader)"
    echo "Write and read: $build/src/quoratectl --endpoints=$endpoints put k v"
    echo "Keys: r = restart killed members, q or Ctrl-C = stop everything"
    key=""
    read -rsn1 -t 0.5 key || true
    case $key in
      q) exit 0 ;;
      r) for i in "${!names[@]}"; do
           kill -0 "${pids[$i]}" 2>/dev/null || start_member "$i"
         done ;;
    esac
  else
    if ((SECONDS - started >= ${DEMO_SECONDS:-10})); then
      echo "Quorate demo: 5 members in 3 zones on loopback; data in $dir"
      render
      exit 0
    fi
    sleep 0.5
  fi
done
