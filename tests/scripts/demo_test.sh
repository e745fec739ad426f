#!/usr/bin/env bash
# make demo without a terminal, with its keys pressed on a schedule: mail
# flows within 10 s; cutting az-c pauses its member, which comes back when
# healed, and its processors, whose sessions ended meanwhile, join again
# and get shards; a processor is killed and restarted; outbound-email is
# paused and resumed; and quitting runs the audit, which must pass.
#   demo_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
out=$(DEMO_SECONDS=18 DEMO_ACTIONS="4:c 11:c 5:k 9:r 6:o 8:o" \
  "$src/scripts/demo.sh" "$build" 2>&1) || {
  echo "$out"
  echo "demo_test: the demo (or its audit) failed" >&2
  exit 1
}
echo "$out"
fail() { echo "demo_test: $*" >&2; exit 1; }
grep -q '^audit: passed$' <<<"$out" || fail "no passing audit"
[[ $(grep -c ' leader ' <<<"$out") == 1 ]] || fail "not exactly one leader at the end"
# Mail flows within 10 s: some second up to t=10 shows processed mail.
flowing=$(awk '/^t=[0-9]+s modes:/ {
  t = substr($1, 3) + 0
  for (i = 1; i <= NF; i++) if ($i ~ /^processed=/) { split($i, kv, "="); if (kv[2] > 0 && t <= 10) ok = 1 }
} END { print ok + 0 }' <<<"$out")
[[ $flowing == 1 ]] || fail "no mail processed within 10 s"
# n5 paused while az-c was cut (t=4..11), and was active again after.
grep -qE '^t=([5-9]|1[01])s modes:.* n5=paused' <<<"$out" || fail "n5 never paused while cut off"
grep -qE '^t=1[3-8]s modes:.* n5=active' <<<"$out" || fail "n5 did not come back after the heal"
grep -q 'killed pa1' <<<"$out" || fail "no processor was killed"
# az-c's processors lost their sessions while cut off, and after the heal
# they joined again and were given shards.
for p in pc1 pc2; do
  grep -qE "^$p +az-c +up +[0-9]+(,[0-9]+)* " <<<"$out" ||
    fail "$p owns no shard at the end: it did not come back after the heal"
done
echo "demo_test: ok"
