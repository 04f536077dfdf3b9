//! The causal order of a history: program order, read-from, and their
//! transitive closure as one bitset per operation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::super::history::{Command, Datum, History, Operation, Reply};
use super::super::model::Model;
use crate::{Error, Result};

/// A key of the history (`None`: the single register).
pub(super) type Key = Option<Arc<str>>;

/// Where a read's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// The initial value: no write.
    Init,
    /// The one write of this value (the history is differentiated).
    Write(usize),
    /// No write of this value exists: a value out of thin air.
    Nowhere,
}

/// How one operation touches its key.
#[derive(Clone, Debug)]
pub(super) enum Access {
    Write,
    Read(Source),
}

/// One operation that takes part in the causal order.
pub(super) struct Node<'h> {
    pub op: &'h Operation,
    pub key: Key,
    pub access: Access,
}

/// Why `to` is causally after `from`, one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Edge {
    /// Program order: the same client, later.
    Po,
    /// Read-from: the read returned this write's value.
    Rf,
    /// Conflict (causal convergence only): the write was causally before
    /// a read that returned the other write, so it must be arbitrated first.
    Cf,
}

impl Edge {
    pub fn label(self) -> &'static str {
        match self {
            Edge::Po => "→po",
            Edge::Rf => "→rf",
            Edge::Cf => "→cf",
        }
    }
}

/// The history as a graph: nodes, their program-order and read-from
/// predecessors, and (once closed) each node's strict causal past.
pub(super) struct Graph<'h> {
    pub nodes: Vec<Node<'h>>,
    pub po_prev: Vec<Option<usize>>,
    /// The writes of each key, in history order.
    pub writes: BTreeMap<Key, Vec<usize>>,
    /// The value a read of a never-written key returns.
    pub init: Datum,
    /// Row `i`: the nodes strictly before node `i` in causal order.
    past: Vec<u64>,
    words: usize,
}

impl<'h> Graph<'h> {
    /// Reads `history` as a register (or key-value) history: checks that it
    /// is differentiated and that no client overlaps itself.
    pub fn build(history: &'h History) -> Result<Self> {
        history.validate_ids()?;
        let model = Model::detect(history)?;
        let init = model.init();
        // A write whose outcome is unknown and whose value nobody read may
        // never have happened: leaving it out is a legal explanation, and
        // one that adds no causal order.
        let observed: HashSet<(&Option<Arc<str>>, &Datum)> = history
            .operations
            .iter()
            .filter_map(|op| match (&op.command, &op.reply) {
                (Command::Get | Command::Read, Reply::Value(value)) => Some((&op.key, value)),
                _ => None,
            })
            .collect();
        let mut nodes = Vec::new();
        for op in &history.operations {
            let access = match (&op.command, &op.reply) {
                (Command::Put(value) | Command::Write(value), Reply::Unknown)
                    if !observed.contains(&(&op.key, value)) =>
                {
                    continue;
                }
                (Command::Put(_) | Command::Write(_), _) => Access::Write,
                (Command::Get | Command::Read, Reply::Value(_)) => Access::Read(Source::Init),
                // A read whose answer never came observed nothing.
                (Command::Get | Command::Read, _) => continue,
                (Command::Append(_) | Command::Cas { .. }, _) => {
                    return Err(Error::ModelMismatch {
                        model: "causal (read/write registers: read, write, get, put)",
                        operation: op.id,
                        found: op.describe(),
                    });
                }
            };
            nodes.push(Node {
                op,
                key: op.key.clone(),
                access,
            });
        }
        // Each value written at most once per key, and never the initial
        // value: then a read names the one write it read from.
        let mut written: HashMap<(&Key, &Datum), usize> = HashMap::new();
        let mut writes: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for (at, node) in nodes.iter().enumerate() {
            if let Command::Put(value) | Command::Write(value) = &node.op.command {
                if *value == init {
                    return Err(Error::WritesInitialValue {
                        operation: node.op.id,
                        value: value.to_string(),
                    });
                }
                if let Some(&first) = written.get(&(&node.key, value)) {
                    return Err(Error::NotDifferentiated {
                        key: key_name(&node.key),
                        value: value.to_string(),
                        first: nodes[first].op.id,
                        second: node.op.id,
                    });
                }
                written.insert((&node.key, value), at);
                writes.entry(node.key.clone()).or_default().push(at);
            }
        }
        let sources: Vec<Option<Source>> = nodes
            .iter()
            .map(|node| match (&node.access, &node.op.reply) {
                (Access::Read(_), Reply::Value(value)) if *value == init => Some(Source::Init),
                (Access::Read(_), Reply::Value(value)) => Some(
                    written
                        .get(&(&node.key, value))
                        .map_or(Source::Nowhere, |&w| Source::Write(w)),
                ),
                _ => None,
            })
            .collect();
        for (node, source) in nodes.iter_mut().zip(sources) {
            if let Some(source) = source {
                node.access = Access::Read(source);
            }
        }
        let po_prev = program_order(&nodes)?;
        let words = nodes.len().div_ceil(64);
        Ok(Self {
            nodes,
            po_prev,
            writes,
            init,
            past: Vec::new(),
            words,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The read-from source of node `i`, if it is a read of a write.
    pub fn rf(&self, i: usize) -> Option<usize> {
        match self.nodes[i].access {
            Access::Read(Source::Write(w)) => Some(w),
            _ => None,
        }
    }

    /// Node `i`'s immediate causal predecessors.
    pub fn predecessors(&self, i: usize) -> impl Iterator<Item = (usize, Edge)> + '_ {
        let po = self.po_prev[i].map(|p| (p, Edge::Po));
        let rf = self.rf(i).map(|w| (w, Edge::Rf));
        po.into_iter().chain(rf)
    }

    /// Computes every node's causal past in a topological order of po ∪ rf;
    /// `Err(nodes)` with the nodes left over (they sit on or behind a cycle).
    /// `tick` is called once per node and stops the work when it says so.
    pub fn close(
        &mut self,
        mut tick: impl FnMut() -> bool,
    ) -> std::result::Result<bool, Vec<usize>> {
        let n = self.len();
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting: Vec<usize> = (0..n).map(|i| self.predecessors(i).count()).collect();
        for i in 0..n {
            for (p, _) in self.predecessors(i) {
                successors[p].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        self.past = vec![0; n * self.words];
        let mut done = 0;
        while let Some(i) = ready.pop() {
            if !tick() {
                return Ok(false);
            }
            done += 1;
            let preds: Vec<usize> = self.predecessors(i).map(|(p, _)| p).collect();
            for p in preds {
                // past(i) ⊇ past(p) ∪ {p}: one row OR per edge, so the whole
                // closure costs edges × n/64 words.
                let (row_i, row_p) = self.rows_mut(i, p);
                for (a, b) in row_i.iter_mut().zip(row_p) {
                    *a |= b;
                }
                self.past[i * self.words + p / 64] |= 1 << (p % 64);
            }
            for &s in &successors[i] {
                waiting[s] -= 1;
                if waiting[s] == 0 {
                    ready.push(s);
                }
            }
        }
        if done == n {
            Ok(true)
        } else {
            Err((0..n).filter(|&i| waiting[i] > 0).collect())
        }
    }

    fn rows_mut(&mut self, i: usize, p: usize) -> (&mut [u64], &[u64]) {
        let w = self.words;
        // i and p differ: p is a predecessor of i in an acyclic order.
        if i < p {
            let (low, high) = self.past.split_at_mut(p * w);
            (&mut low[i * w..(i + 1) * w], &high[..w])
        } else {
            let (low, high) = self.past.split_at_mut(i * w);
            (&mut high[..w], &low[p * w..(p + 1) * w])
        }
    }

    /// Whether `a` is strictly before `b` in causal order (after [`close`]).
    ///
    /// [`close`]: Graph::close
    pub fn before(&self, a: usize, b: usize) -> bool {
        self.past
            .get(b * self.words + a / 64)
            .is_some_and(|word| word >> (a % 64) & 1 == 1)
    }

    /// The row of `b`'s causal past.
    pub fn past_row(&self, b: usize) -> &[u64] {
        &self.past[b * self.words..(b + 1) * self.words]
    }

    pub fn words(&self) -> usize {
        self.words
    }

    /// A chain of po/rf steps from `a` to `b`, given `a` is before `b`:
    /// walk back from `b`, always to a predecessor that still has `a` behind it.
    pub fn chain(&self, a: usize, b: usize) -> Vec<(usize, Edge)> {
        let mut steps = vec![];
        let mut at = b;
        while at != a {
            let Some((p, edge)) = self
                .predecessors(at)
                .find(|&(p, _)| p == a || self.before(a, p))
            else {
                break;
            };
            steps.push((at, edge));
            at = p;
        }
        steps.reverse();
        steps
    }

    /// `w(x,1)#3`, `r(x)=1#9`: an operation as a chain names it.
    pub fn name(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let key = node.key.as_deref().unwrap_or("");
        match (&node.op.command, &node.op.reply) {
            (Command::Put(v) | Command::Write(v), _) if key.is_empty() => {
                format!("w({v})#{}", node.op.id)
            }
            (Command::Put(v) | Command::Write(v), _) => format!("w({key},{v})#{}", node.op.id),
            (_, Reply::Value(v)) => format!("r({key})={v}#{}", node.op.id),
            _ => format!("r({key})#{}", node.op.id),
        }
    }

    /// A chain written out: `w(x,1)#3 →po w(y,2)#4 →rf r(y)=2#9`.
    pub fn show_chain(&self, from: usize, steps: &[(usize, Edge)]) -> String {
        let mut out = self.name(from);
        for &(to, edge) in steps {
            out.push_str(&format!(" {} {}", edge.label(), self.name(to)));
        }
        out
    }
}

pub(super) fn key_name(key: &Key) -> String {
    key.as_deref()
        .map_or("the register".to_owned(), |k| format!("key {k:?}"))
}

/// Each client's operations in call order; a client that calls before its
/// previous operation returned has no program order, and is refused.
fn program_order(nodes: &[Node<'_>]) -> Result<Vec<Option<usize>>> {
    let mut by_client: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (at, node) in nodes.iter().enumerate() {
        by_client.entry(node.op.client).or_default().push(at);
    }
    let mut po_prev = vec![None; nodes.len()];
    for (client, mut ops) in by_client {
        ops.sort_by_key(|&i| (nodes[i].op.call, nodes[i].op.id));
        // The latest operation the client saw complete. One whose outcome
        // it never learned was still in flight when the client went on, so
        // it follows its predecessor but need not precede its successors.
        let mut last_completed = None;
        for &at in &ops {
            po_prev[at] = last_completed;
            if nodes[at].op.reply != Reply::Unknown {
                last_completed = Some(at);
            }
        }
        for pair in ops.windows(2) {
            let (first, second) = (nodes[pair[0]].op, nodes[pair[1]].op);
            // An operation whose outcome the client never learned (return
            // at +∞) was abandoned, not overlapped by the client's next call.
            if first.ret != u64::MAX && first.ret > second.call {
                return Err(Error::OverlappingClientOperations {
                    client,
                    first: first.id,
                    second: second.id,
                });
            }
        }
    }
    Ok(po_prev)
}
