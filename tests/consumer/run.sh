#!/usr/bin/env bash
# Builds the Debian package from BUILD_DIR (`make package`: CPack), checks
# what it holds (the programs, the systemd unit and its conffile, the
# postinst, the --help texts), unpacks it with dpkg-deb -x into a scratch
# root and runs quorate-node from there; then builds and runs the consumer
# project against the unpacked /usr twice: with find_package(quorate
# CONFIG REQUIRED) and with pkg-config. Any mistake in the package or the
# export (a missing header, target, dependency or path) fails here. Then
# it builds examples/minimal_member the same way and runs it: a member
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
root=$work/root
prefix=$root/usr
fail() {
  echo "package: $*" >&2
  exit 1
}

echo "== cpack (make package)"
cpack --config "$build/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log" 2>&1 || {
  cat "$work/cpack.log"
  exit 1
}
deb=$(find "$work/pkg" -maxdepth 1 -name 'quorate_*.deb')
[[ -f $deb ]] || fail "cpack made no quorate_*.deb"
[[ $(dpkg-deb -f "$deb" Package) == quorate ]] || fail "not named quorate"
[[ $(dpkg-deb -f "$deb" Version) == "$version" ]] ||
  fail "version $(dpkg-deb -f "$deb" Version), expected $version"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser libgrpc++-dev libc6; do
  [[ $depends == *"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
mkdir -p "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/quorate/quorate-node.conf "$work/control/conffiles" ||
  fail "the configuration file is not a conffile"
grep -q "adduser --system" "$work/control/postinst" ||
  fail "the postinst makes no user for the service"
grep -q "systemctl stop quorate-node" "$work/control/prerm" ||
  fail "the prerm does not stop the member on removal"
[[ -x $work/control/postrm ]] || fail "no postrm"

echo "== dpkg-deb -x"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/quorate-node usr/bin/quoratectl usr/bin/quorate-chaos; do
  [[ -x $root/$f ]] || fail "no /$f"
done
for f in quorate-node quoratectl quorate-chaos; do
  [[ -s $root/usr/share/doc/quorate/$f.txt ]] || fail "no help text for $f"
done
unit=$root/lib/systemd/system/quorate-node.service
conf=$root/etc/quorate/quorate-node.conf
[[ -f $unit && -f $conf ]] || fail "no systemd unit or no configuration file"
# The unit starts the packaged program with the configuration's flags.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $exec_start == '/usr/bin/quorate-node $QUORATE_NODE_FLAGS' ]] ||
  fail "ExecStart=$exec_start"
grep -qx 'EnvironmentFile=/etc/quorate/quorate-node.conf' "$unit" ||
  fail "the unit does not read /etc/quorate/quorate-node.conf"
grep -qx 'RestartPreventExitStatus=3' "$unit" ||
  fail "the unit would restart into a corrupt data directory"
help=$("$root/usr/bin/quorate-node" --help)
[[ $help == *--data_dir* ]] || fail "quorate-node --help from the package"
[[ $("$root/usr/bin/quorate-node" --version) == "quorate-node $version" ]] ||
  fail "quorate-node --version from the package"
# As the unit runs it with the shipped configuration (no flags yet): a
# usage error, exit 2 (the unit tries 5 times a minute, then stays failed).
(
  # shellcheck disable=SC1090
  source "$conf"
  # shellcheck disable=SC2086
  "$root/usr/bin/quorate-node" $QUORATE_NODE_FLAGS >/dev/null 2>&1
) && rc=0 || rc=$?
[[ $rc == 2 ]] || fail "the shipped configuration: exit $rc, expected 2"

# `cmake --install --prefix` outside the package: the library and the
# programs, but not the unit or its configuration (their paths are the
# system's, so only the package has them).
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  exit 1
}
[[ -x $work/prefix/bin/quorate-node && -f $work/prefix/lib/pkgconfig/quorate.pc ]] ||
  fail "cmake --install --prefix installed no program or no pkg-config file"
if [[ -e $work/prefix/etc || -e $work/prefix/lib/systemd ]]; then
  fail "cmake --install --prefix installed the unit or its configuration"
fi

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
