//! The dependency graph: transactions as nodes, typed edges carrying the
//! evidence that justified them, and Tarjan's strongly connected
//! components over any subset of edge kinds.
//!
//! Bound: one node per transaction, a handful of edges per micro-op (ww,
//! wr and rw edges are each derived from one read or write), plus the
//! real-time frontier (at most the number of concurrently running
//! transactions per transaction). Memory is O(transactions + edges).

use super::history::KeyId;

/// The kinds of dependency, as bits so a search can pick a subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// Write-write: T1 installed a version, T2 the next one.
    Ww,
    /// Write-read: T2 read what T1 wrote.
    Wr,
    /// Read-write (anti-dependency): T1 read a version, T2 wrote the next.
    Rw,
    /// Real time: T1 returned before T2 was called.
    Realtime,
    /// Process order: the same process ran T1, then T2.
    Process,
}

impl EdgeKind {
    pub const fn bit(self) -> u8 {
        match self {
            Self::Ww => 1,
            Self::Wr => 2,
            Self::Rw => 4,
            Self::Realtime => 8,
            Self::Process => 16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ww => "ww",
            Self::Wr => "wr",
            Self::Rw => "rw",
            Self::Realtime => "realtime",
            Self::Process => "process",
        }
    }
}

/// Why an edge exists, in the history's own values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// On `key`, `before` (by the source) came right before `after`.
    Ww { key: KeyId, before: i64, after: i64 },
    /// The target read `key` and the last value it saw, `value`, was the
    /// source's.
    Wr { key: KeyId, value: i64 },
    /// The source read `key` up to `read` (`None`: empty or initial), and
    /// the target wrote `next`, the version right after it.
    Rw {
        key: KeyId,
        read: Option<i64>,
        next: i64,
    },
    /// The source returned at `returned`, before the target's call at
    /// `called`.
    Realtime { returned: u64, called: u64 },
    /// Both ran on `process`, the source first.
    Process { process: u64 },
}

impl Evidence {
    pub fn kind(&self) -> EdgeKind {
        match self {
            Self::Ww { .. } => EdgeKind::Ww,
            Self::Wr { .. } => EdgeKind::Wr,
            Self::Rw { .. } => EdgeKind::Rw,
            Self::Realtime { .. } => EdgeKind::Realtime,
            Self::Process { .. } => EdgeKind::Process,
        }
    }
}

/// An edge out of some transaction (indices into `TxnHistory::txns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub to: u32,
    pub evidence: Evidence,
}

/// Adjacency lists, one per transaction.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub adjacency: Vec<Vec<Edge>>,
}

impl Graph {
    pub fn new(nodes: usize) -> Self {
        Self {
            adjacency: vec![Vec::new(); nodes],
        }
    }

    pub fn len(&self) -> usize {
        self.adjacency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adjacency.is_empty()
    }

    /// Adds `from → to`; self-edges are dropped (a transaction does not
    /// depend on itself).
    pub fn add(&mut self, from: usize, to: usize, evidence: Evidence) {
        if from != to
            && let Some(list) = self.adjacency.get_mut(from)
        {
            list.push(Edge {
                to: to as u32,
                evidence,
            });
        }
    }

    pub fn edge_count(&self) -> usize {
        self.adjacency.iter().map(Vec::len).sum()
    }

    /// Tarjan's strongly connected components over the edges whose kind
    /// is in `mask`: a component id per node. Iterative, because a
    /// 100k-transaction chain would overflow the stack recursively.
    pub fn components(&self, mask: u8) -> Vec<u32> {
        const UNSEEN: u32 = u32::MAX;
        let n = self.len();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut component = vec![UNSEEN; n];
        let mut stack: Vec<u32> = Vec::new();
        // (node, next edge to look at)
        let mut work: Vec<(u32, usize)> = Vec::new();
        let mut next_index = 0u32;
        let mut next_component = 0u32;
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            work.push((root as u32, 0));
            index[root] = next_index;
            low[root] = next_index;
            next_index += 1;
            stack.push(root as u32);
            on_stack[root] = true;
            while let Some(&(node, cursor)) = work.last() {
                let v = node as usize;
                let edges = &self.adjacency[v];
                let mut next = cursor;
                let mut descend = None;
                while next < edges.len() {
                    let edge = edges[next];
                    next += 1;
                    if edge.evidence.kind().bit() & mask == 0 {
                        continue;
                    }
                    let w = edge.to as usize;
                    if index[w] == UNSEEN {
                        descend = Some(edge.to);
                        break;
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                }
                if let Some(top) = work.last_mut() {
                    top.1 = next;
                }
                if let Some(w) = descend {
                    index[w as usize] = next_index;
                    low[w as usize] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    work.push((w, 0));
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    let p = parent as usize;
                    low[p] = low[p].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        component[w as usize] = next_component;
                        if w == node {
                            break;
                        }
                    }
                    next_component += 1;
                }
            }
        }
        component
    }
}
