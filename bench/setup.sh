#!/usr/bin/env bash
# Installs the peers the YCSB benchmark compares kv with (`npm run bench`), when they are missing:
# Debian's redis-server and etcd-server. Uses sudo only when not root. The npm clients (ioredis, etcd3) are in
# bench/package.json: `npm run bench` installs them. A peer that stays missing is skipped by the benchmark, with a line saying so.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || missing+=(etcd-server)

if [ ${#missing[@]} -eq 0 ]; then
  echo "bench/setup.sh: redis-server and etcd are installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup.sh: no apt-get here; install ${missing[*]} by hand (the benchmark skips what is missing)" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    echo "bench/setup.sh: not root and no sudo; install ${missing[*]} by hand" >&2
    exit 1
  fi
fi

echo "bench/setup.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# No services started by the packages' scripts are needed: the benchmark starts its own servers on free ports.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]
echo "bench/setup.sh: done"
