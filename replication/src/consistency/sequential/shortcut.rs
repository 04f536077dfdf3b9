//! The shortcut down the hierarchy: linearizable ⇒ sequentially consistent.
//!
//! Linearizability *is* compositional, so its checker works key by key
//! and is fast. When it finds a linearization, each key's order plus
//! each client's program order usually merge into one order: a
//! sequential witness found without the global search. The merged order
//! is replayed before it is believed — when the merge fails (a cycle,
//! which touching operations can cause) or the replay does, the full
//! search decides, so the shortcut never changes a verdict.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::problem::{NONE, Problem};
use crate::consistency::checker::{Verdict, check as check_linearizable};
use crate::consistency::history::History;

impl Problem<'_> {
    /// A sequential witness (operation ids) merged from a linearization,
    /// if the history is linearizable and the merge replays.
    pub(super) fn witness_from_linearization(
        &self,
        history: &History,
        deadline: Option<Instant>,
    ) -> Option<Vec<usize>> {
        let budget = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let result = check_linearizable(history, self.model, budget).ok()?;
        let Verdict::Linearizable { witness } = result.verdict else {
            return None;
        };
        let number: HashMap<usize, u32> = (0..self.ops.len())
            .map(|i| (self.ops[i].id, i as u32))
            .collect();
        let n = self.ops.len();
        let mut successors: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut included = vec![false; n];
        for order in witness.values() {
            // Reads with unknown outcome are not in the problem: skipped.
            let order: Vec<u32> = order
                .iter()
                .filter_map(|id| number.get(id).copied())
                .collect();
            for pair in order.windows(2) {
                successors[pair[0] as usize].push(pair[1]);
            }
            order.iter().for_each(|&i| included[i as usize] = true);
        }
        for chain in &self.chains {
            for pair in chain.windows(2) {
                successors[pair[0] as usize].push(pair[1]);
            }
        }
        for &(i, after) in &self.unknowns {
            if after > 0 && included[i as usize] {
                let client = &self.chains[self.client_of[i as usize] as usize];
                successors[client[after as usize - 1] as usize].push(i);
            }
        }
        // Every completed operation must be in the merge; unknown-outcome
        // ones only if the linearization applied them.
        if (0..n).any(|i| self.unknown_of[i] == NONE && !included[i]) {
            return None;
        }
        let mut indegree = vec![0u32; n];
        successors
            .iter()
            .flatten()
            .for_each(|&j| indegree[j as usize] += 1);
        let mut ready: VecDeque<u32> = (0..n as u32)
            .filter(|&i| included[i as usize] && indegree[i as usize] == 0)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &j in &successors[i as usize] {
                indegree[j as usize] -= 1;
                if indegree[j as usize] == 0 {
                    ready.push_back(j);
                }
            }
        }
        let merged = order.len() == included.iter().filter(|&&b| b).count();
        (merged && self.replays(&order))
            .then(|| order.iter().map(|&i| self.ops[i as usize].id).collect())
    }

    /// Whether `order` (problem numbers) keeps program order and makes
    /// every reply legal: the witness is checked, not trusted.
    fn replays(&self, order: &[u32]) -> bool {
        let mut states = vec![self.model.init(); self.keys.len()];
        let mut progress = vec![0usize; self.chains.len()];
        for &i in order {
            let i = i as usize;
            let client = self.client_of[i] as usize;
            match self.unknown_of[i] {
                NONE if self.chains[client].get(progress[client]) == Some(&(i as u32)) => {
                    progress[client] += 1;
                }
                NONE => return false,
                u if progress[client] < self.unknowns[u as usize].1 as usize => return false,
                _ => {}
            }
            let key = self.key_of[i] as usize;
            match self.model.step(&states[key], self.ops[i]) {
                Some(after) => states[key] = after,
                None => return false,
            }
        }
        progress
            .iter()
            .zip(&self.chains)
            .all(|(&p, chain)| p == chain.len())
    }
}
