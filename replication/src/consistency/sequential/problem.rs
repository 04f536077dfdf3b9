//! A history prepared for the search: operations numbered densely,
//! each client's completed operations in program order, and the
//! unknown-outcome ones detached from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::consistency::history::{Command, History, Operation, Reply};
use crate::consistency::model::Model;
use crate::{Error, Result};

/// "No such number" in the `u32` tables.
pub(super) const NONE: u32 = u32::MAX;

/// A history prepared for the search: operations numbered densely,
/// grouped into per-client chains (program order) and detached
/// unknown-outcome operations.
pub(super) struct Problem<'a> {
    pub(super) model: Model,
    pub(super) ops: Vec<&'a Operation>,
    pub(super) key_of: Vec<u32>,
    pub(super) client_of: Vec<u32>,
    /// The operation's number among the unknown-outcome ones, or `NONE`.
    pub(super) unknown_of: Vec<u32>,
    /// Per client, its completed operations in program order.
    pub(super) chains: Vec<Vec<u32>>,
    /// Per unknown-outcome operation: (operation, how many of its
    /// client's completed operations precede it in program order).
    pub(super) unknowns: Vec<(u32, u32)>,
    pub(super) keys: Vec<Option<Arc<str>>>,
    pub(super) clients: Vec<u64>,
}

/// Reads and failed compare-and-sets never change the state, so one
/// that is legal now can be placed now: in any valid order containing
/// it, moving it forward to this point keeps every other reply legal.
pub(super) fn read_only(op: &Operation) -> bool {
    matches!(
        (&op.command, &op.reply),
        (Command::Get | Command::Read, Reply::Value(_))
            | (Command::Cas { .. }, Reply::Swapped(false))
    )
}

impl<'a> Problem<'a> {
    /// Refuses overlapping operations of one client: program order
    /// would be undefined.
    pub(super) fn new(history: &'a History, model: Model) -> Result<Self> {
        let count = history.operations.len();
        if u32::try_from(count).map_or(true, |n| n == NONE) {
            return Err(Error::TooMany {
                what: "operations",
                count,
                max: NONE as usize - 1,
            });
        }
        let mut by_client: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
        for op in &history.operations {
            by_client.entry(op.client).or_default().push(op);
        }
        let mut problem = Problem {
            model,
            ops: Vec::with_capacity(count),
            key_of: Vec::with_capacity(count),
            client_of: Vec::with_capacity(count),
            unknown_of: Vec::with_capacity(count),
            chains: Vec::with_capacity(by_client.len()),
            unknowns: Vec::new(),
            keys: Vec::new(),
            clients: Vec::with_capacity(by_client.len()),
        };
        let mut key_numbers: HashMap<Option<Arc<str>>, u32> = HashMap::new();
        for (client_number, (client, mut ops)) in by_client.into_iter().enumerate() {
            ops.sort_by_key(|op| (op.call, op.id));
            for pair in ops.windows(2) {
                // An unknown outcome detaches: the client moved on while
                // the request may still be in flight.
                if pair[0].reply != Reply::Unknown && pair[1].call < pair[0].ret {
                    return Err(Error::OverlappingClientOperations {
                        client,
                        first: pair[0].id,
                        second: pair[1].id,
                    });
                }
            }
            let mut chain = Vec::new();
            for op in ops {
                let unknown = op.reply == Reply::Unknown;
                if unknown && matches!(op.command, Command::Get | Command::Read) {
                    continue; // Simplified: a read nobody saw constrains nothing.
                }
                let key = match model {
                    Model::EtcdRegister => None,
                    Model::Kv | Model::Register => op.key.clone(),
                };
                let next_key = problem.keys.len() as u32;
                let key_number = *key_numbers.entry(key.clone()).or_insert_with(|| {
                    problem.keys.push(key);
                    next_key
                });
                let index = problem.ops.len() as u32;
                problem.ops.push(op);
                problem.key_of.push(key_number);
                problem.client_of.push(client_number as u32);
                if unknown {
                    problem.unknown_of.push(problem.unknowns.len() as u32);
                    problem.unknowns.push((index, chain.len() as u32));
                } else {
                    problem.unknown_of.push(NONE);
                    chain.push(index);
                }
            }
            problem.chains.push(chain);
            problem.clients.push(client);
        }
        Ok(problem)
    }
}
