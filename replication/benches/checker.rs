//! Checking time per history.
//!
//! For every conformance history (`replication/conformance/linearizability`,
//! whose manifest quotes how long Porcupine took on a machine of this
//! kind — a figure recorded with the data, not measured in this run) and
//! for generated histories of 10k operations over 10 keys by 10 clients:
//! the median of repeated runs, parsing excluded, as the manifest's
//! figures are.
//!
//! cargo bench -p replication --bench checker
//! cargo bench -p replication --bench checker -- --json [--only kv/c50-ok]
//!
//! With `--json`, stdout carries one line per conformance file and
//! nothing else — `{"file":"kv/c50-ok","ms":12.3,"ok":true,"runs":25}`
//! (`file` is the manifest's `name`, `ms` the median, `ok` whether it was
//! found linearizable) — the format `scripts/bench-checker-vs-porcupine.sh`
//! compares against Porcupine's; the table goes to stderr.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replication::consistency::{Command, Datum, History, Model, Operation, Reply, Verdict, check};

/// Median time of `check` over enough runs to fill ~300 ms (3 to 50
/// runs), whether it found the history linearizable, and the runs.
fn median_check(history: &History, model: Model) -> (Duration, bool, usize) {
    let mut times = Vec::new();
    let mut linearizable = false;
    let started = Instant::now();
    while times.len() < 3 || (times.len() < 50 && started.elapsed() < Duration::from_millis(300)) {
        let result = check(history, model, None).expect("valid history");
        linearizable = matches!(result.verdict, Verdict::Linearizable { .. });
        times.push(result.elapsed);
    }
    times.sort();
    (times[times.len() / 2], linearizable, times.len())
}

/// A linearizable history: `ops` operations on `keys` keys by `clients`
/// clients, each taking effect at a point inside its (overlapping) interval.
fn generated(ops: usize, keys: usize, clients: u64, seed: u64) -> History {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut values = vec![String::new(); keys];
    let mut operations = Vec::with_capacity(ops);
    let mut busy_until = vec![0u64; clients as usize];
    for id in 0..ops {
        let point = (id as u64) * 10;
        let client = rng.random_range(0..clients);
        let key = rng.random_range(0..keys);
        let call = point
            .saturating_sub(rng.random_range(0..40))
            .max(busy_until[client as usize]);
        let ret = point + rng.random_range(1..40);
        busy_until[client as usize] = ret + 1;
        let (command, reply) = match rng.random_range(0..3) {
            0 => (Command::Get, Reply::Value(Datum::text(&values[key]))),
            1 => {
                let value = format!("x{id}y");
                values[key] = value.clone();
                (Command::Put(Datum::text(&value)), Reply::Ok)
            }
            _ => {
                let value = format!("x{id}y");
                values[key].push_str(&value);
                (Command::Append(Datum::text(&value)), Reply::Ok)
            }
        };
        operations.push(Operation {
            id,
            client,
            key: Some(format!("k{key}").into()),
            command,
            reply,
            call: call.min(point),
            ret,
        });
    }
    History::new(operations)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1));
    // The table goes to stdout, or to stderr when stdout is for JSON.
    let table = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/linearizability");
    table(format!(
        "{:<16} {:>6} {:>12} {:>12} {:>8}",
        "history", "ops", "dslab", "porcupine*", "ratio"
    ));
    let mut worst: f64 = 0.0;
    {
        let manifest = std::fs::read_to_string(dir.join("manifest.json"))
            .expect("the vendored conformance data is present");
        let manifest: serde_json::Value =
            serde_json::from_str(&manifest).expect("manifest is JSON");
        for file in manifest["files"].as_array().expect("files") {
            let name = file["name"].as_str().expect("name");
            if only.is_some_and(|only| only != name) {
                continue;
            }
            let text = std::fs::read_to_string(dir.join(file["file"].as_str().expect("file")))
                .expect("readable");
            let history = History::from_jsonl(&text).expect("valid");
            let model = if file["model"] == "kv" {
                Model::Kv
            } else {
                Model::EtcdRegister
            };
            let (time, linearizable, runs) = median_check(&history, model);
            assert_eq!(
                linearizable,
                file["linearizable"].as_bool().expect("verdict"),
                "{name}"
            );
            let porcupine =
                Duration::from_secs_f64(file["porcupine_ms"].as_f64().expect("time") / 1e3);
            let ratio = time.as_secs_f64() / porcupine.as_secs_f64();
            worst = worst.max(ratio);
            table(format!(
                "{name:<16} {:>6} {:>12.3?} {:>12.3?} {:>7.2}×",
                history.operations.len(),
                time,
                porcupine,
                ratio
            ));
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": name,
                        "ms": time.as_secs_f64() * 1e3,
                        "ok": linearizable,
                        "runs": runs,
                    })
                );
            }
        }
        table(format!(
            "slowest relative to porcupine: {worst:.2}× its time"
        ));
        table(
            "* quoted from the manifest (Porcupine, Go 1.19), not measured in this run".to_owned(),
        );
    }
    if json || only.is_some() {
        return;
    }
    for seed in 1..=3 {
        let history = generated(10_000, 10, 10, seed);
        let (time, linearizable, _) = median_check(&history, Model::Kv);
        assert!(linearizable, "generated histories are linearizable");
        println!(
            "{:<16} {:>6} {:>12.3?}",
            format!("generated-{seed}"),
            10_000,
            time
        );
    }
}
