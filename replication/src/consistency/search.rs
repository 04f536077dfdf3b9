//! The search for one key: Wing & Gong's depth-first search over the
//! entry list, Lowe's memo, and two prunings for operations whose outcome
//! is unknown.
//!
//! An operation whose outcome is unknown (it timed out: `output` null,
//! return +∞) is *optional*: it may take effect at any point after its
//! call, or never, and nothing has to wait for it. Histories recorded
//! against a flaky system (Jepsen's etcd runs) have dozens of them on one
//! register, and the plain search tries every subset of them at every
//! point — 2^k paths. Two facts cut that down, both proved on the full
//! completions of a search node (linearized set S, state s):
//!
//! 1. **An optional operation that leaves the state unchanged is never
//!    needed there.** If S ∪ {o} with state s can be completed by σ, then
//!    S with state s is completed by σ (and o, if it must appear, at the
//!    very end: it is always legal and nothing must follow it). So the
//!    search skips o at that point, and it succeeds as soon as every
//!    *required* operation is placed — the optional rest go last.
//! 2. **Identical optional operations are interchangeable.** Two optional
//!    operations with the same command (say `write(3)` twice) act alike;
//!    swapping them in a valid order keeps it valid as long as the one
//!    called earlier goes earlier. So the search only ever places the
//!    earliest-called unplaced one of each such class: placed members of
//!    a class are always a prefix of the class, tracked by one counter.
//!
//! Both prunings keep at least one valid order whenever one exists, and
//! depend only on the node (set and state), so they compose with the memo.
//! The tests check the pruned search against the plain one on random
//! histories full of unknown outcomes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::history::{Datum, Operation, Reply};
use super::memo::{Memo, zobrist};
use super::model::Model;
use super::states::{INIT, States};

#[cfg(test)]
mod tests;

pub(super) enum Outcome {
    /// Operation ids in a valid order.
    Linearizable(Vec<usize>),
    Stuck {
        prefix: Vec<usize>,
        state: Datum,
        blocked: Vec<(usize, String)>,
    },
    OutOfTime,
    /// The memo reached its cap: no verdict.
    OutOfMemory,
    /// Another key already proved the history not linearizable.
    Abandoned,
}

/// Why searches should stop early, shared by the workers.
#[derive(Default)]
pub(super) struct Stop {
    pub(super) out_of_time: AtomicBool,
    pub(super) refuted: AtomicBool,
}

const NIL: usize = usize::MAX;

/// Which prunings to use: all of them, except when the tests compare the
/// pruned search against the plain one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Pruning {
    Full,
    #[cfg(test)]
    MemoOnly,
}

/// The classes of identical optional operations (fact 2 above): for each
/// operation, its class and its rank in the class (by call time), or
/// `None` if it is required.
fn optional_classes(ops: &[&Operation], order: &[usize]) -> (Vec<Option<(u32, u32)>>, usize) {
    let mut classes: HashMap<&super::history::Command, u32> = HashMap::new();
    let mut sizes: Vec<u32> = Vec::new();
    let mut out = vec![None; ops.len()];
    // `order` lists entries by time, so members are ranked by call time.
    for &e in order.iter().filter(|&&e| e % 2 == 0) {
        let op = ops[e / 2];
        if op.reply == Reply::Unknown && op.ret == u64::MAX {
            let next = classes.len() as u32;
            let class = *classes.entry(&op.command).or_insert(next);
            if class == next {
                sizes.push(0);
            }
            out[e / 2] = Some((class, sizes[class as usize]));
            sizes[class as usize] += 1;
        }
    }
    (out, sizes.len())
}

/// Searches one key's operations for a linearization.
pub(super) fn search(
    model: Model,
    ops: &[&Operation],
    deadline: Option<Instant>,
    memo_words: usize,
    stop: &Stop,
    pruning: Pruning,
) -> Outcome {
    let n = ops.len();
    // Entries: 2i is op i's call, 2i+1 its return. Sorted by time; at equal
    // times calls first, so touching operations count as concurrent.
    let mut order: Vec<usize> = (0..2 * n).collect();
    let time = |e: usize| {
        if e.is_multiple_of(2) {
            ops[e / 2].call
        } else {
            ops[e / 2].ret
        }
    };
    order.sort_by_key(|&e| (time(e), e % 2, e / 2));
    // A doubly linked list over entries; index 2n is the head sentinel.
    let head = 2 * n;
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = head;
    for &e in &order {
        next[last] = e;
        prev[e] = last;
        last = e;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        if q != NIL {
            prev[q] = e;
        }
    };

    let (class_of, classes) = match pruning {
        Pruning::Full => optional_classes(ops, &order),
        #[cfg(test)]
        Pruning::MemoOnly => (vec![None; n], 0),
    };
    let mut taken = vec![0u32; classes];
    let mut required = class_of.iter().filter(|c| c.is_none()).count();

    let mut states = States::new(model, ops);
    let words = n.div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut bits_hash = 0u64;
    let mut state = INIT;
    // (call entry, state before it)
    let mut stack: Vec<(usize, u32)> = Vec::with_capacity(n);
    let mut memo = Memo::new(words, memo_words);
    // The longest valid prefix met: its length and state, recorded when
    // the search first backtracks from it (see `deepest_prefix`).
    let mut deepest: (usize, Vec<usize>, u32) = (0, Vec::new(), INIT);
    let mut entry = next[head];
    let mut steps = 0u64;

    while required > 0 {
        steps += 1;
        if steps.is_multiple_of(4096) {
            if stop.refuted.load(Ordering::Relaxed) {
                return Outcome::Abandoned;
            }
            if stop.out_of_time.load(Ordering::Relaxed) {
                return Outcome::OutOfTime;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.out_of_time.store(true, Ordering::Relaxed);
                return Outcome::OutOfTime;
            }
        }
        if entry == NIL {
            // Every candidate failed: only reachable with an empty stack.
            break;
        }
        if entry.is_multiple_of(2) {
            let i = entry / 2;
            let class = class_of[i];
            let allowed = class.is_none_or(|(c, rank)| taken[c as usize] == rank);
            let after = if allowed { states.step(state, i) } else { None };
            // Fact 1: an optional operation that changes nothing can wait.
            if let Some(after) = after.filter(|&a| class.is_none() || a != state) {
                bits[i / 64] |= 1 << (i % 64);
                if memo.words() + states.words() > memo_words {
                    return Outcome::OutOfMemory;
                }
                let Some(inserted) = memo.insert(bits_hash ^ zobrist(i), &bits, after) else {
                    return Outcome::OutOfMemory;
                };
                if inserted {
                    bits_hash ^= zobrist(i);
                    stack.push((entry, state));
                    state = after;
                    match class {
                        Some((c, _)) => taken[c as usize] += 1,
                        None => required -= 1,
                    }
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, entry + 1);
                    entry = next[head];
                    continue;
                }
                bits[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            // A return with its call still pending: this path is dead.
            if stack.len() > deepest.0 {
                deepest = (
                    stack.len(),
                    stack.iter().map(|(e, _)| e / 2).collect(),
                    state,
                );
            }
            let Some((call, before)) = stack.pop() else {
                break;
            };
            let i = call / 2;
            bits[i / 64] &= !(1 << (i % 64));
            bits_hash ^= zobrist(i);
            state = before;
            match class_of[i] {
                Some((c, _)) => taken[c as usize] -= 1,
                None => required += 1,
            }
            relink(&mut next, &mut prev, call + 1);
            relink(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
    if required == 0 {
        // The optional operations left over go last (or never happened).
        let mut witness: Vec<usize> = stack.iter().map(|(e, _)| ops[e / 2].id).collect();
        let mut rest = next[head];
        while rest != NIL {
            if rest.is_multiple_of(2) {
                witness.push(ops[rest / 2].id);
            }
            rest = next[rest];
        }
        return Outcome::Linearizable(witness);
    }
    let (_, prefix_local, state) = deepest;
    let state = states.value(state);
    let mut done = vec![false; n];
    for &i in &prefix_local {
        done[i] = true;
    }
    let first_return = (0..n)
        .filter(|&i| !done[i])
        .map(|i| ops[i].ret)
        .min()
        .unwrap_or(u64::MAX);
    let blocked = (0..n)
        .filter(|&i| !done[i] && ops[i].call <= first_return)
        .map(|i| (ops[i].id, model.explain(&state, ops[i])))
        .collect();
    Outcome::Stuck {
        prefix: prefix_local.iter().map(|&i| ops[i].id).collect(),
        state,
        blocked,
    }
}
