#!/usr/bin/env bash
# make demo: the email example (examples/email/) on loopback, no root.
#
#   scripts/demo.sh [BUILD_DIR]
#
# Starts 5 Quorate members in three zones (az-a: n1 n2, az-b: n3 n4,
# az-c: n5), one SMTP front per zone, 2 processors per zone, the sink (the
# smarthost replies go to), and a generator sending a steady stream of mail
# to 64 mailboxes over SMTP. The database is a SQLite file in a temporary
# directory (DEMO_DB=postgresql://... uses PostgreSQL instead). It prints
# the dashboard's URL and a live table. Keys:
#   c  cut zone az-c off (its member's links, through the members' fault
#      files, and its processors' links, through zone_link.py), or heal it
#   k  kill -9 a processor;  r  restart the killed ones
#   o  pause or resume the workload outbound-email
#   q  (or Ctrl-C) stop: the generator stops, the rest drains, everything
#      stops, and email-audit checks that nothing was lost or done twice
#
# DEMO_SECONDS=N runs N seconds without a terminal, then quits as q does,
# and exits with the audit's status. DEMO_ACTIONS="4:c 7:c 5:k 8:r" presses
# those keys at those seconds (the test suite runs it so).
set -euo pipefail
build=${1:-build}
node_bin=$build/src/quorate-node
ctl_bin=$build/src/quoratectl
email=$build/examples/email
here=$(cd "$(dirname "$0")" && pwd)
zone_link=$here/../examples/email/demo/zone_link.py
for f in "$node_bin" "$ctl_bin" "$email/email-front" "$email/email-processor" \
         "$email/email-sink" "$email/email-audit" "$email/email-loadgen"; do
  if [[ ! -x $f ]]; then
    echo "demo: $f is missing; run 'make demo' (it builds first)" >&2
    exit 2
  fi
done
for tool in curl ss python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "demo: '$tool' is missing; run scripts/install-deps.sh" >&2
    exit 2
  fi
done

names=(n1 n2 n3 n4 n5)
zones=(az-a az-a az-b az-b az-c)
fzones=(az-a az-b az-c)
procs=(pa1 pa2 pb1 pb2 pc1 pc2)
pzones=(az-a az-a az-b az-b az-c az-c)
dir=$(mktemp -d /tmp/quorate-demo-XXXXXX)
db=${DEMO_DB:-$dir/mail.db}
# A new cluster starts its shards' epochs afresh: a database that an
# earlier run fenced with higher ones would refuse every transaction.
if [[ -n ${DEMO_DB:-} ]] && "$email/email-audit" --db="$DEMO_DB" >/dev/null 2>&1; then
  echo "demo: DEMO_DB already holds the example's tables (an earlier run's);" \
       "give it an empty database" >&2
  rm -rf "$dir"
  exit 2
fi
sink_file=$dir/sink.jsonl

# Ten free loopback ports in a row: the members' gRPC and admin ports
# (members must know each other's addresses before they start).
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
endpoints=""
for i in "${!names[@]}"; do
  peers+="${peers:+,}${names[$i]}@${zones[$i]}=127.0.0.1:$((base + i))"
  endpoints+="${endpoints:+,}127.0.0.1:$((base + i))"
done

declare -A pids
start_member() {
  local i=$1
  : >>"$dir/${names[$i]}.faults"
  "$node_bin" --id="${names[$i]}" --zone="${zones[$i]}" \
    --listen="127.0.0.1:$((base + i))" --admin="127.0.0.1:$((base + 5 + i))" \
    --peers="$peers" --data_dir="$dir/${names[$i]}" --cluster_id=demo \
    --segment_bytes=$((4 << 20)) --event_log="$dir/${names[$i]}.events" \
    --faults_file="$dir/${names[$i]}.faults" \
    >>"$dir/${names[$i]}.log" 2>&1 &
  pids[${names[$i]}]=$!
}

# The HOST:PORT (or port) a process printed on a line of its own.
await_line() {
  local file=$1 pattern=$2 line
  for _ in $(seq 200); do
    line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)
    if [[ -n $line ]]; then echo "$line"; return 0; fi
    sleep 0.05
  done
  echo "demo: nothing like '$pattern' in $file:" >&2
  cat "$file" >&2
  return 1
}

start_processor() {
  local i=$1 env=()
  # az-c's processors reach the cluster only through the zone's link.
  if [[ ${pzones[$i]} == az-c ]]; then env=(env "grpc_proxy=http://127.0.0.1:$link_port"); fi
  "${env[@]}" "$email/email-processor" --id="${procs[$i]}" --zone="${pzones[$i]}" \
    --endpoints="$endpoints" --db="$db" --smarthost="$sink" \
    --status_interval=500ms >>"$dir/${procs[$i]}.out" 2>&1 &
  pids[${procs[$i]}]=$!
}

stop_pid() {
  local name=$1
  [[ -n ${pids[$name]:-} ]] && kill -TERM "${pids[$name]}" 2>/dev/null || true
}

cleanup() {
  trap - INT TERM EXIT
  for name in "${!pids[@]}"; do kill -KILL "${pids[$name]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -z ${DEMO_KEEP:-} ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'quit_requested=1' INT TERM
quit_requested=0

for i in "${!names[@]}"; do start_member "$i"; done
python3 "$zone_link" "$dir/az-c.link" >"$dir/zone_link.out" 2>&1 &
pids[zone_link]=$!
link_port=$(await_line "$dir/zone_link.out" '^[0-9]+$')
"$email/email-sink" --listen=127.0.0.1:0 --out="$sink_file" >"$dir/sink.out" 2>&1 &
pids[sink]=$!
sink=$(await_line "$dir/sink.out" '^127\.0\.0\.1:[0-9]+$')
fronts=""
for z in "${fzones[@]}"; do
  "$email/email-front" --listen=127.0.0.1:0 --db="$db" --zone="$z" \
    >"$dir/front-$z.out" 2>&1 &
  pids[front-$z]=$!
  fronts+="${fronts:+,}$(await_line "$dir/front-$z.out" '^127\.0\.0\.1:[0-9]+$')"
done
for i in "${!procs[@]}"; do start_processor "$i"; done
"$email/email-loadgen" --smtp="$fronts" --rate="${DEMO_RATE:-40}" \
  --mailboxes=64 --bad_every=97 --tag="demo$$" >"$dir/loadgen.out" 2>&1 &
pids[loadgen]=$!

# ---- the keys ----
az_c_cut=0
outbound_paused=0
killed=()
toggle_cut() {
  local i
  if ((az_c_cut)); then
    for i in "${!names[@]}"; do : >"$dir/${names[$i]}.faults"; done
    : >"$dir/az-c.link"
    az_c_cut=0
    note="healed az-c"
  else
    echo "drop=n1,n2,n3,n4" >"$dir/n5.faults"
    for i in 0 1 2 3; do echo "drop=n5" >"$dir/${names[$i]}.faults"; done
    echo cut >"$dir/az-c.link"
    az_c_cut=1
    note="cut az-c off"
  fi
}
kill_processor() {
  local i
  for i in "${!procs[@]}"; do
    if kill -0 "${pids[${procs[$i]}]}" 2>/dev/null; then
      kill -KILL "${pids[${procs[$i]}]}"
      wait "${pids[${procs[$i]}]}" 2>/dev/null || true
      killed+=("$i")
      note="killed ${procs[$i]} (kill -9)"
      return
    fi
  done
}
restart_processors() {
  local i
  for i in "${killed[@]}"; do start_processor "$i"; done
  note="restarted ${#killed[@]} processor(s)"
  killed=()
}
toggle_outbound() {
  if ((outbound_paused)); then
    "$ctl_bin" --endpoints="$endpoints" resume outbound-email >/dev/null 2>&1 &&
      outbound_paused=0 && note="resumed outbound-email"
  else
    "$ctl_bin" --endpoints="$endpoints" pause outbound-email \
      --reason="paused from the demo" >/dev/null 2>&1 &&
      outbound_paused=1 && note="paused outbound-email"
  fi
}
press() {
  case $1 in
    c) toggle_cut ;;
    k) kill_processor ;;
    r) restart_processors ;;
    o) toggle_outbound ;;
    q) quit_requested=1 ;;
  esac
}

# ---- the table ----
field() { sed -n "s/^{.*\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\}[,}].*/\1/p" <<<"$1" | head -1; }
audit_value() { sed -n "s/^$1=//p" <<<"$audit" | head -1; }
last_processed=0
last_time=$SECONDS
rate=0
render() {
  local i s name status
  printf '%-7s %-5s %-10s %-5s %-7s %s\n' MEMBER ZONE ROLE TERM MODE "PAUSE REASON"
  for i in "${!names[@]}"; do
    s=$(curl -s --max-time 0.3 "http://127.0.0.1:$((base + 5 + i))/status" || true)
    if [[ -z $s ]]; then
      printf '%-7s %-5s %s\n' "${names[$i]}" "${zones[$i]}" starting
      continue
    fi
    printf '%-7s %-5s %-10s %-5s %-7s %s\n' "${names[$i]}" "${zones[$i]}" \
      "$(field "$s" role)" "$(field "$s" term)" "$(field "$s" mode)" \
      "$(field "$s" pause_reason)"
  done
  echo
  printf '%-9s %-5s %-6s %-26s %-9s %-6s %s\n' PROCESSOR ZONE STATE SHARDS PROCESSED SENT REFUSED
  for i in "${!procs[@]}"; do
    name=${procs[$i]}
    status=$(grep '^status ' "$dir/$name.out" 2>/dev/null | tail -n 1 || true)
    local state=up
    [[ $(ps -o stat= -p "${pids[$name]}" 2>/dev/null) == [^Z]* ]] || state=down
    [[ $status == *"jeopardy=1"* ]] && state=jeopardy
    printf '%-9s %-5s %-6s %-26s %-9s %-6s %s\n' "$name" "${pzones[$i]}" "$state" \
      "$(sed -n 's/.* owned=\([^ ]*\).*/\1/p' <<<"$status")" \
      "$(sed -n 's/.* processed=\([0-9]*\).*/\1/p' <<<"$status")" \
      "$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$status")" \
      "$(sed -n 's/.* refusals=\([0-9]*\).*/\1/p' <<<"$status")"
  done
  local processed
  processed=$(audit_value processed_once)
  echo
  echo "mail: accepted=$(audit_value accepted) processed=$processed (${rate}/s)" \
       "quarantined=$(audit_value quarantined) backlog=$(audit_value backlog)" \
       "replies sent=$(audit_value replies_sent) delivered=$(audit_value replies_delivered)"
  echo "az-c: $( ((az_c_cut)) && echo CUT || echo connected)   outbound-email:" \
       "$( ((outbound_paused)) && echo paused || echo running)   last: ${note:-}"
}

finish() {
  local i
  echo
  echo "stopping: the generator first, then the rest drains..."
  kill -TERM "${pids[loadgen]}" 2>/dev/null || true
  wait "${pids[loadgen]}" 2>/dev/null || true
  ((az_c_cut)) && toggle_cut
  ((outbound_paused)) && toggle_outbound
  ((${#killed[@]})) && restart_processors
  for _ in $(seq 120); do
    audit=$("$email/email-audit" --db="$db" --sink="$sink_file" 2>/dev/null || true)
    [[ $(audit_value backlog) == 0 &&
       $(audit_value replies_delivered) == "$(audit_value replies_queued)" ]] && break
    sleep 0.5
  done
  for i in "${!procs[@]}"; do stop_pid "${procs[$i]}"; done
  for i in "${!procs[@]}"; do wait "${pids[${procs[$i]}]}" 2>/dev/null || true; done
  for name in "${!pids[@]}"; do stop_pid "$name"; done
  wait 2>/dev/null || true
  echo "email-audit --db=$db --sink=$sink_file"
  set +e
  "$email/email-audit" --db="$db" --sink="$sink_file"
  local rc=$?
  set -e
  if ((rc == 0)); then echo "audit: passed"; else echo "audit: FAILED"; fi
  exit "$rc"
}

# One line per second without a terminal: each member's mode, and the mail.
progress() {
  local i s line="t=${1}s modes:"
  for i in "${!names[@]}"; do
    s=$(curl -s --max-time 0.3 "http://127.0.0.1:$((base + 5 + i))/status" || true)
    line+=" ${names[$i]}=$(field "$s" mode)"
  done
  audit=$("$email/email-audit" --db="$db" 2>/dev/null || true)
  echo "$line accepted=$(audit_value accepted) processed=$(audit_value processed_once)" \
       "backlog=$(audit_value backlog)"
}

header() {
  echo "Quorate email demo: 5 members in 3 zones, 3 SMTP fronts, 6 processors; data in $dir"
  echo "dashboard: http://127.0.0.1:$((base + 5))/ui   (any member's admin port serves it)"
  echo "SMTP: $fronts   smarthost sink: $sink"
}

interactive=0
[[ -t 0 && -t 1 && -z ${DEMO_SECONDS:-} ]] && interactive=1
declare -A actions
for a in ${DEMO_ACTIONS:-}; do actions[${a%%:*}]+=${a#*:}; done
started=$SECONDS
last_progress=-1
while true; do
  ((quit_requested)) && finish
  if ((interactive)); then
    # The audit and the rate here, in this shell (render runs in a
    # subshell, where assignments are lost).
    audit=$("$email/email-audit" --db="$db" --sink="$sink_file" 2>/dev/null || true)
    now_processed=$(( $(audit_value processed_once) + 0 ))
    if ((SECONDS > last_time)); then
      rate=$(( (now_processed - last_processed) / (SECONDS - last_time) ))
      last_processed=$now_processed
      last_time=$SECONDS
    fi
    table=$(render)
    clear
    header
    echo
    echo "$table"
    echo
    echo "keys: c cut/heal az-c   k kill -9 a processor   r restart it" \
         "  o pause/resume outbound-email   q quit and audit"
    key=""
    read -rsn1 -t 0.5 key || true
    [[ -n $key ]] && press "$key"
  else
    elapsed=$((SECONDS - started))
    # Every action due by now (a slow turn of this loop may skip a second).
    for due in $(printf '%s\n' "${!actions[@]}" | sort -n); do
      ((due <= elapsed)) || break
      for ((j = 0; j < ${#actions[$due]}; j++)); do
        press "${actions[$due]:$j:1}"
        echo "t=${elapsed}s: $note"
      done
      unset "actions[$due]"
    done
    if ((elapsed != last_progress)); then
      progress "$elapsed"
      last_progress=$elapsed
    fi
    if ((elapsed >= ${DEMO_SECONDS:-20})); then
      audit=$("$email/email-audit" --db="$db" --sink="$sink_file" 2>/dev/null || true)
      header
      render
      finish
    fi
    sleep 0.5
  fi
done
