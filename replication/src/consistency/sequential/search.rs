//! The search: depth-first over which client's next operation goes next.
//!
//! A search state is one row of `u32` words — how far each client has
//! got, which unknown-outcome operations were applied (a bitset) and each
//! key's state (numbered by the memo) — hashed Zobrist-style so a move
//! costs a few XORs. Candidates at each step are the clients' next
//! operations and the applicable unknown-outcome ones, tried in real-time
//! order first: most real histories are nearly linearizable, so following
//! real time finds a witness with little backtracking.

use std::time::Instant;

use super::memo::{Memo, mix};
use super::problem::{NONE, Problem, read_only};
use super::{Blocked, Counterexample, GaveUp};

pub(super) enum Outcome {
    Found(Vec<usize>),
    Stuck(Counterexample),
    GaveUp(GaveUp),
}

impl Problem<'_> {
    pub(super) fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Searches for a witness; returns the outcome and how many search
    /// states were memoized.
    pub(super) fn solve(&self, deadline: Option<Instant>, memo_bytes: usize) -> (Outcome, u64) {
        let mut search = Search::new(self, memo_bytes);
        let outcome = search.run(deadline);
        (outcome, search.memo.len() as u64)
    }
}

/// What applying an operation did.
enum Applied {
    Illegal,
    /// Legal, and the state did not change.
    Unchanged,
    Changed,
}

/// One node of the depth-first search: where its moves were undone to,
/// and its candidates (a range of the shared candidate stack).
struct Frame {
    mark: usize,
    start: usize,
    cursor: usize,
}

struct Search<'p, 'a> {
    problem: &'p Problem<'a>,
    /// [progress per client][unknown-applied bitset][state per key]
    row: Vec<u32>,
    hash: u64,
    unknown_base: usize,
    state_base: usize,
    /// The order so far: (operation, its key's state number before it).
    placed: Vec<(u32, u32)>,
    memo: Memo,
}

impl<'p, 'a> Search<'p, 'a> {
    fn new(problem: &'p Problem<'a>, memo_bytes: usize) -> Self {
        let unknown_base = problem.clients.len();
        let state_base = unknown_base + problem.unknowns.len().div_ceil(32);
        let width = state_base + problem.keys.len();
        let mut memo = Memo::new(width, memo_bytes);
        // The initial state is number 0 in an empty table.
        let init = memo.number(&problem.model.init()).unwrap_or(0);
        let mut row = vec![0u32; width];
        row[state_base..].fill(init);
        let hash = row
            .iter()
            .enumerate()
            .fold(0, |h, (slot, &v)| h ^ mix(slot, v));
        Self {
            problem,
            row,
            hash,
            unknown_base,
            state_base,
            placed: Vec::with_capacity(problem.ops.len()),
            memo,
        }
    }

    fn set(&mut self, slot: usize, value: u32) {
        self.hash ^= mix(slot, self.row[slot]) ^ mix(slot, value);
        self.row[slot] = value;
    }

    /// Marks operation `i` done (or not): its client's progress, or its
    /// bit among the unknown-outcome operations.
    fn mark(&mut self, i: u32, done: bool) {
        let p = self.problem;
        match p.unknown_of[i as usize] {
            NONE => {
                let slot = p.client_of[i as usize] as usize;
                let progress = if done {
                    self.row[slot] + 1
                } else {
                    self.row[slot] - 1
                };
                self.set(slot, progress);
            }
            u => {
                let slot = self.unknown_base + u as usize / 32;
                let bit = 1u32 << (u % 32);
                let word = if done {
                    self.row[slot] | bit
                } else {
                    self.row[slot] & !bit
                };
                self.set(slot, word);
            }
        }
    }

    /// Applies operation `i` if its reply is legal now; `None` when the
    /// memory bound stops the state table from growing.
    fn apply(&mut self, i: u32) -> Option<Applied> {
        let p = self.problem;
        let slot = self.state_base + p.key_of[i as usize] as usize;
        let before = self.row[slot];
        let Some(after) = p.model.step(self.memo.state(before), p.ops[i as usize]) else {
            return Some(Applied::Illegal);
        };
        let after = self.memo.number(&after)?;
        self.mark(i, true);
        self.set(slot, after);
        self.placed.push((i, before));
        Some(if after == before {
            Applied::Unchanged
        } else {
            Applied::Changed
        })
    }

    fn undo_to(&mut self, mark: usize) {
        while self.placed.len() > mark {
            let Some((i, before)) = self.placed.pop() else {
                break;
            };
            self.mark(i, false);
            self.set(
                self.state_base + self.problem.key_of[i as usize] as usize,
                before,
            );
        }
    }

    /// Places every client's legal read-only next operations. One pass
    /// suffices: they change no state, so they enable no other read.
    fn close(&mut self) -> Option<()> {
        for client in 0..self.problem.chains.len() {
            while let Some(&i) = self.problem.chains[client].get(self.row[client] as usize) {
                if !read_only(self.problem.ops[i as usize]) {
                    break;
                }
                if let Applied::Illegal = self.apply(i)? {
                    break;
                }
            }
        }
        Some(())
    }

    fn done(&self) -> bool {
        let chains = &self.problem.chains;
        (0..chains.len()).all(|c| self.row[c] as usize == chains[c].len())
    }

    /// Pushes the moves from here, earliest call first.
    fn candidates(&self, out: &mut Vec<u32>) {
        let p = self.problem;
        let start = out.len();
        for (client, chain) in p.chains.iter().enumerate() {
            out.extend(chain.get(self.row[client] as usize));
        }
        for (u, &(i, after)) in p.unknowns.iter().enumerate() {
            let applied = self.row[self.unknown_base + u / 32] & (1 << (u % 32)) != 0;
            if !applied && self.row[p.client_of[i as usize] as usize] >= after {
                out.push(i);
            }
        }
        // Operations that could go next in real time (called before the
        // earliest pending return) first: on a linearizable history this
        // walks the linearizability search, which finds a witness fast.
        let first_return = out[start..]
            .iter()
            .map(|&i| p.ops[i as usize].ret)
            .min()
            .unwrap_or(u64::MAX);
        out[start..].sort_by_key(|&i| {
            let op = p.ops[i as usize];
            (op.call > first_return, op.call, op.id)
        });
    }

    fn run(&mut self, deadline: Option<Instant>) -> Outcome {
        let memory = Outcome::GaveUp(GaveUp::Memory);
        if self.close().is_none() {
            return memory;
        }
        if self.done() {
            return Outcome::Found(self.order(&self.placed));
        }
        if self.memo.insert(self.hash, &self.row).is_none() {
            return memory;
        }
        let mut deepest = (self.placed.clone(), self.row.clone());
        let mut candidates = Vec::new();
        self.candidates(&mut candidates);
        let mut frames = vec![Frame {
            mark: self.placed.len(),
            start: 0,
            cursor: 0,
        }];
        let mut steps = 0u64;
        while let Some(frame) = frames.last_mut() {
            steps += 1;
            if steps.is_multiple_of(1024) && deadline.is_some_and(|d| Instant::now() >= d) {
                return Outcome::GaveUp(GaveUp::Time);
            }
            // The top frame's candidates run to the end of the stack.
            let at = frame.start + frame.cursor;
            let Some(&i) = candidates.get(at) else {
                candidates.truncate(frame.start);
                frames.pop();
                continue;
            };
            frame.cursor += 1;
            let mark = frame.mark;
            self.undo_to(mark);
            match self.apply(i) {
                None => return memory,
                Some(Applied::Illegal) => continue,
                // An unknown-outcome operation that changes nothing is
                // better left unapplied: it stays available for later.
                Some(Applied::Unchanged) if self.problem.unknown_of[i as usize] != NONE => continue,
                Some(_) => {}
            }
            if self.close().is_none() {
                return memory;
            }
            if self.placed.len() > deepest.0.len() {
                deepest = (self.placed.clone(), self.row.clone());
            }
            if self.done() {
                return Outcome::Found(self.order(&self.placed));
            }
            match self.memo.insert(self.hash, &self.row) {
                None => return memory,
                Some(false) => {}
                Some(true) => {
                    let start = candidates.len();
                    self.candidates(&mut candidates);
                    frames.push(Frame {
                        mark: self.placed.len(),
                        start,
                        cursor: 0,
                    });
                }
            }
        }
        Outcome::Stuck(self.counterexample(&deepest.0, &deepest.1))
    }

    fn order(&self, placed: &[(u32, u32)]) -> Vec<usize> {
        placed
            .iter()
            .map(|&(i, _)| self.problem.ops[i as usize].id)
            .collect()
    }

    fn counterexample(&self, placed: &[(u32, u32)], row: &[u32]) -> Counterexample {
        let p = self.problem;
        let state_of = |key: u32| self.memo.state(row[self.state_base + key as usize]);
        let blocked = p
            .chains
            .iter()
            .enumerate()
            .filter_map(|(c, chain)| chain.get(row[c] as usize).map(|&i| (c, i)))
            .map(|(c, i)| {
                let op = p.ops[i as usize];
                Blocked {
                    client: p.clients[c],
                    operation: op.id,
                    why: p.model.explain(state_of(p.key_of[i as usize]), op),
                }
            })
            .collect();
        Counterexample {
            longest_prefix: self.order(placed),
            state: (0..p.keys.len())
                .map(|k| (p.keys[k].clone(), state_of(k as u32).clone()))
                .collect(),
            blocked,
        }
    }
}
