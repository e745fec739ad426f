#!/usr/bin/env bash
# HTTP/2 keepalive notices a black-holed link: packets silently dropped by
# an nftables rule, not a closed socket (which TCP reports at once).
#
# Three quorate-node processes: n1 and n2 on the host side of a veth pair,
# n3 inside a network namespace this test creates on the other side. Once
# they form a cluster, an nftables rule in n3's namespace drops every
# packet. TCP alone would notice after minutes (retransmissions), the peer
# streams only when their flow-control window fills; keepalive pings go
# unanswered and break the stream in about a second. The test measures how
# long n1 takes to report n3 unreachable in /status, prints it, and fails
# only if it takes over 10 s (a wait limit, not a timing assertion: without
# keepalive it is minutes).
#
# Needs root (network namespaces, nftables); exits 77 (skipped) without it.
#   blackhole_test.sh QUORATE_NODE_BINARY
set -euo pipefail
node_bin=$1
if [[ $(id -u) != 0 ]] || ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  echo "skipped: needs root, ip and nft"
  exit 77
fi

tag=qbh$$
ns=$tag
dir=$(mktemp -d /tmp/quorate-blackhole-XXXXXX)
net=10.$((100 + RANDOM % 100)).$((RANDOM % 250))
host=$net.1
peer=$net.2
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip link del "${tag}h" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [[ ${keep:-0} == 1 ]]; then echo "logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip link add "${tag}h" type veth peer name "${tag}n"
ip link set "${tag}n" netns "$ns"
ip addr add "$host/30" dev "${tag}h"
ip link set "${tag}h" up
ip netns exec "$ns" ip addr add "$peer/30" dev "${tag}n"
ip netns exec "$ns" ip link set "${tag}n" up

# The addresses exist only for this test, so fixed ports cannot collide.
peers="n1@az-a=$host:7001,n2@az-b=$host:7002,n3@az-c=$peer:7003"
start() {  # name listen admin [netns]
  local cmd=("$node_bin" --id="$1" --zone=az-x --listen="$2" --admin="$3"
    --peers="$peers" --data_dir="$dir/$1" --cluster_id=bh
    --heartbeat_interval=50ms --election_timeout=500ms --segment_bytes=1048576)
  if [[ -n ${4:-} ]]; then
    ip netns exec "$4" "${cmd[@]}" >>"$dir/$1.log" 2>&1 &
  else
    "${cmd[@]}" >>"$dir/$1.log" 2>&1 &
  fi
  pids+=($!)
}
start n1 "$host:7001" "$host:7101"
start n2 "$host:7002" "$host:7102"
start n3 "$peer:7003" "$peer:7103" "$ns"

status() { curl -s --max-time 1 "http://$1/status" || true; }
# n3's entry in n1's peers: reachable?
n3_reachable() {
  status "$host:7101" | grep -o '"id": "n3"[^}]*' | grep -o '"reachable": [a-z]*' | awk '{print $2}'
}

# Wait (at most 20 s) until n1 reaches n3 and n3 follows a leader.
for _ in $(seq 400); do
  if [[ $(n3_reachable) == true ]] && status "$peer:7103" | grep -q '"leader_id": "n[12]"'; then
    break
  fi
  sleep 0.05
done
if [[ $(n3_reachable) != true ]]; then
  keep=1
  echo "FAIL: the cluster never formed"
  exit 1
fi

echo "cluster formed after $SECONDS s"
# Black-hole n3: drop everything in and out of its namespace.
ip netns exec "$ns" nft -f - <<EOF
table inet $tag {
  chain in  { type filter hook input  priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
EOF
start_ns=$(date +%s%N)
noticed=""
for _ in $(seq 200); do
  if [[ $(n3_reachable) == false ]]; then
    noticed=$(( ($(date +%s%N) - start_ns) / 1000000 ))
    break
  fi
  sleep 0.05
done
if [[ -z $noticed ]]; then
  keep=1
  echo "FAIL: n1 still reports n3 reachable 10 s after the link was black-holed"
  ss -tnio dst "$peer" || true
  status "$host:7101"
  exit 1
fi
echo "black-holed link noticed after $noticed ms"
# The two on the host side still have a leader.
if ! status "$host:7101" | grep -q '"leader_id": "n[12]"'; then
  keep=1
  echo "FAIL: n1 and n2 lost their leader"
  exit 1
fi
grep -h "lost the stream to member 'n3'" "$dir/n1.log" | head -1
echo PASS
