#!/usr/bin/env bash
# Coordination on dslab's Raft KV against etcd 3.4, like for like: three
# members of each on 127.0.0.1, every member fsyncing, the same client
# (`dslab bench lock`, `dslab bench watch`: etcd's lock recipe, one watch
# stream per watcher). Lock cycles at 4 and 32 contenders; watch delivery
# with 1 writer and 1 watcher, and with 8 writers and 8 watchers. Prints
# each run and the ratio table (dslab ÷ etcd).
#
#   scripts/bench-coordination-vs-etcd.sh              # 10 s per run
#   DURATION=30s scripts/bench-coordination-vs-etcd.sh
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

# run SYSTEM ENDPOINTS NAME ARGS…
run() {
    local system=$1 endpoints=$2 name=$3
    shift 3
    echo "== $system, $name" >&2
    "$DSLAB" bench "$@" --endpoints "$endpoints" --duration "$DURATION" --json \
        | tee /dev/stderr | tail -n 1 >"$work/$system-$name.json"
}

runs() {
    run "$1" "$2" lock-4 lock --clients 4
    run "$1" "$2" lock-32 lock --clients 32
    run "$1" "$2" watch-1 watch --clients 1 --watchers 1
    run "$1" "$2" watch-8 watch --clients 8 --watchers 8
}

start_etcd
runs etcd "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379"
stop_all
start_dslab
runs dslab "127.0.0.1:12479,127.0.0.1:22479,127.0.0.1:32479"
stop_all

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def load(system, name):
    with open(f"{work}/{system}-{name}.json") as f:
        return json.load(f)
print()
print(f"{'run':>8}  {'etcd /s':>8}  {'dslab /s':>8}  {'ratio':>6}  "
      f"{'p50 etcd/dslab':>16}  {'p99 etcd/dslab':>16}  {'p99 ratio':>9}  errors  anomalies")
for name in ("lock-4", "lock-32", "watch-1", "watch-8"):
    e, d = load("etcd", name), load("dslab", name)
    pair = lambda key: f"{e[key]:.2f}/{d[key]:.2f}ms"
    print(f"{name:>8}  {e['per_s']:>8.0f}  {d['per_s']:>8.0f}  {d['per_s'] / e['per_s']:>5.2f}x  "
          f"{pair('p50_ms'):>16}  {pair('p99_ms'):>16}  {d['p99_ms'] / e['p99_ms']:>8.2f}x  "
          f"{e['errors']}/{d['errors']}  {e['anomalies']}/{d['anomalies']}")
PY
