//! CrdtReplica's LWW registers as a register history, judged by the
//! causal checker.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::object::Kind;
use super::tests::{REPLICAS, Setup, client, cluster, seeds};
use super::{AntiEntropy, MessageFaults};
use crate::consistency::causal::{CausalVerdict, Variant, check_causal};
use crate::consistency::{Command, Datum, History, Operation, Reply};
use crate::proto::update_request::Operation as Wire;

/// Four clients, each attached to its own replica, assign unique values
/// to three LWW registers and read them, one operation at a time, while
/// gossip spreads the writes; the recorded history goes to the checker.
fn record(seed: u64, setup: Setup) -> History {
    let history = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut simulation = cluster(seed, setup);
    let recorded = history.clone();
    simulation.client(async move {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut clients: Vec<_> = (1..=4).map(client).collect();
        let started = tokio::time::Instant::now();
        let now = move || started.elapsed().as_micros() as u64;
        let mut written = [0u64; 4];
        for id in 0..120 {
            let c = rng.random_range(0..4);
            let key = format!("r{}", rng.random_range(0..3));
            let call = now();
            let (command, reply) = if rng.random_bool(0.4) {
                written[c] += 1;
                let value = format!("c{c}-{}", written[c]);
                clients[c]
                    .update(Kind::LwwRegister, &key, Wire::Assign(value.clone()))
                    .await?;
                (Command::Write(Datum::text(&value)), Reply::Ok)
            } else {
                let value = clients[c].read(Kind::LwwRegister, &key).await?.value;
                // A register never assigned reads as "": the initial value.
                let datum = if value.is_empty() {
                    Datum::Absent
                } else {
                    Datum::text(&value)
                };
                (Command::Read, Reply::Value(datum))
            };
            recorded.borrow_mut().push(Operation {
                id,
                client: c as u64,
                key: Some(key.as_str().into()),
                command,
                reply,
                call,
                ret: now(),
            });
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..80))).await;
        }
        Ok(())
    });
    if let Err(err) = simulation.run() {
        panic!("seed {seed}: {err}");
    }
    let operations = history.borrow().clone();
    History::new(operations)
}

/// Reads that returned another client's write, and reads that returned
/// nothing although some write to their key had already returned: the
/// history exercises replication, not one replica.
fn replicated_and_stale_reads(history: &History) -> (usize, usize) {
    let mut replicated = 0;
    let mut stale = 0;
    for read in &history.operations {
        let Reply::Value(seen) = &read.reply else {
            continue;
        };
        if !matches!(read.command, Command::Read) {
            continue;
        }
        let writer = history
            .operations
            .iter()
            .find(|w| w.key == read.key && matches!(&w.command, Command::Write(v) if v == seen));
        if writer.is_some_and(|w| w.client != read.client) {
            replicated += 1;
        }
        let written_before = history.operations.iter().any(|w| {
            w.key == read.key && matches!(w.command, Command::Write(_)) && w.ret < read.call
        });
        if *seen == Datum::Absent && written_before {
            stale += 1;
        }
    }
    (replicated, stale)
}

/// Episodes 19 and 22. Gossip that drops 20%, duplicates 10% and
/// reorders 20% of its messages: every history the CRDT replicas produce
/// is still causally consistent and convergent (CC and CCv) for every
/// seed, while most reads return other replicas' writes and some reads
/// miss a write that had already returned (it was not linearizable).
#[test]
fn crdt_replica_lww_registers_are_causally_consistent() {
    let setup = Setup {
        mode: AntiEntropy::Delta,
        faults: MessageFaults {
            drop: 0.2,
            duplicate: 0.1,
            reorder: 0.2,
        },
    };
    const { assert!(REPLICAS >= 4, "one replica per client") };
    let (mut replicated, mut stale) = (0, 0);
    for seed in seeds() {
        let history = record(seed, setup);
        let counts = replicated_and_stale_reads(&history);
        replicated += counts.0;
        stale += counts.1;
        for variant in [Variant::Cc, Variant::Ccv] {
            let report = check_causal(&history, variant, Some(Duration::from_secs(10)))
                .expect("unique values make a differentiated history");
            assert_eq!(
                report.verdict,
                CausalVerdict::Causal,
                "seed {seed} {variant}:\n{}\n{}",
                report.explain(),
                history.to_jsonl()
            );
        }
    }
    assert!(
        replicated > 0 && stale > 0,
        "replicated {replicated}, stale {stale}"
    );
}
