#!/usr/bin/env bash
# clang-format over the project's own C++ code (not generated code).
#   scripts/format.sh          rewrite files in place
#   scripts/format.sh --check  list badly formatted files, exit 1 if any
set -euo pipefail
mode=fix
if [[ ${1:-} == --check ]]; then mode=check; shift; fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
mapfile -t files < <(find include src tests examples -type f \
  \( -name '*.h' -o -name '*.cc' \) -not -path '*/testdata/*' | sort)
((${#files[@]})) || exit 0
if [[ $mode == fix ]]; then
  clang-format -i --style=file "${files[@]}"
else
  clang-format --dry-run -Werror --style=file "${files[@]}"
  echo "format: ${#files[@]} files ok"
fi
