#!/usr/bin/env bash
# The incident replays of the email example, on real processes under
# quorate-chaos (docs/operations.md, "Incident replays"):
#
#   replay.sh zone-cut BUILD_DIR         as root: zones are network
#                                        namespaces, the cut nftables rules
#   replay.sh outbound-flood BUILD_DIR   any user
#
# Each run writes a schedule (zone-cut.chaos or outbound-flood.chaos) in its
# directory and runs it: 5 members in 3 zones, an SMTP front and 2
# processors per zone, the database, the sink, a load generator and a
# sampler. The run's last check is `email-audit --replay`, which writes
# replay.txt, replay.json and replay.html (table and timeline) there. At
# the end, every run's numbers are summed up as medians.
#
# Settings (environment):
#   RUNS=1              runs of each combination
#   DBS="postgres sqlite"
#   OUT=DIR             where the runs go (default: a new /tmp directory)
#   zone-cut:  CUT=5m VARIANTS="a b" RATE=50 WARMUP=20s AFTER=30s
#              a: coordination only (az-c still reaches the database);
#              b: everything (az-c reaches neither the other zones nor the
#                 database; PostgreSQL only: a SQLite file cannot be cut)
#   outbound-flood:  BURST=20000 STALL=2m OUTBOX_LIMIT=256 SEND_TIMEOUT=10s
# Exit status: 0 when every run passed every check; 1 otherwise; 77 when
# this machine cannot run it (zone-cut without root, no PostgreSQL).
set -euo pipefail

kind=${1:-}
build=${2:-build}
case $kind in
  zone-cut | outbound-flood) ;;
  *)
    echo "usage: replay.sh zone-cut|outbound-flood BUILD_DIR" >&2
    exit 2
    ;;
esac
build=$(cd "$build" && pwd)
chaos=$build/src/quorate-chaos
node=$build/src/quorate-node
ctl=$build/src/quoratectl
email=$build/examples/email
for bin in "$chaos" "$node" "$ctl" "$email/email-processor" "$email/email-audit"; do
  if [[ ! -x $bin ]]; then
    echo "replay: $bin is missing: build first (make build)" >&2
    exit 2
  fi
done

RUNS=${RUNS:-1}
DBS=${DBS:-postgres sqlite}
CUT=${CUT:-5m}
VARIANTS=${VARIANTS:-a b}
RATE=${RATE:-50}
WARMUP=${WARMUP:-20s}
AFTER=${AFTER:-30s}
BURST=${BURST:-20000}
STALL=${STALL:-2m}
OUTBOX_LIMIT=${OUTBOX_LIMIT:-256}
SEND_TIMEOUT=${SEND_TIMEOUT:-10s}
OUT=${OUT:-$(mktemp -d "/tmp/quorate-replay-$kind-XXXXXX")}
mkdir -p "$OUT"
# PostgreSQL runs as the user postgres, under $OUT (mktemp made it 0700).
chmod 755 "$OUT"

if [[ $kind == zone-cut && $(id -u) != 0 ]]; then
  echo "skipped: the zone cut needs root (network namespaces and nftables)"
  exit 77
fi
pgbin=""
if [[ " $DBS " == *" postgres "* ]]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z $pgbin || ! -x $pgbin/postgres ]]; then
    echo "skipped: no PostgreSQL server under /usr/lib/postgresql (package postgresql)"
    exit 77
  fi
fi

seconds() { # a duration such as 2m, 90s or 1m30s, in whole seconds
  local d=$1 total=0 n
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in h) n=$((n * 3600)) ;; m) n=$((n * 60)) ;; esac
    total=$((total + n))
    d=${BASH_REMATCH[3]}
  done
  [[ -z $d ]] || { echo "replay: '$1' is not a duration such as 2m or 90s" >&2; exit 2; }
  echo "$total"
}

# PostgreSQL for one run: a fresh cluster under $1, run as the user
# postgres when we are root (it refuses root). Prints the service lines.
pg_services() {
  local dir=$1 as=()
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$dir"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  "${as[@]}" "$pgbin/initdb" -D "$dir/data" -U quorate --auth=trust -E UTF8 \
    --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  # Every zone's processes connect over the run's network.
  echo "host all all 0.0.0.0/0 trust" >>"$dir/data/pg_hba.conf"
  cat <<EOF
service db * ${as[*]} $pgbin/postgres -D $dir/data -c listen_addresses={address} -p 5432 -k $dir -c max_connections=300
ready db 60s $pgbin/pg_isready -q -h {address:db} -p 5432
EOF
}

# The services every replay has: the database (for PostgreSQL), the sink,
# a front per zone, 2 processors per zone, the sampler.
common() {
  local db=$1 dbspec=$2 stall_mode=$3 extra=$4
  cat <<EOF
members 5
zones az-a az-a az-b az-b az-c
clients 0
settle 2s
resume_within 1s
set email $email
set db $dbspec
EOF
  if [[ $db == postgres ]]; then pg_services "$run_dir.pg"; fi
  cat <<EOF
service sink * {email}/email-sink --listen={address}:2525 --out={out_dir}/sink.jsonl --stall_file={out_dir}/stall --stall_mode=$stall_mode
ready sink 30s timeout 2 bash -c echo>/dev/tcp/{address:sink}/2525
EOF
  for z in a b c; do
    echo "service front-$z az-$z {email}/email-front --listen={address}:2525 --db={db} --zone=az-$z --id={name}"
    echo "ready front-$z 30s timeout 2 bash -c echo>/dev/tcp/{address:front-$z}/2525"
  done
  for z in a b c; do
    for i in 1 2; do
      echo "service proc-$z$i az-$z {email}/email-processor --id={name} --zone={zone} --endpoints={endpoints} --db={db} --smarthost={address:sink}:2525 --event_log={out_dir}/{name}.email.jsonl --status_interval=5s $extra"
    done
  done
  echo "service sampler - {email}/email-audit --db={db} --samples={out_dir}/samples.jsonl"
}

zone_cut_schedule() {
  local db=$1 dbspec=$2 variant=$3 nemesis=partition-zone
  [[ $variant == b ]] && nemesis=isolate-zone
  common "$db" "$dbspec" data ""
  cat <<EOF
service loadgen - {email}/email-loadgen --smtp={address:front-a}:2525,{address:front-b}:2525,{address:front-c}:2525 --rate=$RATE --mailboxes=64 --tag=replay --senders=16 --send_timeout=2s --report_interval=10s
quiet $WARMUP
$nemesis az-c $CUT
quiet $AFTER
stop loadgen
await 5m {email}/email-audit --db={db} --drained
check {email}/email-audit --db={db} --sink={out_dir}/sink.jsonl --replay={out_dir} --kind=zone-cut
EOF
}

outbound_flood_schedule() {
  local db=$1 dbspec=$2 before_pause
  before_pause=$(($(seconds "$STALL") - 15))
  ((before_pause >= 5)) || { echo "replay: STALL must be at least 20s" >&2; exit 2; }
  common "$db" "$dbspec" silent "--outbox_limit=$OUTBOX_LIMIT --send_timeout=$SEND_TIMEOUT"
  cat <<EOF
set ctl $ctl
service loadgen - {email}/email-loadgen --smtp={address:front-a}:2525,{address:front-b}:2525,{address:front-c}:2525 --count=$BURST --rate=0 --mailboxes=64 --tag=flood --report_interval=10s
quiet 1s
mark stall
run touch {out_dir}/stall
quiet ${before_pause}s
mark pause
run {ctl} --endpoints={endpoints} pause outbound-email --reason=replay
quiet 15s
mark unstall
run rm -f {out_dir}/stall
quiet 5s
mark resume
run {ctl} --endpoints={endpoints} resume outbound-email
await 10m {email}/email-audit --db={db} --drained --min_accepted=$BURST
check {email}/email-audit --db={db} --sink={out_dir}/sink.jsonl --replay={out_dir} --kind=outbound-flood --outbox_limit=$OUTBOX_LIMIT --send_timeout=$SEND_TIMEOUT
EOF
}

failed=0
dirs=()
for db in $DBS; do
  variants=-
  [[ $kind == zone-cut ]] && variants=$VARIANTS
  for variant in $variants; do
    if [[ $kind == zone-cut && $variant == b && $db == sqlite ]]; then
      echo "== zone-cut b with sqlite: skipped (a SQLite file is local to every" \
           "zone: no network cut can keep az-c from it)"
      continue
    fi
    for n in $(seq "$RUNS"); do
      name=$kind-$variant-$db-$n
      [[ $variant == - ]] && name=$kind-$db-$n
      run_dir=$OUT/$name
      if [[ $db == postgres ]]; then
        dbspec="postgresql://quorate@{address:db}:5432/postgres?connect_timeout=3&tcp_user_timeout=5000"
      else
        dbspec="$OUT/$name.mail.db"
        rm -f "$dbspec"*
      fi
      schedule=$OUT/$name.chaos
      if [[ $kind == zone-cut ]]; then
        zone_cut_schedule "$db" "$dbspec" "$variant" >"$schedule"
      else
        outbound_flood_schedule "$db" "$dbspec" >"$schedule"
      fi
      echo "== $name: $run_dir"
      rc=0
      "$chaos" --schedule="$schedule" --node_binary="$node" --out="$run_dir" \
        --quiet || rc=$?
      if [[ -f $run_dir/replay.txt ]]; then
        sed 's/^/   /' "$run_dir/replay.txt"
      fi
      if ((rc != 0)); then
        failed=1
        echo "== $name FAILED (quorate-chaos exit $rc): $run_dir/report.txt"
        grep -E "FAIL|did not complete" "$run_dir/report.txt" | sed 's/^/   /' || true
      fi
      [[ $db == postgres ]] && rm -rf "$run_dir.pg"
      dirs+=("$run_dir")
    done
  done
done
echo
if ((${#dirs[@]} > 0)); then
  echo "== medians over the runs (${#dirs[@]} runs in $OUT)"
  "$email/email-audit" --summarize="$(IFS=,; echo "${dirs[*]}")" || failed=1
fi
exit $failed
