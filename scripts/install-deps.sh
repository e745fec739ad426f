#!/usr/bin/env bash
# Installs every Debian 12 package that Quorate's build, tests, benchmarks,
# demo and chaos suite need. Idempotent: when everything is present it prints
# nothing and exits 0 without touching apt. `apt-get update` runs only when a
# package is missing. Called by `make build`, `make test`, `make demo`, ...
set -euo pipefail

packages=(
  # Toolchain and build.
  build-essential cmake ninja-build pkg-config ccache git
  # Libraries (CMake config packages, and protobuf through FindProtobuf).
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libboost-dev libssl-dev
  # The fence adapters' databases (quorate::fence_sqlite,
  # quorate::fence_postgres), and a PostgreSQL server for their tests (each
  # test starts a private one; the package's own is never started).
  libsqlite3-dev libpq-dev postgresql
  # The email example (examples/email/): libcurl's SMTP client for its
  # outbound mail, and swaks and Python's smtplib, the other SMTP clients
  # its tests send with.
  libcurl4-openssl-dev swaks python3
  # The members' dashboard (/ui) is tested in headless Chromium.
  chromium
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Sanitizers, fuzzing, formatting, linting, coverage.
  clang clang-14 libclang-rt-14-dev lld clang-format clang-tidy gcovr
  # Demo, chaos suite and admin checks.
  iproute2 nftables faketime openssl curl procps
  # Side-by-side comparison benchmarks.
  etcd-server etcd-client
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root (sudo $0) or install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package maintainer scripts must not start daemons (etcd) on this machine:
# tests start their own instances on loopback with port 0 or free ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { if ((created_policy)); then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
