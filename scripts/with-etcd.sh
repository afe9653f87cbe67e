#!/usr/bin/env bash
# with-etcd.sh COMMAND...: run COMMAND with a single-member etcd on loopback
# (Debian's etcd-server), its endpoint in KAYO_TEST_ETCD_ENDPOINTS, then stop
# that etcd by its PID. Without an etcd binary it skips, unless CI=true.
set -euo pipefail
bin=${KAYO_ETCD_BIN:-$(command -v etcd || true)}
if [ -z "$bin" ]; then
  if [ "${CI:-}" = true ]; then
    echo "with-etcd: no etcd binary (install Debian's etcd-server)" >&2
    exit 1
  fi
  echo "with-etcd: no etcd binary; skipping: $*" >&2
  exit 0
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
dir=$(mktemp -d)
client=$(free_port)
peer=$(free_port)
"$bin" --name acc --data-dir "$dir/data" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "acc=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$client/health" 2>/dev/null | grep -q '"health":"true"'; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { cat "$dir/etcd.log" >&2; echo "with-etcd: etcd exited" >&2; exit 1; }
  sleep 0.1
done
echo "with-etcd: etcd $("$bin" --version | head -1 | awk '{print $3}') on http://127.0.0.1:$client (pid $pid)"
KAYO_TEST_ETCD_ENDPOINTS="http://127.0.0.1:$client" "$@"
