//! Real-time and process order edges, added only when asked for.
//!
//! Real time (strict serializability): T1 → T2 when T1 returned before T2
//! was called. All such pairs can be O(n²); a sweep over call and return
//! events keeps only the *frontier* (transactions returned and not yet
//! followed by another returned one), as Elle does, and edges from it
//! imply every other pair transitively. Edges: per transaction, at most
//! the frontier size, which is bounded by how many transactions ran
//! concurrently with it.

use super::graph::{Evidence, Graph};
use super::history::{Outcome, TxnHistory};

/// Adds real-time edges. `info` transactions never return (they may take
/// effect any time after their call); `fail` ones never took effect.
pub fn add_realtime(history: &TxnHistory, graph: &mut Graph) {
    // (time, 0 = call / 1 = return, txn): at equal times calls sort first,
    // so a transaction returning at 5 does not precede one called at 5.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (t, txn) in history.txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail {
            continue;
        }
        if let Some(call) = txn.call {
            events.push((call, 0, t));
            if let (Outcome::Ok, Some(ret)) = (txn.outcome, txn.ret) {
                events.push((ret, 1, t));
            }
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<usize> = Vec::new();
    let mut in_frontier = vec![false; history.txns.len()];
    let mut predecessors: Vec<Vec<u32>> = vec![Vec::new(); history.txns.len()];
    for (time, kind, t) in events {
        if kind == 0 {
            for &f in &frontier {
                let returned = history.txns[f].ret.unwrap_or(0);
                graph.add(
                    f,
                    t,
                    Evidence::Realtime {
                        returned,
                        called: time,
                    },
                );
            }
            predecessors[t] = frontier.iter().map(|&f| f as u32).collect();
        } else {
            // Everything before t is now implied through t.
            for &p in &predecessors[t] {
                in_frontier[p as usize] = false;
            }
            predecessors[t] = Vec::new();
            frontier.retain(|&f| in_frontier[f]);
            frontier.push(t);
            in_frontier[t] = true;
        }
    }
}

/// Adds process-order edges: each process's committed transactions in
/// call order (file order when calls are missing). A transaction of
/// unknown outcome is left out: it may have committed after the process's
/// next one.
pub fn add_process_order(history: &TxnHistory, graph: &mut Graph) {
    let mut order: Vec<usize> = (0..history.txns.len())
        .filter(|&t| history.txns[t].outcome == Outcome::Ok)
        .collect();
    order.sort_by_key(|&t| {
        (
            history.txns[t].process,
            history.txns[t].call.unwrap_or(0),
            t,
        )
    });
    for pair in order.windows(2) {
        let (a, b) = (&history.txns[pair[0]], &history.txns[pair[1]]);
        if a.process == b.process {
            graph.add(pair[0], pair[1], Evidence::Process { process: a.process });
        }
    }
}
