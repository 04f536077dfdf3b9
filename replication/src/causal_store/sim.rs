//! A seeded simulation of clients on a causal store: random reads and
//! writes, writes broadcast with random delays, every operation recorded
//! as a history for the checkers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Store, Update};
use crate::consistency::{Command, Datum, History, Operation, Reply};

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Clients, attached round-robin to the replicas.
    pub clients: usize,
    pub keys: usize,
    pub operations: usize,
    /// The share of operations that write.
    pub write_ratio: f64,
    /// A broadcast takes 1..=max_delay ticks to reach each replica, so
    /// messages overtake each other.
    pub max_delay: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            clients: 6,
            keys: 3,
            operations: 80,
            write_ratio: 0.4,
            max_delay: 12,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Run {
    pub history: History,
    /// Deliveries a full buffer refused (retried a tick later).
    pub refused: usize,
}

/// Runs `workload` on `store` with `seed`; one operation per tick, each
/// completing within its tick (call 2t, return 2t+1). Every value written
/// is unique (`c3-17`), so the history is differentiated. The run ends
/// once every message is delivered.
pub fn run(store: &mut impl Store, workload: Workload, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let replicas = store.replicas().max(1);
    // (arrival tick, send order) → (destination, update): ties leave in
    // the order they were sent.
    let mut network: BinaryHeap<Reverse<(u64, u64, usize, usize)>> = BinaryHeap::new();
    let mut in_flight: Vec<Update> = Vec::new();
    let mut operations = Vec::new();
    let mut written = vec![0u64; workload.clients];
    let mut refused = 0;
    let mut tick = 0u64;
    while operations.len() < workload.operations || !network.is_empty() {
        while let Some(Reverse((at, _, to, slot))) = network.peek().cloned() {
            if at > tick {
                break;
            }
            network.pop();
            if store.receive(to, in_flight[slot].clone()).is_err() {
                // The sender keeps a refused write and tries again.
                refused += 1;
                network.push(Reverse((tick + 1, in_flight.len() as u64, to, slot)));
            }
        }
        if operations.len() < workload.operations {
            let client = rng.random_range(0..workload.clients.max(1));
            let replica = client % replicas;
            let key = format!("k{}", rng.random_range(0..workload.keys.max(1)));
            let id = operations.len();
            let (command, reply) = if rng.random_bool(workload.write_ratio) {
                written[client] += 1;
                let value = format!("c{client}-{}", written[client]);
                let update = store.write(replica, &key, &value);
                let slot = in_flight.len();
                in_flight.push(update);
                for to in (0..replicas).filter(|&to| to != replica) {
                    let delay = rng.random_range(1..=workload.max_delay.max(1));
                    let order = (id * replicas + to) as u64;
                    network.push(Reverse((tick + delay, order, to, slot)));
                }
                (Command::Write(Datum::text(&value)), Reply::Ok)
            } else {
                let value = store
                    .read(replica, &key)
                    .map_or(Datum::Absent, |v| Datum::text(&v));
                (Command::Read, Reply::Value(value))
            };
            operations.push(Operation {
                id,
                client: client as u64,
                key: Some(key.as_str().into()),
                command,
                reply,
                call: 2 * tick,
                ret: 2 * tick + 1,
            });
        }
        tick += 1;
    }
    Run {
        history: History::new(operations),
        refused,
    }
}
