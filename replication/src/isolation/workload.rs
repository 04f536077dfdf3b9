//! A seeded concurrent workload: several processes, each running one
//! transaction at a time, their micro-ops interleaved by a seeded
//! scheduler rather than OS threads, recorded as a list-append history.
//!
//! Each transaction touches 1..=`max_keys_per_txn` distinct keys; per key
//! it reads, appends, or reads then appends (read-modify-write, where
//! lost updates and write skew live). A key is read at most once and
//! never after its append, so a store's reads can only be judged by the
//! isolation level, not tripped over by non-repeatable reads, which
//! Elle would call `internal`.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::core::{Key, TransactionalStore, TxnHandle};
use crate::consistency::transactional::history::{
    DataModel, KeyId, MicroOp, Outcome, Txn, TxnHistory,
};

/// How much load, over how many keys, from which seed.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub transactions: usize,
    pub processes: usize,
    /// Keys in play at once; fewer keys, more conflicts.
    pub active_keys: usize,
    pub max_keys_per_txn: usize,
    /// A key is retired after this many appends, keeping reads short.
    pub max_appends_per_key: usize,
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            transactions: 200,
            processes: 4,
            active_keys: 3,
            max_keys_per_txn: 3,
            max_appends_per_key: 16,
            seed: 0,
        }
    }
}

/// One planned micro-op.
#[derive(Clone, Copy, Debug)]
enum Step {
    Read(Key),
    Append(Key, i64),
}

/// A process's transaction in flight.
#[derive(Debug)]
struct Running {
    index: usize,
    handle: Option<TxnHandle>,
    steps: Vec<Step>,
    next: usize,
}

struct Planner {
    rng: SmallRng,
    active: Vec<Key>,
    appends: HashMap<Key, usize>,
    next_key: Key,
    next_element: i64,
    max_appends: usize,
    max_keys: usize,
}

impl Planner {
    fn plan(&mut self) -> Vec<Step> {
        let touch = self
            .rng
            .random_range(1..=self.max_keys.min(self.active.len()).max(1));
        let mut slots: Vec<usize> = (0..self.active.len()).collect();
        let mut steps = Vec::new();
        for _ in 0..touch {
            let pick = self.rng.random_range(0..slots.len());
            let slot = slots.swap_remove(pick);
            let key = self.active[slot];
            // 0: read, 1: append, 2: read then append.
            let kind = self.rng.random_range(0..3u8);
            if kind != 1 {
                steps.push(Step::Read(key));
            }
            if kind != 0 {
                self.next_element += 1;
                steps.push(Step::Append(key, self.next_element));
                let count = self.appends.entry(key).or_insert(0);
                *count += 1;
                if *count >= self.max_appends {
                    // Retired keys stay readable by transactions already
                    // holding them; new plans use a fresh key.
                    self.active[slot] = self.next_key;
                    self.next_key += 1;
                }
            }
        }
        steps
    }
}

/// Runs `config.transactions` transactions against `store` and returns
/// what the clients saw. Times are scheduler steps.
pub fn run_workload(store: &mut dyn TransactionalStore, config: &WorkloadConfig) -> TxnHistory {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let active_keys = config.active_keys.max(1);
    let mut planner = Planner {
        rng: SmallRng::seed_from_u64(config.seed ^ 0x9e37_79b9_7f4a_7c15),
        active: (0..active_keys as Key).collect(),
        appends: HashMap::new(),
        next_key: active_keys as Key,
        next_element: 0,
        max_appends: config.max_appends_per_key.max(1),
        max_keys: config.max_keys_per_txn.max(1),
    };
    let mut history = TxnHistory::new(DataModel::ListAppend);
    let mut key_ids: HashMap<Key, KeyId> = HashMap::new();
    let mut key_id = |history: &mut TxnHistory, key: Key| {
        *key_ids.entry(key).or_insert_with(|| {
            history.keys.push(key.to_string());
            KeyId(history.keys.len() as u32 - 1)
        })
    };
    let processes = config.processes.max(1);
    let mut slots: Vec<Option<Running>> = (0..processes).map(|_| None).collect();
    let mut started = 0usize;
    let mut time = 0u64;
    loop {
        for (process, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && started < config.transactions {
                history.txns.push(Txn {
                    id: started as u64,
                    process: process as u64,
                    outcome: Outcome::Info,
                    ops: Vec::new(),
                    call: None,
                    ret: None,
                    line: 0,
                });
                *slot = Some(Running {
                    index: started,
                    handle: None,
                    steps: planner.plan(),
                    next: 0,
                });
                started += 1;
            }
        }
        let busy: Vec<usize> = (0..processes).filter(|p| slots[*p].is_some()).collect();
        if busy.is_empty() {
            break;
        }
        let process = busy[rng.random_range(0..busy.len())];
        time += 1;
        let Some(running) = slots[process].as_mut() else {
            continue;
        };
        let txn_index = running.index;
        let Some(handle) = running.handle else {
            running.handle = Some(store.begin());
            history.txns[txn_index].call = Some(time);
            continue;
        };
        let outcome = match running.steps.get(running.next).copied() {
            Some(Step::Read(key)) => {
                running.next += 1;
                let id = key_id(&mut history, key);
                match store.read(handle, key) {
                    Ok(elements) => {
                        let op = MicroOp::ReadList {
                            key: id,
                            elements: Some(elements),
                        };
                        history.txns[txn_index].ops.push(op);
                        None
                    }
                    Err(_) => Some(Outcome::Fail),
                }
            }
            Some(Step::Append(key, element)) => {
                running.next += 1;
                let id = key_id(&mut history, key);
                history.txns[txn_index]
                    .ops
                    .push(MicroOp::Append { key: id, element });
                store
                    .append(handle, key, element)
                    .err()
                    .map(|_| Outcome::Fail)
            }
            None => Some(match store.commit(handle) {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Fail,
            }),
        };
        if let Some(outcome) = outcome {
            let txn = &mut history.txns[txn_index];
            txn.outcome = outcome;
            txn.ret = Some(time);
            slots[process] = None;
        }
    }
    history
}
