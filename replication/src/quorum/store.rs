//! One node's replica store: key states, merged and bounded, and the
//! hints it holds for others.
//!
//! Pure: no clocks, no network. The coordinator and the peer handlers
//! lock it briefly and never across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::hints::Hints;
use super::merkle::{MerkleTree, leaf_of};
use super::version::{self, Stored, Versioned};
use super::{MAX_CONTEXT_ENTRIES, MAX_KEYS, MAX_SIBLINGS, MAX_STORE_BYTES};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Siblings};
use crate::clock::vector::VersionVector;
use crate::{Error, Result};

/// A store shared by a node's handlers (and kept by a test across a
/// simulated crash, like a disk).
#[derive(Clone, Debug, Default)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // Every method leaves the store consistent before it can panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Key states and hints.
#[derive(Debug, Default)]
pub struct Store {
    keys: BTreeMap<String, Versioned>,
    bytes: usize,
    /// Bumped on every change: Merkle trees are cached per version.
    version: u64,
    pub hints: Hints,
}

impl Store {
    pub fn get(&self, key: &str) -> Option<&Versioned> {
        self.keys.get(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &Versioned)> {
        self.keys.iter().map(|(key, state)| (key.as_str(), state))
    }

    /// Coordinates a write as `actor`: the values the client's `context`
    /// covers are replaced by `value`, under a fresh dot. Returns the
    /// key's whole new state, to send to the other replicas.
    ///
    /// Pitfall: a context is client input. Merged as it comes, an entry
    /// "from the future" (actor A at 1,000 when A made 1 write) marks A's
    /// next writes as already seen, and every replica silently drops
    /// them — acknowledged writes vanish. So an entry for this node's own
    /// actor past the writes it made is refused (it issued every one of
    /// them and stored it first), and entries for other actors are
    /// clamped to the dots this replica has seen of them. The cost: a
    /// value the client saw but this coordinator has not yet stays as a
    /// sibling instead of being replaced — never lost; the next read
    /// shows both and a write resolves them.
    pub fn coordinate(
        &mut self,
        actor: ReplicaId,
        key: &str,
        context: &VersionVector,
        value: Stored,
    ) -> Result<Versioned> {
        let mut state = self.keys.get(key).cloned().unwrap_or_default();
        let made = state.context().highest(actor);
        let claimed = context.get(actor);
        if claimed > made {
            return Err(Error::ContextAhead {
                actor,
                claimed,
                made,
            });
        }
        if made.saturating_add(1) >= version::MAX_COUNTER {
            return Err(Error::CounterOverflow {
                replica: actor,
                max: version::MAX_COUNTER - 1,
            });
        }
        let mut clamped = VersionVector::new();
        for (other, count) in context.iter() {
            clamped.observe(other, count.min(state.context().highest(other)));
        }
        let read = Siblings::from_parts(
            BTreeMap::new(),
            CausalContext::from_parts(clamped.clone(), []),
        );
        state.merge(&read);
        state.write(actor, &clamped, value);
        self.replace(key, state.clone())?;
        Ok(state)
    }

    /// Merges a state a peer sent. Returns whether anything changed.
    pub fn merge(&mut self, key: &str, incoming: &Versioned) -> Result<bool> {
        let mut state = self.keys.get(key).cloned().unwrap_or_default();
        let before = state.clone();
        state.merge(incoming);
        if state == before && self.keys.contains_key(key) {
            return Ok(false);
        }
        self.replace(key, state)?;
        Ok(true)
    }

    /// Installs `state` under `key` if the bounds allow it.
    fn replace(&mut self, key: &str, state: Versioned) -> Result<()> {
        if state.len() > MAX_SIBLINGS {
            return Err(Error::TooManySiblings {
                key: key.to_owned(),
                max: MAX_SIBLINGS,
            });
        }
        // Peers refuse a context past the bound, so none is stored either.
        let entries = state.context().version_vector().len();
        if entries > MAX_CONTEXT_ENTRIES {
            return Err(Error::TooMany {
                what: "context entries",
                count: entries,
                max: MAX_CONTEXT_ENTRIES,
            });
        }
        let old = self.keys.get(key).map(|old| version::weight(key, old));
        if old.is_none() && self.keys.len() >= MAX_KEYS {
            return Err(Error::StoreFull {
                what: "keys",
                max: MAX_KEYS,
            });
        }
        let bytes = self.bytes - old.unwrap_or(0) + version::weight(key, &state);
        if bytes > MAX_STORE_BYTES && bytes > self.bytes {
            return Err(Error::StoreFull {
                what: "bytes",
                max: MAX_STORE_BYTES,
            });
        }
        self.bytes = bytes;
        self.version += 1;
        self.keys.insert(key.to_owned(), state);
        Ok(())
    }

    /// The Merkle tree over the keys `shared` selects.
    pub fn merkle_tree(&self, shared: impl Fn(&str) -> bool) -> MerkleTree {
        MerkleTree::build(
            self.keys
                .iter()
                .filter(|(key, _)| shared(key))
                .map(|(key, state)| (key.as_str(), version::digest(key, state))),
        )
    }

    /// The (key, digest) pairs `shared` selects in the leading leaves of
    /// `leaves` (ascending, deduplicated), whole leaves only, at most
    /// `limit` pairs; and how many leaves they cover.
    ///
    /// Pitfall: cutting the key list at `limit` in key order would make
    /// every exchange compare the same first keys forever — once those
    /// are repaired, the rest never move. Whole leaves that were compared
    /// are fully repaired, so the next exchange sees them equal and moves
    /// on to the leaves after them. A single leaf over `limit` (needs
    /// hash-chosen keys: the average leaf holds `MAX_KEYS` / 1,024 ≈ 98)
    /// covers nothing and stays for read repair.
    pub fn leaf_entries(
        &self,
        leaves: &[u32],
        shared: impl Fn(&str) -> bool,
        limit: usize,
    ) -> (Vec<(String, u64)>, usize) {
        let mut by_leaf: BTreeMap<u32, Vec<(String, u64)>> =
            leaves.iter().map(|&leaf| (leaf, Vec::new())).collect();
        for (key, state) in &self.keys {
            if let Some(entries) = by_leaf.get_mut(&leaf_of(key))
                && shared(key)
            {
                entries.push((key.clone(), version::digest(key, state)));
            }
        }
        let mut out = Vec::new();
        let mut covered = 0;
        for entries in by_leaf.into_values() {
            if out.len() + entries.len() > limit {
                break;
            }
            out.extend(entries);
            covered += 1;
        }
        (out, covered)
    }
}
