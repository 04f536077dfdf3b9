//! Causal memory (CM): one client's happened-before relation.
//!
//! CM asks more than CC: not each operation alone, but a client's whole
//! session up to an operation `o` must be explained by one order of its
//! causal past. Bouajjani et al. capture what that order must contain as
//! `HB_o`: the causal order restricted to `o`'s causal past, closed under
//! one rule — when a read `r2` in `o`'s session returned `w2`'s value and
//! another write `w1` to the same key happens before `r2`, then `w1`
//! happens before `w2` (otherwise `w1` would have overwritten the value
//! `r2` returned). CM fails when `HB_o` has a cycle (CyclicHB) or puts a
//! write before a read of its key's initial value in the session
//! (WriteHBInitRead).
//!
//! Cost: one n × n bitset per client's last operation (a client's `HB_o`
//! only grows along its session, so its last operation sees every
//! pattern an earlier one would), each new edge an OR into up to n rows.

use std::time::Instant;

use super::graph::{Access, Graph, Source};
use super::{Finding, Pattern};

/// The patterns `o`'s view holds: at most one CyclicHB (the relation is
/// no order after it), else the session's WriteHBInitRead reads not
/// already caught as WriteCOInitRead by the causal order alone.
pub(super) fn view(
    graph: &Graph<'_>,
    o: usize,
    deadline: Option<Instant>,
) -> Result<Vec<Finding>, String> {
    let n = graph.len();
    let words = graph.words();
    let in_view: Vec<usize> = (0..n).filter(|&d| d == o || graph.before(d, o)).collect();
    let mut hb = vec![0u64; n * words];
    for &d in &in_view {
        hb[d * words..(d + 1) * words].copy_from_slice(graph.past_row(d));
    }
    let has = |hb: &[u64], after: usize, before: usize| {
        hb[after * words + before / 64] >> (before % 64) & 1 == 1
    };
    let client = graph.nodes[o].op.client;
    let session: Vec<usize> = in_view
        .iter()
        .copied()
        .filter(|&d| graph.nodes[d].op.client == client)
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for &r2 in &session {
            let Some(w2) = graph.rf(r2) else { continue };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err("the budget ran out while checking causal memory".into());
            }
            for &w1 in graph.writes.get(&graph.nodes[r2].key).into_iter().flatten() {
                if w1 == w2 || !has(&hb, r2, w1) || has(&hb, w2, w1) {
                    continue;
                }
                if has(&hb, w1, w2) {
                    let names = [w2, w1, r2].map(|i| graph.name(i));
                    return Ok(vec![Finding {
                        pattern: Pattern::CyclicHB,
                        operations: [w2, w1, r2].map(|i| graph.nodes[i].op.id).to_vec(),
                        chain: format!(
                            "{} →hb {} →hb {} (which reads from {})",
                            names[0], names[1], names[2], names[0]
                        ),
                        explanation: format!(
                            "in client {client}'s session up to {}: {} happened before {}, yet {} returned the older write's value after {} happened before it",
                            graph.name(o),
                            names[0],
                            names[1],
                            names[2],
                            names[1]
                        ),
                        session: None,
                    }]);
                }
                // Add w1 → w2 and keep the relation transitive: everything
                // at or after w2 now has w1 and w1's past behind it.
                let mut row: Vec<u64> = hb[w1 * words..(w1 + 1) * words].to_vec();
                row[w1 / 64] |= 1 << (w1 % 64);
                for &d in &in_view {
                    if d == w2 || has(&hb, d, w2) {
                        for (a, b) in hb[d * words..(d + 1) * words].iter_mut().zip(&row) {
                            *a |= b;
                        }
                    }
                }
                changed = true;
            }
        }
    }
    let mut found = Vec::new();
    for &r in &session {
        let Access::Read(Source::Init) = graph.nodes[r].access else {
            continue;
        };
        let writes = graph.writes.get(&graph.nodes[r].key).into_iter().flatten();
        for &w in writes {
            if has(&hb, r, w) && !graph.before(w, r) {
                found.push(Finding {
                    pattern: Pattern::WriteHBInitRead,
                    operations: vec![graph.nodes[w].op.id, graph.nodes[r].op.id],
                    chain: format!("{} →hb {}", graph.name(w), graph.name(r)),
                    explanation: format!(
                        "in client {client}'s session up to {}, {} happened before {}, which returned the initial value {}",
                        graph.name(o),
                        graph.name(w),
                        graph.name(r),
                        graph.init
                    ),
                    session: None,
                });
                break;
            }
        }
    }
    Ok(found)
}
