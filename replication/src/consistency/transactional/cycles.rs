//! Finding and naming cycles, Elle's way: strongly connected components
//! first, then a breadth-first search *inside* one component per
//! candidate edge, for each shape in turn.
//!
//! - `G0`: components over ww edges; for each ww edge inside one, the
//!   shortest ww path back closes a cycle.
//! - `G1c`: components over ww+wr; for each wr edge inside one, a ww+wr
//!   path back.
//! - `G-single`: components over ww+wr+rw; for each rw edge inside one, a
//!   path back using *no* rw edge (so the cycle has exactly one).
//! - `G2-item`: failing that, any path back: the cycle has two or more rw.
//!
//! Every cycle through a candidate edge is found (a component is strongly
//! connected, so the path back exists), which makes the search complete
//! for each shape; BFS gives the shortest. An acyclic history costs three
//! Tarjan passes, O(transactions + edges). A cyclic one costs one BFS per
//! candidate edge, bounded by the time budget and by `cap` cycles per
//! anomaly: once a shape has `cap` cycles, its search stops.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use super::anomalies::{Anomaly, CycleShape};
use super::graph::{Edge, EdgeKind, Graph};

const WW: u8 = EdgeKind::Ww.bit();
const WR: u8 = EdgeKind::Wr.bit();
const RW: u8 = EdgeKind::Rw.bit();
const ORDER: u8 = EdgeKind::Realtime.bit() | EdgeKind::Process.bit();

/// A cycle: each step is a transaction index and the edge leaving it; the
/// last edge returns to the first transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub anomaly: Anomaly,
    pub steps: Vec<(usize, Edge)>,
}

/// What the search found, and whether it finished.
#[derive(Clone, Debug, Default)]
pub struct CycleSearch {
    pub cycles: Vec<Cycle>,
    /// False when the deadline passed: absent shapes are then unproven.
    pub complete: bool,
}

struct Searcher<'a> {
    graph: &'a Graph,
    deadline: Option<Instant>,
    out_of_time: bool,
    visits: u64,
    stamp: Vec<u32>,
    generation: u32,
    parent: Vec<(u32, u32)>,
    queue: VecDeque<u32>,
    cap: usize,
    seen: HashSet<(Anomaly, Vec<u32>)>,
    found: Vec<Cycle>,
}

/// Searches the data edges (ww/wr/rw); when `order` edges (real-time,
/// process) exist and the data alone is acyclic, searches again with them
/// counted as order, naming the shapes `…-realtime` / `…-process`.
pub fn find_cycles(graph: &Graph, deadline: Option<Instant>, cap: usize) -> CycleSearch {
    let mut searcher = Searcher {
        graph,
        deadline,
        out_of_time: false,
        visits: 0,
        stamp: vec![0; graph.len()],
        generation: 0,
        parent: vec![(0, 0); graph.len()],
        queue: VecDeque::new(),
        cap: cap.max(1),
        seen: HashSet::new(),
        found: Vec::new(),
    };
    searcher.search(0);
    let has_order = graph
        .adjacency
        .iter()
        .flatten()
        .any(|e| e.evidence.kind().bit() & ORDER != 0);
    // Simplified: Elle reports real-time variants alongside plain cycles;
    // here they are sought only when the data alone is acyclic, since a
    // plain cycle already rules out every level a real-time one does.
    if searcher.found.is_empty() && has_order && !searcher.out_of_time {
        searcher.search(ORDER);
    }
    CycleSearch {
        complete: !searcher.out_of_time,
        cycles: searcher.found,
    }
}

impl Searcher<'_> {
    /// Checked before each candidate edge, so even a zero budget stops
    /// the search (and says so) instead of passing unexamined.
    fn expired(&mut self) -> bool {
        if !self.out_of_time && self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.out_of_time = true;
        }
        self.out_of_time
    }

    fn count(&self, anomaly: Anomaly) -> usize {
        self.found.iter().filter(|c| c.anomaly == anomaly).count()
    }

    /// Has this shape's family (plain, or both order variants) reached
    /// the cap?
    fn full(&self, shape: CycleShape, extra: u8) -> bool {
        let found = if extra == 0 {
            self.count(shape.anomaly())
        } else {
            self.count(Anomaly::Realtime(shape)) + self.count(Anomaly::Process(shape))
        };
        found >= self.cap
    }

    /// One pass per shape; `extra` edges count as write-write order.
    fn search(&mut self, extra: u8) {
        let passes = [
            (WW | extra, WW | extra, CycleShape::G0),
            (WW | WR | extra, WR, CycleShape::G1c),
        ];
        for (mask, candidates, shape) in passes {
            let components = self.graph.components(mask);
            for (from, edge) in self.candidates(&components, candidates) {
                if self.expired() || self.full(shape, extra) {
                    break;
                }
                if let Some(path) = self.path(edge.to, from, mask, &components) {
                    self.record(from, edge, path, extra);
                }
            }
        }
        let all = WW | WR | RW | extra;
        let components = self.graph.components(all);
        for (from, edge) in self.candidates(&components, RW) {
            if self.expired()
                || (self.full(CycleShape::GSingle, extra) && self.full(CycleShape::G2Item, extra))
            {
                break;
            }
            // A path back without rw edges makes this the cycle's only rw.
            let path = if self.full(CycleShape::GSingle, extra) {
                None
            } else {
                self.path(edge.to, from, WW | WR | extra, &components)
            };
            match path {
                Some(path) => self.record(from, edge, path, extra),
                None if !self.full(CycleShape::G2Item, extra) => {
                    if let Some(path) = self.path(edge.to, from, all, &components) {
                        self.record(from, edge, path, extra);
                    }
                }
                None => {}
            }
        }
    }

    /// Edges of kind `kinds` whose ends share a component.
    fn candidates(&self, components: &[u32], kinds: u8) -> Vec<(usize, Edge)> {
        let mut out = Vec::new();
        for (from, edges) in self.graph.adjacency.iter().enumerate() {
            for edge in edges {
                if edge.evidence.kind().bit() & kinds != 0
                    && components[from] == components[edge.to as usize]
                {
                    out.push((from, *edge));
                }
            }
        }
        out
    }

    /// Classifies the cycle `from —edge→ … path … → from` and keeps it
    /// unless the same set of transactions was already reported.
    fn record(&mut self, from: usize, edge: Edge, path: Vec<(usize, Edge)>, extra: u8) {
        let mut steps = Vec::with_capacity(path.len() + 1);
        steps.push((from, edge));
        steps.extend(path);
        let kinds: Vec<EdgeKind> = steps.iter().map(|(_, e)| e.evidence.kind()).collect();
        let rw = kinds.iter().filter(|k| **k == EdgeKind::Rw).count();
        let shape = match rw {
            0 if kinds.contains(&EdgeKind::Wr) => CycleShape::G1c,
            0 => CycleShape::G0,
            1 => CycleShape::GSingle,
            _ => CycleShape::G2Item,
        };
        let anomaly = if extra == 0 {
            shape.anomaly()
        } else if kinds.contains(&EdgeKind::Realtime) {
            Anomaly::Realtime(shape)
        } else {
            Anomaly::Process(shape)
        };
        if self.full(shape, extra) {
            return;
        }
        // The same transactions can close cycles of different shapes; a
        // G2-item found first must not hide a G-single through them.
        let mut nodes: Vec<u32> = steps.iter().map(|(n, _)| *n as u32).collect();
        nodes.sort_unstable();
        if self.seen.insert((anomaly, nodes)) {
            self.found.push(Cycle { anomaly, steps });
        }
    }

    /// Shortest path `start → goal` over `mask` edges inside `goal`'s
    /// component, as (node, edge leaving it) steps.
    fn path(
        &mut self,
        start: u32,
        goal: usize,
        mask: u8,
        components: &[u32],
    ) -> Option<Vec<(usize, Edge)>> {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
        let component = components[goal];
        self.queue.clear();
        self.queue.push_back(start);
        self.stamp[start as usize] = self.generation;
        while let Some(node) = self.queue.pop_front() {
            self.visits += 1;
            if self.visits.is_multiple_of(4096)
                && self.deadline.is_some_and(|d| Instant::now() >= d)
            {
                self.out_of_time = true;
                return None;
            }
            if node as usize == goal {
                return Some(self.unwind(start, goal));
            }
            for (index, edge) in self.graph.adjacency[node as usize].iter().enumerate() {
                let next = edge.to as usize;
                if edge.evidence.kind().bit() & mask != 0
                    && components[next] == component
                    && self.stamp[next] != self.generation
                {
                    self.stamp[next] = self.generation;
                    self.parent[next] = (node, index as u32);
                    self.queue.push_back(edge.to);
                }
            }
        }
        None
    }

    fn unwind(&self, start: u32, goal: usize) -> Vec<(usize, Edge)> {
        let mut steps = Vec::new();
        let mut node = goal;
        while node != start as usize {
            let (previous, index) = self.parent[node];
            steps.push((
                previous as usize,
                self.graph.adjacency[previous as usize][index as usize],
            ));
            node = previous as usize;
        }
        steps.reverse();
        steps
    }
}
