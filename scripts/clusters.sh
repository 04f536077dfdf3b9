# Shared by the scripts that measure dslab against etcd 3.4: installs
# etcd if missing, builds dslab, and starts three-member clusters of each
# on 127.0.0.1 (`start_etcd`, `start_dslab`, `stop_all`). Sourced, not run.

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

