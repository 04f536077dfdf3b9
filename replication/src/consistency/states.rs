//! One key's operations compiled for the search: states become numbers.
//!
//! The search steps the model millions of times. Stepping [`Datum`]s
//! costs an `Arc` clone per step, and the memo must hash the state — for
//! a key-value string that has grown by a hundred appends, copying and
//! hashing a kilobyte per step (what Porcupine does). Here every distinct
//! value has one number, so a read is an integer comparison, a write an
//! integer copy, and the memo keys on the number.
//!
//! Appends never build the string: a string is a node (the state it
//! extends, the piece appended) with a polynomial hash and a length, both
//! computed from the parent's in O(1). A new node is looked up by (hash,
//! length); only a match is confirmed by spelling both strings out, so
//! equal strings reached by different paths (or equal to a value some
//! read returned) get the same number and the verdict never rests on a
//! hash. A (state, piece) pair seen before is one table lookup.
//!
//! Memory: ~64 bytes per distinct state plus the values the operations
//! carry; [`States::words`] reports it and the search charges it against
//! the memo's cap.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::history::{Command, Datum, Operation, Reply};
use super::memo::FxHasher;
use super::model::Model;

type Fx = BuildHasherDefault<FxHasher>;

/// What an operation does to a numbered state.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// Legal iff the state is this one; no change (a read that returned it).
    Read(u32),
    /// Always legal, no change (a read with unknown outcome).
    Any,
    /// Always legal; the state becomes this one (put, write).
    Set(u32),
    /// A compare-and-set that swapped: legal iff the state is `expected`.
    Swapped { expected: u32, new: u32 },
    /// A compare-and-set that failed: legal iff the state is not `expected`.
    Refused { expected: u32 },
    /// A compare-and-set with unknown outcome: swaps iff it can.
    MaybeSwap { expected: u32, new: u32 },
    /// Always legal; appends this piece to the state's text.
    Append(u32),
}

/// The multiplier of the polynomial string hash (odd, so invertible).
const BASE: u64 = 0x0000_0100_0000_01B3;

/// A string's hash: extending `a` by `b` gives `h(a)·BASE^|b| + h(b)`.
fn text_hash(text: &str) -> u64 {
    text.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(BASE).wrapping_add(u64::from(b)))
}

/// How the model's `append` spells a value.
fn text_of(value: &Datum) -> String {
    match value {
        Datum::Str(s) => s.to_string(),
        Datum::Int(n) => n.to_string(),
        Datum::Absent => String::new(),
    }
}

/// A numbered state: a value an operation carries, or a string built by
/// appending a piece to another state.
struct Node {
    /// `NONE` for a value; otherwise the state appended to.
    parent: u32,
    /// The piece appended (or, for a value, its index in `values`).
    piece: u32,
    /// Hash and length of the state's text as `append` spells it.
    hash: u64,
    len: usize,
    /// Whether the state is a string (appends always make one).
    is_str: bool,
    /// The next state with the same (hash, length), or `NONE`.
    same_key: u32,
}

const NONE: u32 = u32::MAX;

/// The numbered states of one key and the transitions met so far.
pub(super) struct States {
    steps: Vec<Step>,
    nodes: Vec<Node>,
    values: Vec<Datum>,
    ids: HashMap<Datum, u32, Fx>,
    /// Appended pieces: text, hash, BASE^len.
    pieces: Vec<(Box<str>, u64, u64)>,
    /// (state, piece) → the state after.
    appended: HashMap<(u32, u32), u32, Fx>,
    /// (hash, length) of a string state → the first state with them.
    by_text: HashMap<(u64, usize), u32, Fx>,
    bytes: usize,
}

/// The number of the initial state.
pub(super) const INIT: u32 = 0;

impl States {
    pub(super) fn new(model: Model, ops: &[&Operation]) -> Self {
        let mut states = Self {
            steps: Vec::with_capacity(ops.len()),
            // Room for the values the operations carry and as many
            // appended states again before the first regrowth.
            nodes: Vec::with_capacity(2 * ops.len()),
            values: Vec::with_capacity(ops.len()),
            ids: HashMap::with_capacity_and_hasher(ops.len(), Fx::default()),
            pieces: Vec::new(),
            appended: HashMap::with_capacity_and_hasher(ops.len(), Fx::default()),
            by_text: HashMap::with_capacity_and_hasher(2 * ops.len(), Fx::default()),
            bytes: 0,
        };
        let init = states.intern(model.init());
        debug_assert_eq!(init, INIT);
        for op in ops {
            let step = states.compile(op);
            states.steps.push(step);
        }
        states
    }

    /// Mirrors [`Model::step`] case by case (the tests check they agree).
    fn compile(&mut self, op: &Operation) -> Step {
        match (&op.command, &op.reply) {
            (Command::Get | Command::Read, Reply::Value(seen)) => {
                Step::Read(self.intern(seen.clone()))
            }
            (Command::Get | Command::Read, _) => Step::Any,
            (Command::Put(value) | Command::Write(value), _) => {
                Step::Set(self.intern(value.clone()))
            }
            (Command::Append(value), _) => {
                let text = text_of(value);
                let pow = (0..text.len()).fold(1u64, |p, _| p.wrapping_mul(BASE));
                self.bytes += text.len() + 32;
                self.pieces
                    .push((text.as_str().into(), text_hash(&text), pow));
                Step::Append(self.pieces.len() as u32 - 1)
            }
            (Command::Cas { expected, new }, reply) => {
                let expected = self.intern(expected.clone());
                let new = self.intern(new.clone());
                match reply {
                    Reply::Swapped(true) => Step::Swapped { expected, new },
                    Reply::Swapped(false) => Step::Refused { expected },
                    _ => Step::MaybeSwap { expected, new },
                }
            }
        }
    }

    /// The number of a value an operation carries.
    fn intern(&mut self, value: Datum) -> u32 {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let (hash, len) = match &value {
            Datum::Str(s) => (text_hash(s), s.len()),
            other => {
                let text = text_of(other);
                (text_hash(&text), text.len())
            }
        };
        let id = self.push(Node {
            parent: NONE,
            piece: self.values.len() as u32,
            hash,
            len,
            is_str: matches!(value, Datum::Str(_)),
            same_key: NONE,
        });
        self.bytes += len + 64;
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    fn push(&mut self, mut node: Node) -> u32 {
        let id = self.nodes.len() as u32;
        if node.is_str
            && let Some(first) = self.by_text.insert((node.hash, node.len), id)
        {
            node.same_key = first;
        }
        self.nodes.push(node);
        id
    }

    /// The state after operation `i` runs on `state`, or `None` if its
    /// reply is impossible there.
    #[inline]
    pub(super) fn step(&mut self, state: u32, i: usize) -> Option<u32> {
        match self.steps[i] {
            Step::Read(seen) => (seen == state).then_some(state),
            Step::Any => Some(state),
            Step::Set(value) => Some(value),
            Step::Swapped { expected, new } => (expected == state).then_some(new),
            Step::Refused { expected } => (expected != state).then_some(state),
            Step::MaybeSwap { expected, new } => Some(if expected == state { new } else { state }),
            Step::Append(piece) => match self.appended.get(&(state, piece)) {
                Some(&after) => Some(after),
                None => Some(self.append(state, piece)),
            },
        }
    }

    /// `state` extended by `piece`, numbered: an existing state if its
    /// text is the same (confirmed letter by letter), else a new one.
    #[cold]
    fn append(&mut self, state: u32, piece: u32) -> u32 {
        let (_, piece_hash, pow) = self.pieces[piece as usize];
        let parent = &self.nodes[state as usize];
        let hash = parent.hash.wrapping_mul(pow).wrapping_add(piece_hash);
        let len = parent.len + self.pieces[piece as usize].0.len();
        let mut candidate = self.by_text.get(&(hash, len)).copied().unwrap_or(NONE);
        let mut text: Option<String> = None;
        while candidate != NONE {
            let spelled =
                text.get_or_insert_with(|| self.text(state) + &self.pieces[piece as usize].0);
            if *spelled == self.text(candidate) {
                self.appended.insert((state, piece), candidate);
                return candidate;
            }
            candidate = self.nodes[candidate as usize].same_key;
        }
        let id = self.push(Node {
            parent: state,
            piece,
            hash,
            len,
            is_str: true,
            same_key: NONE,
        });
        self.appended.insert((state, piece), id);
        id
    }

    /// A state's text, as `append` spells it.
    fn text(&self, mut state: u32) -> String {
        let mut pieces = Vec::new();
        while self.nodes[state as usize].parent != NONE {
            let node = &self.nodes[state as usize];
            pieces.push(node.piece);
            state = node.parent;
        }
        let mut text = text_of(&self.values[self.nodes[state as usize].piece as usize]);
        for &piece in pieces.iter().rev() {
            text.push_str(&self.pieces[piece as usize].0);
        }
        text
    }

    /// The value a number stands for.
    pub(super) fn value(&self, state: u32) -> Datum {
        let node = &self.nodes[state as usize];
        if node.parent == NONE {
            self.values[node.piece as usize].clone()
        } else {
            Datum::text(&self.text(state))
        }
    }

    /// How much memory the table holds, in 64-bit words: ~40 bytes per
    /// node and ~24 per table slot, plus the values' bytes.
    pub(super) fn words(&self) -> usize {
        (self.bytes + self.nodes.len() * 40 + (self.appended.len() + self.by_text.len()) * 24) / 8
    }
}

#[cfg(test)]
mod tests;
