#!/usr/bin/env bash
# Makes a CA and certificates for a Quorate cluster with mutual TLS
# (docs/operations.md, "Mutual TLS"), with the openssl command line.
#
#   scripts/make-certs.sh DIR --members n1,n2,n3 [--clients ops,app]
#                         [--hosts 10.0.0.1,db1.example] [--days 365]
#
# DIR gets ca.pem and ca.key (keep the key offline), and NAME.pem and
# NAME.key for each member and client. A member's certificate names it with
# the URI SAN quorate:member:NAME, which is what lets it open peer streams
# as that member and no other; a client's names it quorate:client:NAME,
# which opens no peer stream. Every certificate also carries the --hosts
# (IP addresses or DNS names, 127.0.0.1 and localhost by default) that
# clients dial. An existing CA in DIR is reused, so more certificates can
# be added later.
set -euo pipefail

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
dir=$1
shift
members="" clients="" hosts="127.0.0.1,localhost" days=365
while [[ $# -gt 0 ]]; do
  case $1 in
    --members) members=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n $members || -n $clients ]] || usage
for name in ${members//,/ } ${clients//,/ }; do
  if ! [[ $name =~ ^[a-z0-9-]{1,32}$ ]]; then
    echo "make-certs: '$name' is not a name of [a-z0-9-]{1,32}" >&2
    exit 2
  fi
done

mkdir -p "$dir"
cd "$dir"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days "$days" \
    -subj /CN=quorate-ca -keyout ca.key -out ca.pem 2>/dev/null
  chmod 600 ca.key
fi

san_hosts=""
for h in ${hosts//,/ }; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then
    san_hosts+="IP:$h,"
  else
    san_hosts+="DNS:$h,"
  fi
done

issue() {  # NAME URI
  local name=$1 uri=$2
  printf 'subjectAltName=%sURI:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$san_hosts" "$uri" >"$name.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days "$days" -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  chmod 600 "$name.key"
  rm -f "$name.csr" "$name.ext"
  echo "$dir/$name.pem ($uri)"
}

for m in ${members//,/ }; do issue "$m" "quorate:member:$m"; done
for c in ${clients//,/ }; do issue "$c" "quorate:client:$c"; done
