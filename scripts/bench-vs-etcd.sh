#!/usr/bin/env bash
# dslab's Raft KV against etcd 3.4, like for like: three members of each on
# 127.0.0.1, every member fsyncing its log, the same `dslab bench kv`
# client and workload (puts of 256-byte values over 10,000 keys, sent to
# the leader), at 1 client and at 64 clients on 8 connections. Prints
# each run and the ratio table (dslab ÷ etcd).
#
#   scripts/bench-vs-etcd.sh              # 10 s per run
#   DURATION=30s scripts/bench-vs-etcd.sh
#
# Installs Debian's etcd-server if `etcd` is missing (needs root or sudo).
set -euo pipefail

DURATION=${DURATION:-10s}
cd "$(dirname "$0")/.."

# shellcheck source=scripts/clusters.sh
source scripts/clusters.sh

# run SYSTEM ENDPOINTS CLIENTS CONNECTIONS
run() {
    echo "== $1, $3 client(s)" >&2
    "$DSLAB" bench kv --endpoints "$2" --clients "$3" --connections "$4" \
        --duration "$DURATION" --key-space 10000 --value-size 256 --put-ratio 1.0 \
        --json | tee /dev/stderr | tail -n 1 >"$work/$1-$3.json"
}

start_etcd
run etcd "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379" 1 1
run etcd "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379" 64 8
stop_all
start_dslab
run dslab "127.0.0.1:12479,127.0.0.1:22479,127.0.0.1:32479" 1 1
run dslab "127.0.0.1:12479,127.0.0.1:22479,127.0.0.1:32479" 64 8
stop_all

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def load(system, clients):
    with open(f"{work}/{system}-{clients}.json") as f:
        return json.load(f)
print()
print(f"{'clients':>7}  {'etcd ops/s':>10}  {'dslab ops/s':>11}  {'ratio':>6}  "
      f"{'p50 etcd/dslab':>16}  {'p99 etcd/dslab':>16}  {'p99 ratio':>9}  {'p99.9 etcd/dslab':>18}  {'max etcd/dslab':>18}  errors")
for clients in (1, 64):
    e, d = load("etcd", clients), load("dslab", clients)
    pair = lambda key: f"{e[key]:.2f}/{d[key]:.2f}ms"
    print(f"{clients:>7}  {e['throughput_ops_per_s']:>10.0f}  {d['throughput_ops_per_s']:>11.0f}  "
          f"{d['throughput_ops_per_s'] / e['throughput_ops_per_s']:>5.2f}x  "
          f"{pair('p50_ms'):>16}  {pair('p99_ms'):>16}  {d['p99_ms'] / e['p99_ms']:>8.2f}x  "
          f"{pair('p999_ms'):>18}  {pair('max_ms'):>18}  {e['errors']}/{d['errors']}")
PY
