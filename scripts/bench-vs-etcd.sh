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

if ! command -v etcd >/dev/null; then
    echo "installing Debian's etcd-server…" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
cargo build --release --quiet
DSLAB=target/release/dslab

work=$(mktemp -d)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

wait_healthy() {
    for _ in $(seq 1 100); do
        if "$DSLAB" kv --endpoints "$1" status >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "the cluster at $1 did not come up; logs in $work" >&2
    exit 1
}

start_etcd() {
    local cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$work/etcd$i" \
            --listen-client-urls "http://127.0.0.1:${i}2379" \
            --advertise-client-urls "http://127.0.0.1:${i}2379" \
            --listen-peer-urls "http://127.0.0.1:${i}2380" \
            --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token dslab-bench >"$work/etcd$i.log" 2>&1 &
        pids+=($!)
    done
    wait_healthy "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379"
}

start_dslab() {
    local peers=(--peer 1=127.0.0.1:12479 --peer 2=127.0.0.1:22479 --peer 3=127.0.0.1:32479)
    for i in 1 2 3; do
        "$DSLAB" serve raft-kv --id "$i" --listen "127.0.0.1:${i}2479" "${peers[@]}" \
            --data-dir "$work/dslab$i" >"$work/dslab$i.log" 2>&1 &
        pids+=($!)
    done
    wait_healthy "127.0.0.1:12479,127.0.0.1:22479,127.0.0.1:32479"
}

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
