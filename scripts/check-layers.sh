#!/usr/bin/env bash
# Enforces the layering of docs/design.md.   scripts/check-layers.sh [ROOT]
#
# Layers, bottom to top:
#   wire       generated protobuf/gRPC headers ("wire/raft.pb.h",
#              "wire/peer.grpc.pb.h", ...; sources in proto/wire/)
#   util raft storage transport node coord guard admin api chaos cmd
#              (the folders under src/)
# Public headers live in include/quorate/ and are included as "quorate/X.h".
#
# Every #include of every .h/.cc file under src/<layer>/ and include/quorate/
# is checked; a project path ("wire/...", "quorate/...", "<layer>/...", also
# reached through "../" or a leading "src/" or "include/") is checked the same
# whether written with quotes or angle brackets. Rules:
#  1. Layer order: a file in src/<layer>/ includes only its own layer and the
#     layers below it ("wire" is below every src/ layer, subject to 3 and 4).
#     A first path component that is not a layer name is not checked here.
#  2. The public API: inside src/, only api (which implements it), chaos and
#     cmd (its clients) may include "quorate/...", and only a header that
#     exists as include/quorate/... in the checked tree (generated headers
#     are "wire/...", never "quorate/...").
#  3. src/util/ includes no generated header ("wire/...", any .pb.h) and
#     nothing from gRPC, protobuf, Asio or Boost.
#  4. gRPC (<grpcpp/...>, <grpc++/...>, <grpc/...>, "wire/*.grpc.pb.h") is
#     included only from transport and the layers above it: not from util,
#     raft or storage.
#  5. The consensus core (src/raft/) includes nothing that does I/O, reads a
#     clock, starts a thread or draws its own randomness: no <thread>,
#     <mutex>, <chrono>, <random>, <fstream>, <iostream>, <cstdio>,
#     <filesystem>, <unistd.h>, <sys/...>, <grpcpp/...>, <boost/...> and the
#     like, and none of "absl/time/...", "absl/synchronization/...",
#     "absl/random/...", "util/clock.h", "util/mutex.h", "util/thread_name.h",
#     "util/serial_executor.h", "util/log_time.h" (storage and transport are
#     already excluded by rule 1).
#  6. Public headers (include/quorate/) include no generated header
#     ("wire/...", any .pb.h), nothing from gRPC, protobuf, Asio or Boost, and
#     no internal header: their quoted includes are only "quorate/..." (that
#     exist in include/quorate/) and "absl/...".
#
# Prints every violation as file:line: message on stderr and exits 1 if there
# is any (one message per include line: the first rule it breaks); otherwise
# prints "check-layers: ok". Exits 2 if ROOT has no src/ folder.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
if [[ ! -d src ]]; then
  echo "check-layers: no src/ folder under $root" >&2
  exit 2
fi

# Bottom to top. A layer may include itself and any layer to its left.
layers=(util raft storage transport node coord guard admin api chaos cmd)
declare -A rank
for i in "${!layers[@]}"; do rank[${layers[$i]}]=$i; done
rank[wire]=-1

failures=0
fail() {
  echo "$1: $2" >&2
  failures=$((failures + 1))
}

sources() {
  [[ -d $1 ]] || return 0
  find "$1" -type f \( -name '*.h' -o -name '*.hh' -o -name '*.hpp' -o -name '*.inc' \
    -o -name '*.cc' -o -name '*.cpp' -o -name '*.cxx' \) | LC_ALL=C sort
}

# Calls check_include FILE LINE DELIM PATH TEXT for every #include of FILE,
# where DELIM is '"' or '<' and PATH is the included path, normalized: a
# quoted "./" or "../" path is resolved against FILE's folder, and a leading
# "src/" or "include/" is dropped, so "../node/node.h" and "src/node/node.h"
# both become "node/node.h".
for_each_include() {
  local file=$1 check=$2 line text delim path
  local re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^>"]*)[>"]'
  while IFS=: read -r line text; do
    text=${text%$'\r'}
    [[ $text =~ $re ]] || continue
    delim=${BASH_REMATCH[1]}
    path=${BASH_REMATCH[2]}
    if [[ $delim == '"' && ($path == ./* || $path == ../*) ]]; then
      path=$(realpath -m --relative-to=. "$(dirname "$file")/$path")
    fi
    case $path in
      src/*) path=${path#src/} ;;
      include/*) path=${path#include/} ;;
    esac
    "$check" "$file" "$line" "$delim" "$path" "$text"
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$file" || true)
}

# Header groups, as extended regular expressions on the normalized path.
grpc_re='^(grpcpp|grpc\+\+|grpc)/|\.grpc\.pb\.h$'
impl_re='^(wire|grpcpp|grpc\+\+|grpc|google/protobuf|boost|asio)/|^asio\.hpp$|\.pb\.h$'
core_angle_re='^(thread|mutex|shared_mutex|condition_variable|future|atomic|semaphore|latch|barrier|stop_token|chrono|ctime|time\.h|random|fstream|iostream|cstdio|stdio\.h|filesystem|unistd\.h|fcntl\.h|pthread\.h|sys/.*|grpcpp/.*|grpc/.*|boost/.*|asio/.*|asio\.hpp)$'
core_quoted_re='^absl/(time|synchronization|random)/|^util/(clock|mutex|thread_name|serial_executor|log_time)\.h$'

# Rules 1-5, for a file in src/$layer/.
check_src() {
  local file=$1 line=$2 delim=$3 path=$4 text=$5
  local top=${path%%/*}
  [[ $path == */* ]] || top=
  local where="$file:$line"

  # 1. Layer order.
  if [[ -n $top && -n ${rank[$top]+x} ]] && ((rank[$top] > rank[$layer])); then
    fail "$where" "layer '$layer' must not include '$top' (a layer above it): $text"
    return
  fi
  # 2. The public API.
  if [[ $top == quorate ]]; then
    case $layer in
      api | chaos | cmd)
        if [[ ! -f include/$path ]]; then
          fail "$where" "no public header include/$path (generated headers are \"wire/...\"): $text"
          return
        fi
        ;;
      *)
        fail "$where" "layer '$layer' must not include the public API (only api, chaos and cmd may): $text"
        return
        ;;
    esac
  fi
  # 3. util: no generated header, gRPC, protobuf, Asio or Boost.
  if [[ $layer == util && $path =~ $impl_re ]]; then
    fail "$where" "util must not include generated, gRPC, protobuf, Asio or Boost headers: $text"
    return
  fi
  # 4. gRPC only from transport up.
  if ((rank[$layer] < rank[transport])) && [[ $path =~ $grpc_re ]]; then
    fail "$where" "layer '$layer' must not include gRPC (only transport and above may): $text"
    return
  fi
  # 5. The consensus core: no I/O, clocks, threads or own randomness.
  if [[ $layer == raft ]]; then
    if [[ $delim == '<' && $path =~ $core_angle_re ]] || [[ $path =~ $core_quoted_re ]]; then
      fail "$where" "the consensus core must not do I/O, read clocks, use threads or its own randomness: $text"
      return
    fi
  fi
}

# Rule 6, for a public header.
check_public() {
  local file=$1 line=$2 delim=$3 path=$4 text=$5
  local top=${path%%/*}
  [[ $path == */* ]] || top=
  local where="$file:$line"

  if [[ $top == wire ]]; then
    fail "$where" "public header includes a generated header: $text"
  elif [[ $path =~ $impl_re || $path =~ (^|/)grpc ]]; then
    fail "$where" "public header exposes an implementation library: $text"
  elif [[ $top == quorate && ! -f include/$path ]]; then
    fail "$where" "public header includes a missing public header include/$path: $text"
  elif [[ $delim == '"' && $top != quorate && $top != absl ]] ||
    [[ -n $top && -n ${rank[$top]+x} ]]; then
    fail "$where" "public header includes a non-public header: $text"
  fi
}

for layer in "${layers[@]}"; do
  while IFS= read -r file; do
    for_each_include "$file" check_src
  done < <(sources "src/$layer")
done

while IFS= read -r file; do
  for_each_include "$file" check_public
done < <(sources include/quorate)

if ((failures > 0)); then
  echo "check-layers: $failures violation(s)" >&2
  exit 1
fi
echo "check-layers: ok"
