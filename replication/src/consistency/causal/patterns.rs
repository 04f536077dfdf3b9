//! The bad patterns of Bouajjani et al., each found in polynomial time
//! on the closed causal order.

use std::collections::BTreeMap;
use std::time::Instant;

use super::super::session::Guarantee;
use super::graph::{Access, Edge, Graph, Source, key_name};
use super::{Finding, MAX_FINDINGS, Pattern, Variant};

/// Runs the checks and collects what they find.
pub(super) struct Checker<'g, 'h> {
    graph: &'g mut Graph<'h>,
    deadline: Option<Instant>,
    pub findings: Vec<Finding>,
    pub counts: BTreeMap<Pattern, usize>,
}

type Outcome = Result<(), String>;

impl<'g, 'h> Checker<'g, 'h> {
    pub fn new(graph: &'g mut Graph<'h>, deadline: Option<Instant>) -> Self {
        Self {
            graph,
            deadline,
            findings: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    fn in_time(&self, stage: &str) -> Outcome {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(format!("the budget ran out while checking {stage}"))
            }
            _ => Ok(()),
        }
    }

    fn found(&mut self, pattern: Pattern, operations: Vec<usize>, chain: String, why: String) {
        self.found_in_session(pattern, operations, chain, why, None);
    }

    fn found_in_session(
        &mut self,
        pattern: Pattern,
        operations: Vec<usize>,
        chain: String,
        why: String,
        session: Option<Guarantee>,
    ) {
        let count = self.counts.entry(pattern).or_insert(0);
        *count += 1;
        if *count <= MAX_FINDINGS {
            self.findings.push(Finding {
                pattern,
                operations,
                chain,
                explanation: why,
                session,
            });
        }
    }

    pub fn run(&mut self, variant: Variant) -> Outcome {
        self.thin_air_read();
        let deadline = self.deadline;
        match self
            .graph
            .close(|| deadline.is_none_or(|d| Instant::now() < d))
        {
            Ok(true) => {}
            Ok(false) => return Err("the budget ran out computing the causal order".into()),
            // Simplified: with a cycle there is no causal order to judge
            // the other patterns by; the cycle alone condemns the history.
            Err(left) => {
                let preds: Vec<Vec<(usize, Edge)>> = (0..self.graph.len())
                    .map(|i| self.graph.predecessors(i).collect())
                    .collect();
                self.cycle(Pattern::CyclicCO, &left, &preds);
                return Ok(());
            }
        }
        self.write_co_init_read()?;
        self.write_co_read()?;
        match variant {
            Variant::Cc => Ok(()),
            Variant::Ccv => self.cyclic_cf(),
            Variant::Cm => self.causal_memory(),
        }
    }

    fn thin_air_read(&mut self) {
        for r in 0..self.graph.len() {
            if let Access::Read(Source::Nowhere) = self.graph.nodes[r].access {
                let name = self.graph.name(r);
                let why = format!(
                    "{name} returned a value no operation wrote to {}",
                    key_name(&self.graph.nodes[r].key)
                );
                self.found(
                    Pattern::ThinAirRead,
                    vec![self.graph.nodes[r].op.id],
                    name,
                    why,
                );
            }
        }
    }

    /// A read of the initial value with a write to its key in its past.
    fn write_co_init_read(&mut self) -> Outcome {
        for r in 0..self.graph.len() {
            let Access::Read(Source::Init) = self.graph.nodes[r].access else {
                continue;
            };
            self.in_time("WriteCOInitRead")?;
            let key = &self.graph.nodes[r].key;
            let Some(&w) = self
                .graph
                .writes
                .get(key)
                .and_then(|writes| writes.iter().rev().find(|&&w| self.graph.before(w, r)))
            else {
                continue;
            };
            let steps = self.graph.chain(w, r);
            let session = session_guarantee(&steps);
            let chain = self.graph.show_chain(w, &steps);
            let why = format!(
                "{} returned the initial value {}, but {} is causally before it",
                self.graph.name(r),
                self.graph.init,
                self.graph.name(w)
            );
            let ids = vec![self.graph.nodes[w].op.id, self.graph.nodes[r].op.id];
            self.found_in_session(Pattern::WriteCOInitRead, ids, chain, why, session);
        }
        Ok(())
    }

    /// `w co w' co r` where `r` reads from `w` and `w'` writes its key.
    fn write_co_read(&mut self) -> Outcome {
        for r in 0..self.graph.len() {
            let Some(w) = self.graph.rf(r) else { continue };
            self.in_time("WriteCORead")?;
            let key = &self.graph.nodes[r].key;
            let newer = self.graph.writes.get(key).and_then(|writes| {
                writes
                    .iter()
                    .copied()
                    .find(|&w2| w2 != w && self.graph.before(w, w2) && self.graph.before(w2, r))
            });
            let Some(w2) = newer else { continue };
            let mut steps = self.graph.chain(w, w2);
            let to_read = self.graph.chain(w2, r);
            let session = session_guarantee(&to_read);
            steps.extend(to_read);
            let chain = self.graph.show_chain(w, &steps);
            let why = format!(
                "{} read from {}, but {} overwrote it and is causally before the read",
                self.graph.name(r),
                self.graph.name(w),
                self.graph.name(w2)
            );
            let ids = [w, w2, r].map(|i| self.graph.nodes[i].op.id).to_vec();
            self.found_in_session(Pattern::WriteCORead, ids, chain, why, session);
        }
        Ok(())
    }

    /// CCv: a cycle in co ∪ cf, where `w1 cf w2` when `w1` is causally
    /// before a read of `w2`'s value (so an arbitration order that
    /// explains the read puts `w1` first).
    fn cyclic_cf(&mut self) -> Outcome {
        let n = self.graph.len();
        let mut preds: Vec<Vec<(usize, Edge)>> = (0..n)
            .map(|i| self.graph.predecessors(i).collect())
            .collect();
        for r in 0..n {
            let Some(w2) = self.graph.rf(r) else { continue };
            self.in_time("CyclicCF")?;
            // Per client, only its last write to the key before the read:
            // its earlier ones reach w2 through it by program order, so the
            // graph has at most (clients) conflict edges per read.
            let mut last: BTreeMap<u64, usize> = BTreeMap::new();
            for &w1 in self
                .graph
                .writes
                .get(&self.graph.nodes[r].key)
                .into_iter()
                .flatten()
            {
                if w1 != w2 && self.graph.before(w1, r) {
                    let client = self.graph.nodes[w1].op.client;
                    let later = last
                        .get(&client)
                        .is_none_or(|&seen| self.graph.before(seen, w1));
                    if later {
                        last.insert(client, w1);
                    }
                }
            }
            for w1 in last.into_values() {
                if !self.graph.before(w1, w2) && !preds[w2].contains(&(w1, Edge::Cf)) {
                    preds[w2].push((w1, Edge::Cf));
                }
            }
        }
        let left = unordered(&preds);
        if !left.is_empty() {
            self.cycle(Pattern::CyclicCF, &left, &preds);
        }
        Ok(())
    }

    /// Reports one cycle among `left` (nodes no topological order reaches;
    /// each has a predecessor among them).
    fn cycle(&mut self, pattern: Pattern, left: &[usize], preds: &[Vec<(usize, Edge)>]) {
        let mut inside = vec![false; preds.len()];
        for &i in left {
            inside[i] = true;
        }
        let mut position = vec![usize::MAX; preds.len()];
        let mut walk: Vec<(usize, Edge)> = Vec::new();
        let mut at = left[0];
        let mut edge = Edge::Po;
        // Walking backwards must revisit a node: there are finitely many.
        while position[at] == usize::MAX {
            position[at] = walk.len();
            walk.push((at, edge));
            let Some(&(p, e)) = preds[at].iter().find(|(p, _)| inside[*p]) else {
                return;
            };
            at = p;
            edge = e;
        }
        // walk[j..] runs backwards from `at` round to `at`; reverse it.
        let start = position[at];
        let ring = &walk[start..];
        let mut steps: Vec<(usize, Edge)> = Vec::new();
        let mut incoming = edge;
        for &(node, e) in ring.iter().rev() {
            steps.push((node, incoming));
            incoming = e;
        }
        let chain = self.graph.show_chain(at, &steps);
        let ids: Vec<usize> = ring
            .iter()
            .rev()
            .map(|&(i, _)| self.graph.nodes[i].op.id)
            .collect();
        let why = match pattern {
            Pattern::CyclicCF => "no single order of the writes explains every read: each write on this cycle must come before the next".to_owned(),
            _ => "each operation on this cycle is causally before the next, so one of them is its own cause".to_owned(),
        };
        self.found(pattern, ids, chain, why);
    }

    /// CM, client by client (see `memory.rs`).
    fn causal_memory(&mut self) -> Outcome {
        let mut has_successor = vec![false; self.graph.len()];
        for p in self.graph.po_prev.iter().flatten() {
            has_successor[*p] = true;
        }
        // A client's happened-before only grows along its session, so its
        // last operation's view holds every pattern an earlier one would.
        for o in (0..self.graph.len()).filter(|&o| !has_successor[o]) {
            for found in super::memory::view(self.graph, o, self.deadline)? {
                self.found(
                    found.pattern,
                    found.operations,
                    found.chain,
                    found.explanation,
                );
            }
        }
        Ok(())
    }
}

/// The session guarantee a stale read breaks, read off the chain from the
/// newer write to the read: the reader made that write itself
/// (read-your-writes), or read it before (monotonic reads). Longer
/// chains pass through other clients: a causal violation that no single
/// session guarantee names (monotonic writes and writes-follow-reads hold
/// only in combination with the others there).
fn session_guarantee(to_read: &[(usize, Edge)]) -> Option<Guarantee> {
    match to_read.split_first() {
        _ if to_read.iter().all(|&(_, e)| e == Edge::Po) => Some(Guarantee::ReadYourWrites),
        Some(((_, Edge::Rf), rest)) if rest.iter().all(|&(_, e)| e == Edge::Po) => {
            Some(Guarantee::MonotonicReads)
        }
        _ => None,
    }
}

/// The nodes Kahn's algorithm cannot order: empty iff acyclic.
fn unordered(preds: &[Vec<(usize, Edge)>]) -> Vec<usize> {
    let n = preds.len();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    for (i, list) in preds.iter().enumerate() {
        for &(p, _) in list {
            successors[p].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(i) = ready.pop() {
        for &s in &successors[i] {
            waiting[s] -= 1;
            if waiting[s] == 0 {
                ready.push(s);
            }
        }
    }
    (0..n).filter(|&i| waiting[i] > 0).collect()
}
