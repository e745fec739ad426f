#!/usr/bin/env bash
# clang-tidy over the project's own sources, using the compile commands of a
# configured build directory.   scripts/lint.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cd "$root"
if [[ ! -f $build/compile_commands.json ]]; then
  echo "lint: $build/compile_commands.json is missing; run 'make build' first" >&2
  exit 2
fi
mapfile -t files < <(find src examples -type f -name '*.cc' | sort)
((${#files[@]})) || exit 0
# Generated headers must exist before clang-tidy parses files that use them.
cmake --build "$build" --target quorate_proto quorate_grpc_proto >/dev/null
status=0
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet --warnings-as-errors='*' || status=$?
if ((status == 0)); then echo "lint: ${#files[@]} files ok"; fi
exit $status
