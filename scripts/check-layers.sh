#!/usr/bin/env bash
# Enforces the layering of docs/design.md:
#  1. A file in src/<layer>/ includes only its own layer and layers below it.
#  2. Public headers (include/quorate/) name no gRPC, protobuf, Asio or Boost
#     header and no internal header.
#  3. The consensus core (src/raft/) includes nothing that does I/O, reads a
#     clock, starts a thread or draws its own randomness.
# Prints every violation as file:line and exits 1 if there is any.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# Bottom to top. A layer may include itself and any layer to its left.
layers=(util raft storage transport node coord guard admin api chaos cmd)
declare -A rank
for i in "${!layers[@]}"; do rank[${layers[$i]}]=$i; done

failures=0
fail() {
  echo "$1: $2" >&2
  failures=$((failures + 1))
}

sources() { find "$@" -type f \( -name '*.h' -o -name '*.cc' \) 2>/dev/null | sort; }

# 1. Layer order.
for layer in "${layers[@]}"; do
  [[ -d src/$layer ]] || continue
  while IFS= read -r file; do
    while IFS=: read -r line text; do
      target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^/"]+)\/.*/\1/' <<<"$text")
      [[ -n ${rank[$target]+x} ]] || continue
      if ((rank[$target] > rank[$layer])); then
        fail "$file:$line" "layer '$layer' must not include '$target' (a layer above it): $text"
      fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(sources "src/$layer")
done

# 2. Public headers.
while IFS= read -r file; do
  while IFS=: read -r line text; do
    if [[ $text =~ \"([^\"]+)\" ]]; then
      inc=${BASH_REMATCH[1]}
      if [[ $inc != quorate/* && $inc != absl/* ]]; then
        fail "$file:$line" "public header includes a non-public header: $text"
      fi
    fi
    if [[ $text =~ (grpc|google/protobuf|\.pb\.h|boost/|asio) ]]; then
      fail "$file:$line" "public header exposes an implementation library: $text"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$file" || true)
done < <(sources include/quorate)

# 3. No I/O, clocks, threads or own randomness in the core.
forbidden='<(thread|mutex|shared_mutex|condition_variable|future|atomic|chrono|ctime|time\.h|random|fstream|iostream|cstdio|stdio\.h|filesystem|unistd\.h|fcntl\.h|sys/[^>]*|grpcpp/[^>]*|boost/[^>]*)>'
while IFS= read -r file; do
  while IFS=: read -r line text; do
    fail "$file:$line" "the consensus core must not do I/O, read clocks, use threads or its own randomness: $text"
  done < <(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*$forbidden" "$file" || true)
done < <(sources src/raft)

if ((failures > 0)); then
  echo "check-layers: $failures violation(s)" >&2
  exit 1
fi
echo "check-layers: ok"
