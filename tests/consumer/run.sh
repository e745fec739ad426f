#!/usr/bin/env bash
# Installs the build in BUILD_DIR into a fresh temporary prefix, then builds
# and runs the consumer project against it twice: with
# find_package(quorate CONFIG REQUIRED) and with pkg-config. Any mistake in
# the export (a missing header, target, dependency or path) fails here.
# Then it builds examples/minimal_member the same way and runs it: a member
# started through the installed public API elects itself; and it builds
# examples/email, the email example, as a user's project would.
#   run.sh BUILD_DIR CONSUMER_SOURCE_DIR EXPECTED_VERSION [EXAMPLES_DIR]
set -euo pipefail
build=$1
consumer=$2
version=$3
examples=${4:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/quorate-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "== install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || {
  cat "$work/install.log"
  exit 1
}

echo "== find_package(quorate CONFIG REQUIRED)"
cmake -S "$consumer" -B "$work/cmake-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_NO_SYSTEM_PACKAGE_REGISTRY=ON \
  >"$work/configure.log" 2>&1 || {
  cat "$work/configure.log"
  exit 1
}
cmake --build "$work/cmake-build" >"$work/build.log" 2>&1 || {
  cat "$work/build.log"
  exit 1
}
"$work/cmake-build/consumer" "$version"
"$work/cmake-build/fence_consumer"
"$work/cmake-build/fence_postgres_consumer"

echo "== pkg-config quorate"
pc_dir=$(dirname "$(find "$prefix" -name quorate.pc | head -n 1)")
export PKG_CONFIG_PATH=$pc_dir
pc_version=$(pkg-config --modversion quorate)
if [[ $pc_version != "$version" ]]; then
  echo "pkg-config reports version '$pc_version', expected '$version'" >&2
  exit 1
fi
# shellcheck disable=SC2046
c++ -std=c++17 -Wall -Werror "$consumer/main.cc" -o "$work/pc-consumer" \
  $(pkg-config --cflags --libs quorate)
"$work/pc-consumer" "$version"
if [[ -n $examples ]]; then
  echo "== examples/minimal_member"
  cmake -S "$examples/minimal_member" -B "$work/example-build" -G Ninja \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/example-configure.log" 2>&1 || {
    cat "$work/example-configure.log"
    exit 1
  }
  cmake --build "$work/example-build" >"$work/example-build.log" 2>&1 || {
    cat "$work/example-build.log"
    exit 1
  }
  "$work/example-build/minimal_member" "$work/example-data"
  echo "== examples/email"
  cmake -S "$examples/email" -B "$work/email-build" -G Ninja \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/email-configure.log" 2>&1 || {
    cat "$work/email-configure.log"
    exit 1
  }
  cmake --build "$work/email-build" >"$work/email-build.log" 2>&1 || {
    cat "$work/email-build.log"
    exit 1
  }
  for tool in front processor sink audit loadgen; do
    [[ -x $work/email-build/email-$tool ]] || {
      echo "examples/email built no email-$tool" >&2
      exit 1
    }
  done
  # A store made by the installed build's binaries: the audit of an empty
  # one passes.
  "$work/email-build/email-audit" --db="$work/empty.db" >/dev/null 2>&1 &&
    { echo "email-audit passed a database without the tables" >&2; exit 1; }
fi
echo "consumer: ok"
