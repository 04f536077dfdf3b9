#!/usr/bin/env bash
# dslab's linearizability checker against Porcupine, per conformance
# history, in the same run: both check every file listed in
# replication/conformance/linearizability/manifest.json, parsing excluded,
# median of repeated runs; prints both columns and the ratio.
#
#   scripts/bench-checker-vs-porcupine.sh
#   PORCUPINE_BENCH=/path/to/porcupine-timer scripts/bench-checker-vs-porcupine.sh
#   ROUNDS=3 scripts/bench-checker-vs-porcupine.sh   # alternate 3 times, median of medians
#
# dslab's side is `cargo bench -p replication --bench checker -- --json`.
# Porcupine's side is a program YOU supply (Porcupine is Go, on no registry
# this project uses; this script neither fetches nor builds it): set
# PORCUPINE_BENCH to an executable that takes the conformance directory as
# its only argument and prints one JSON object per file on stdout:
#
#   {"file":"kv/c50-ok","ms":12.3,"ok":true}
#
# `file` is the manifest's `name`, `ms` the median checking time in
# milliseconds (parsing excluded), `ok` whether Porcupine found the history
# linearizable (checked against the manifest). Model it on Porcupine's own
# tests: its kv model (partitioned by key) and etcd model, the semantics in
# replication/conformance/README.md, timing porcupine.CheckOperations.
# Unset, the script prints dslab's figures and says Porcupine was skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=replication/conformance/linearizability
ROUNDS=${ROUNDS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building the checker bench..." >&2
cargo bench -p replication --bench checker --no-run >&2
for round in $(seq "$ROUNDS"); do
    echo "== round $round: dslab" >&2
    cargo bench -q -p replication --bench checker -- --json 2>/dev/null >"$work/dslab-$round.jsonl"
    if [ -n "${PORCUPINE_BENCH:-}" ]; then
        echo "== round $round: porcupine ($PORCUPINE_BENCH)" >&2
        "$PORCUPINE_BENCH" "$DIR" >"$work/porcupine-$round.jsonl"
    fi
done

python3 - "$work" "$ROUNDS" "$DIR/manifest.json" "${PORCUPINE_BENCH:+yes}" <<'PY'
import json, statistics, sys
work, rounds, manifest, porcupine = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "yes"
files = json.load(open(manifest))["files"]
def load(side):
    runs = {}
    for r in range(1, rounds + 1):
        for line in open(f"{work}/{side}-{r}.jsonl"):
            line = line.strip()
            if line:
                row = json.loads(line)
                runs.setdefault(row["file"], []).append(row)
    return runs
dslab = load("dslab")
theirs = load("porcupine") if porcupine else {}
failed = False
print(f"{'history':<16} {'ops':>5} {'dslab ms':>10} {'porcupine ms':>13} {'ratio':>7}")
total_d = total_p = 0.0
slower = []
for f in files:
    name, expected = f["name"], f["linearizable"]
    if name not in dslab:
        print(f"{name}: missing from dslab's output"); failed = True; continue
    d = statistics.median(r["ms"] for r in dslab[name])
    total_d += d
    if any(r["ok"] != expected for r in dslab[name]):
        print(f"{name}: dslab's verdict differs from the manifest"); failed = True
    if not porcupine:
        print(f"{name:<16} {f['ops']:>5} {d:>10.3f} {'skipped':>13} {'':>7}")
        continue
    if name not in theirs:
        print(f"{name}: missing from Porcupine's output"); failed = True; continue
    p = statistics.median(r["ms"] for r in theirs[name])
    total_p += p
    if any(r["ok"] != expected for r in theirs[name]):
        print(f"{name}: Porcupine's verdict differs from the manifest"); failed = True
    if d >= p:
        slower.append(name)
    print(f"{name:<16} {f['ops']:>5} {d:>10.3f} {p:>13.3f} {p / d:>6.2f}×")
if porcupine:
    print(f"{'total':<16} {'':>5} {total_d:>10.3f} {total_p:>13.3f} {total_p / total_d:>6.2f}×")
    print("ratio = Porcupine's time ÷ dslab's (above 1: dslab is faster)")
    print("dslab is faster on every file" if not slower else f"dslab is NOT faster on: {', '.join(slower)}")
else:
    print(f"{'total':<16} {'':>5} {total_d:>10.3f}")
    print("Porcupine skipped: set PORCUPINE_BENCH to compare in the same run (see the header)")
sys.exit(1 if failed else 0)
PY
