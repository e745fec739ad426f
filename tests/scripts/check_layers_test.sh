#!/usr/bin/env bash
# Proves that scripts/check-layers.sh can fail: it runs the script on a small
# fixture tree with one planted violation per rule and requires exit status 1,
# every planted file:line in the output with the reason its rule gives, and no
# other file:line (in particular none of the clean includes); then on the
# clean part of the fixture alone, requiring exit status 0 and
# "check-layers: ok"; and on a root without src/, requiring a failure.
#   tests/scripts/check_layers_test.sh [SCRIPT]
# SCRIPT defaults to $CHECK_LAYERS, then to scripts/check-layers.sh of this
# checkout (pass a mutated copy to see this test fail).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script=${1:-${CHECK_LAYERS:-$here/../../scripts/check-layers.sh}}
if [[ ! -f $script ]]; then
  echo "check_layers_test: no script at $script" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
full=$work/full   # clean files and planted violations
clean=$work/clean # clean files only
mkdir -p "$full/src" "$clean/src"

planted=() # file:line of every planted violation, in $full
allowed=() # file:line of every clean include, in $full

append() { # append ROOT FILE TEXT; prints the line number of TEXT
  mkdir -p "$1/$(dirname "$2")"
  printf '%s\n' "$3" >>"$1/$2"
  wc -l <"$1/$2" | tr -d ' '
}
# ok FILE TEXT...: lines that must not be reported, in both trees.
ok() {
  local file=$1 text n
  shift
  for text in "$@"; do
    n=$(append "$full" "$file" "$text")
    append "$clean" "$file" "$text" >/dev/null
    allowed+=("$file:$n")
  done
}
# bad FILE TEXT REASON: one planted violation, in the full tree only; its
# message must contain REASON.
declare -A reason
bad() {
  local n
  n=$(append "$full" "$1" "$2")
  planted+=("$1:$n")
  reason[$1:$n]=$3
}

# (a) Clean files.
ok include/quorate/client.h '#pragma once' \
  '#include <string>' \
  '#include "absl/status/status.h"  // no grpc, no .pb.h here' \
  '#include "quorate/version.h"'
ok include/quorate/version.h '#pragma once' '#include <vector>'
ok include/quorate/member.h '#pragma once' '#include "quorate/client.h"' '#include <absl/time/time.h>'
ok src/util/check.h '#pragma once' '#include <string>' '#include "absl/strings/str_cat.h"'
ok src/util/mutex.h '#pragma once' '#include <mutex>' '#include "util/check.h"'
ok src/raft/raft.h '#pragma once' \
  '#include <vector>' \
  '#include "wire/raft.pb.h"' \
  '#include "raft/log.h"' \
  '#include "util/check.h"' \
  '// #include "node/node.h" is commented out' \
  '#include "absl/status/statusor.h"'
ok src/storage/storage.cc '#include "storage/storage.h"' \
  '#include <thread>' \
  '#include "raft/raft.h"' \
  '#include "util/mutex.h"' \
  '#include "wire/storage.pb.h"'
ok src/transport/transport.cc '#include <grpcpp/grpcpp.h>' \
  '#include "wire/peer.grpc.pb.h"' \
  '#include "storage/storage.h"'
ok src/node/node.cc '#include "node/node.h"' \
  '#include "transport/transport.h"' \
  '#include "storage/storage.h"' \
  '#include "raft/raft.h"' \
  '#include "../util/check.h"' \
  '#include "wire/raft.pb.h"' \
  '#include "nolayer/whatever.h"'
ok src/admin/admin.cc '#include <boost/beast.hpp>' '#include "guard/guard.h"' '#include "coord/kv.h"'
ok src/api/client.cc '#include "quorate/client.h"' '#include "admin/admin.h"' '#include "node/node.h"'
ok src/chaos/runner.cc '#include "quorate/member.h"' '#include "api/client_impl.h"'
ok src/cmd/main.cc '#include <quorate/version.h>' '#include "chaos/runner.h"' '#include <grpcpp/grpcpp.h>'

# (b) Planted violations, one per rule (and variants after them), each with
# the reason its message must give.
up='a layer above it'
api='must not include the public API'
nopub='no public header'
util='util must not include'
grpc='must not include gRPC'
core='consensus core'
gen='public header includes a generated header'
lib='public header exposes an implementation library'
internal='public header includes a non-public header'
missing='public header includes a missing public header'
bad src/raft/x.cc '#include "node/node.h"' "$up"
bad src/storage/wal.cc '#  include   "transport/transport.h"' "$up"
bad src/node/api_use.cc '#include "quorate/client.h"' "$api"
bad src/util/proto.h '#include "wire/raft.pb.h"' "$util"
bad src/util/rpc.h '#include <grpcpp/grpcpp.h>' "$util"
bad src/storage/peer.cc '#include "wire/peer.grpc.pb.h"' "$grpc"
bad src/raft/clock.cc '#include "absl/time/clock.h"' "$core"
bad src/raft/tick.cc '#include "util/clock.h"' "$core"
bad src/raft/lock.cc '#include "util/mutex.h"' "$core"
bad src/raft/thread.cc '#include <thread>' "$core"
bad src/raft/time.cc '#include <chrono>' "$core"
bad include/quorate/leak_wire.h '#include "wire/raft.pb.h"' "$gen"
bad include/quorate/leak_grpc.h '#include <grpcpp/grpcpp.h>' "$lib"
bad include/quorate/leak_util.h '#include "util/check.h"' "$internal"
bad src/api/old_proto.cc '#include "quorate/raft.pb.h"' "$nopub"
# Variants: other forbidden headers, other spellings of a path, violations
# between clean lines of the same file.
ok src/raft/core.cc '#include "raft/raft.h"'
bad src/raft/core.cc '#include "absl/synchronization/mutex.h"' "$core"
bad src/raft/core.cc '#include "util/thread_name.h"' "$core"
bad src/raft/core.cc '#include "util/serial_executor.h"' "$core"
bad src/raft/core.cc '#include "util/log_time.h"' "$core"
bad src/raft/core.cc '#include "absl/time/time.h"' "$core"
bad src/raft/core.cc '#include "absl/random/random.h"' "$core"
bad src/raft/core.cc '#include <random>' "$core"
bad src/raft/core.cc '#include <fstream>' "$core"
ok src/raft/core.cc '#include <algorithm>'
bad src/raft/relative.cc '#include "../node/node.h"' "$up"
bad src/node/prefixed.cc '#include "src/coord/kv.h"' "$up"
bad src/coord/kv.cc '#include <quorate/client.h>' "$api"
bad src/util/asio.h '#include <boost/asio.hpp>' "$util"
bad src/raft/rpc.cc '#include <grpc/grpc.h>' "$grpc"
bad src/chaos/stub.cc '#include "quorate/client.grpc.pb.h"' "$nopub"
bad include/quorate/leak_angle.h '#include <util/check.h>' "$internal"
bad include/quorate/leak_pb.h '#include "quorate/raft.pb.h"' "$lib"
bad include/quorate/leak_boost.h '#include <boost/asio.hpp>' "$lib"
bad include/quorate/leak_missing.h '#include "quorate/internal.h"' "$missing"

failed=0
problem() {
  echo "check_layers_test: $*" >&2
  failed=1
}

# The full tree: exit 1, every planted file:line reported, nothing else.
status=0
out=$(bash "$script" "$full" 2>&1) || status=$?
if ((status != 1)); then
  problem "expected exit status 1 on the fixture with violations, got $status"
fi
declare -A row_at is_allowed
for loc in "${allowed[@]}"; do is_allowed[$loc]=1; done
reported=0
while IFS= read -r row; do
  loc=${row%%: *}
  reported=$((reported + 1))
  row_at[$loc]=$row
  if [[ -z ${reason[$loc]+x} ]]; then
    if [[ -n ${is_allowed[$loc]+x} ]]; then
      problem "unexpected (a clean include): $row"
    else
      problem "unexpected: $row"
    fi
  fi
done < <(grep -E '^[^: ]+:[0-9]+: ' <<<"$out" || true)
for loc in "${planted[@]}"; do
  if [[ -z ${row_at[$loc]+x} ]]; then
    problem "missing: $loc: $(sed -n "${loc##*:}p" "$full/${loc%:*}")"
  elif [[ ${row_at[$loc]} != *"${reason[$loc]}"* ]]; then
    problem "wrong reason (expected '${reason[$loc]}'): ${row_at[$loc]}"
  fi
done

# The clean tree alone: exit 0 and "check-layers: ok", nothing reported.
status=0
clean_out=$(bash "$script" "$clean" 2>&1) || status=$?
if ((status != 0)) || ! grep -qx 'check-layers: ok' <<<"$clean_out"; then
  problem "expected exit status 0 and 'check-layers: ok' on the clean fixture, got $status:"
  echo "$clean_out" >&2
fi

# A root without src/ is an error, not a pass.
mkdir -p "$work/empty"
status=0
bash "$script" "$work/empty" >/dev/null 2>&1 || status=$?
((status != 0)) || problem "expected a non-zero exit status on a root without src/"

if ((failed)); then
  echo "check_layers_test: FAILED ($script); its output on the fixture was:" >&2
  echo "$out" >&2
  exit 1
fi
echo "check_layers_test: ok: ${#planted[@]} planted violations reported ($reported lines)," \
  "${#allowed[@]} clean includes not reported, clean tree ok ($script)"
