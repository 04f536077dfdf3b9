//! Versioned values: siblings tagged with dots, and the causal context a
//! client carries from a read to its next write.
//!
//! A key's state is [`Siblings`] of [`Stored`] values (see
//! [`crate::clock::dotted`]): each value carries the dot of the write that
//! made it, and the state remembers every dot it has seen. A write names
//! the context it read; the coordinator drops exactly the values that
//! context covers and adds the new one, so a write that raced another
//! keeps it as a sibling instead of silently erasing it.
//!
//! Pitfall: last-writer-wins by wall clock loses writes when clocks skew —
//! the "later" write is just the one from the faster clock. It is offered
//! here as a *declared* policy ([`Resolution::LastWriterWins`]) for data
//! that tolerates it; the default hands every sibling to the client.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;

use super::{MAX_CLOUD_DOTS, MAX_CONTEXT_ENTRIES, MAX_KEY_BYTES, MAX_SIBLINGS, MAX_VALUE_BYTES};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot, Siblings};
use crate::clock::vector::VersionVector;
use crate::proto;
use crate::{Error, Result};

/// Counters at or past this are refused: a context "from the future"
/// would make the coordinator's next dot overflow.
pub const MAX_COUNTER: u64 = 1 << 62;

/// One written value and the coordinator's clock when it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub value: Vec<u8>,
    pub stamp_ms: u64,
}

/// A key's state on one replica.
pub type Versioned = Siblings<Stored>;

/// How a read presents concurrent siblings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    /// All of them: the client merges and writes back with the context.
    #[default]
    Siblings,
    /// The one with the latest stamp (ties: the larger dot).
    LastWriterWins,
}

impl Resolution {
    pub fn from_proto(value: i32) -> Result<Self> {
        match proto::Resolution::try_from(value) {
            Ok(proto::Resolution::Siblings) => Ok(Self::Siblings),
            Ok(proto::Resolution::LastWriterWins) => Ok(Self::LastWriterWins),
            Err(_) => Err(Error::UnknownResolution { value }),
        }
    }

    pub fn to_proto(self) -> proto::Resolution {
        match self {
            Self::Siblings => proto::Resolution::Siblings,
            Self::LastWriterWins => proto::Resolution::LastWriterWins,
        }
    }
}

/// The values a read returns under `resolution`, oldest dot first.
/// Siblings with equal values are shown once: a write retried through a
/// second coordinator (its first attempt's reply was lost) makes two dots
/// for one value, and the client has nothing to resolve between them.
pub fn resolve(state: &Versioned, resolution: Resolution) -> Vec<Vec<u8>> {
    match resolution {
        Resolution::Siblings => {
            let mut values: Vec<Vec<u8>> = Vec::new();
            for stored in state.values() {
                if !values.contains(&stored.value) {
                    values.push(stored.value.clone());
                }
            }
            values
        }
        Resolution::LastWriterWins => state
            .dotted_values()
            .max_by_key(|(dot, stored)| (stored.stamp_ms, *dot))
            .map(|(_, stored)| vec![stored.value.clone()])
            .unwrap_or_default(),
    }
}

/// The context a client sends back with its next write: every dot the
/// state has seen, including those of the values it holds.
pub fn client_context(state: &Versioned) -> VersionVector {
    let mut context = state.context().version_vector().clone();
    for (dot, _) in state.dotted_values() {
        context.observe(dot.replica, dot.counter);
    }
    context
}

pub fn context_to_proto(context: &VersionVector) -> Vec<proto::VersionEntry> {
    context
        .iter()
        .map(|(replica, count)| proto::VersionEntry {
            replica: replica.0,
            count,
        })
        .collect()
}

/// A context from the wire: bounded, counters below [`MAX_COUNTER`], each
/// actor belonging to a member (`is_member` judges an actor id).
pub fn context_from_proto(
    entries: &[proto::VersionEntry],
    is_member: impl Fn(ReplicaId) -> bool,
) -> Result<VersionVector> {
    if entries.len() > MAX_CONTEXT_ENTRIES {
        return Err(Error::TooMany {
            what: "context entries",
            count: entries.len(),
            max: MAX_CONTEXT_ENTRIES,
        });
    }
    let mut context = VersionVector::new();
    for entry in entries {
        check_actor(ReplicaId(entry.replica), entry.count, &is_member)?;
        context.observe(ReplicaId(entry.replica), entry.count);
    }
    Ok(context)
}

fn check_actor(
    actor: ReplicaId,
    counter: u64,
    is_member: &impl Fn(ReplicaId) -> bool,
) -> Result<()> {
    if !is_member(actor) {
        return Err(Error::UnknownReplica { replica: actor });
    }
    if counter >= MAX_COUNTER {
        return Err(Error::MalformedState {
            reason: format!("counter {counter} of {actor} is past {MAX_COUNTER}"),
        });
    }
    Ok(())
}

pub fn encode(key: &str, state: &Versioned) -> proto::KeyState {
    let seen = state.context();
    proto::KeyState {
        key: key.to_owned(),
        siblings: state
            .dotted_values()
            .map(|(dot, stored)| proto::Sibling {
                dot: Some(proto::Dot {
                    replica: dot.replica.0,
                    counter: dot.counter,
                }),
                value: stored.value.clone(),
                stamp_ms: stored.stamp_ms,
            })
            .collect(),
        seen: Some(proto::Context {
            compact: context_to_proto(seen.version_vector()),
            cloud: seen
                .cloud()
                .map(|dot| proto::Dot {
                    replica: dot.replica.0,
                    counter: dot.counter,
                })
                .collect(),
        }),
    }
}

/// Checks a key name: non-empty, at most [`MAX_KEY_BYTES`].
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::MissingField { field: "key" });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge {
            what: "key",
            bytes: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::TooLarge {
            what: "value",
            bytes: value.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A key state from a peer, every bound checked: no panics and no
/// unbounded growth from a hostile or broken sender.
pub fn decode(
    state: &proto::KeyState,
    is_member: impl Fn(ReplicaId) -> bool,
) -> Result<(String, Versioned)> {
    check_key(&state.key)?;
    if state.siblings.len() > MAX_SIBLINGS {
        return Err(Error::TooManySiblings {
            key: state.key.clone(),
            max: MAX_SIBLINGS,
        });
    }
    let seen = state.seen.clone().unwrap_or_default();
    let compact = context_from_proto(&seen.compact, &is_member)?;
    if seen.cloud.len() > MAX_CLOUD_DOTS {
        return Err(Error::TooMany {
            what: "dots beyond a gap",
            count: seen.cloud.len(),
            max: MAX_CLOUD_DOTS,
        });
    }
    let mut cloud = BTreeSet::new();
    for dot in &seen.cloud {
        cloud.insert(dot_from_proto(Some(dot), &is_member)?);
    }
    let mut values = BTreeMap::new();
    for sibling in &state.siblings {
        check_value(&sibling.value)?;
        let dot = dot_from_proto(sibling.dot.as_ref(), &is_member)?;
        let stored = Stored {
            value: sibling.value.clone(),
            stamp_ms: sibling.stamp_ms,
        };
        if values.insert(dot, stored).is_some() {
            return Err(Error::MalformedState {
                reason: format!("two siblings share the dot {}:{}", dot.replica, dot.counter),
            });
        }
    }
    let context = CausalContext::from_parts(compact, cloud);
    Ok((state.key.clone(), Siblings::from_parts(values, context)))
}

fn dot_from_proto(dot: Option<&proto::Dot>, is_member: &impl Fn(ReplicaId) -> bool) -> Result<Dot> {
    let dot = dot.ok_or(Error::MissingField { field: "dot" })?;
    if dot.counter == 0 {
        // A zero dot would read as seen by everyone.
        return Err(Error::MalformedState {
            reason: "a dot's counter starts at 1".to_owned(),
        });
    }
    check_actor(ReplicaId(dot.replica), dot.counter, is_member)?;
    Ok(Dot {
        replica: ReplicaId(dot.replica),
        counter: dot.counter,
    })
}

/// What a state weighs in a node's byte budget.
pub fn weight(key: &str, state: &Versioned) -> usize {
    let values: usize = state.values().map(|stored| stored.value.len() + 24).sum();
    key.len() + values + 16 * (state.context().version_vector().len() + state.context().cloud_len())
}

/// A fingerprint of a key's state, for Merkle leaves: equal states, equal
/// digests (the encoding iterates ordered maps, so it is canonical).
pub fn digest(key: &str, state: &Versioned) -> u64 {
    patterns::hashing::key_hash(&encode(key, state).encode_to_vec())
}
