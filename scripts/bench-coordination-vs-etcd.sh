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

# shellcheck source=scripts/clusters.sh
source scripts/clusters.sh

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
