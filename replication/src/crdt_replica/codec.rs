//! Object states on the wire, and the checks every decoded state passes.
//!
//! A state arriving from a peer is untrusted input: replica ids must
//! belong to the cluster (so no vector grows past the membership), dot
//! counters must be plausible, elements and names must fit their limits,
//! and an OR-Set may not list an element twice. Any violation refuses the
//! whole message before anything is merged. Decoded states are valid by
//! construction: dots the context does not cover are added to it.

use std::collections::{BTreeMap, BTreeSet};

use super::member_of;
use super::object::{Object, ObjectKey};
use super::{MAX_ELEMENT_BYTES, MAX_NAME_BYTES};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot, Siblings};
use crate::clock::hlc::HlcTimestamp;
use crate::clock::vector::VersionVector;
use crate::crdt::lww::{HlcLww, Stamped};
use crate::crdt::{GCounter, MvRegister, OrSet, PnCounter};
use crate::proto::{self, object_state::State};
use crate::{Error, Result};

/// Counters at or above this are refused, here and where updates make
/// them ([`crate::crdt::gcounter::MAX_COUNT`]): far from `u64::MAX`, no
/// arithmetic on counts or dots can overflow, and a replica never makes a
/// value its peers would refuse.
pub const MAX_COUNTER: u64 = crate::crdt::gcounter::MAX_COUNT + 1;

/// The most dots beyond a gap one decoded context may hold. Honest
/// replicas keep a few (deltas that arrived out of order); a bound keeps a
/// forged one from costing memory and every reply's size.
pub const MAX_CLOUD_DOTS: usize = 16 * 1024;

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedState {
        reason: reason.into(),
    }
}

/// Who may appear in a state: the cluster's members, and the actors of
/// their incarnations.
#[derive(Clone, Debug)]
pub struct Members(pub BTreeSet<ReplicaId>);

impl Members {
    /// A member id (who sends gossip).
    pub fn member(&self, replica: u64) -> Result<ReplicaId> {
        let replica = ReplicaId(replica);
        if self.0.contains(&replica) {
            Ok(replica)
        } else {
            Err(Error::UnknownReplica { replica })
        }
    }

    /// An actor id (who made an update): one of a member's incarnations.
    pub fn actor(&self, actor: u64) -> Result<ReplicaId> {
        let actor = ReplicaId(actor);
        self.member(member_of(actor).0)?;
        Ok(actor)
    }

    fn counter(&self, count: u64) -> Result<u64> {
        if count >= MAX_COUNTER {
            return Err(malformed(format!("counter {count} is implausibly large")));
        }
        Ok(count)
    }

    pub fn dot(&self, dot: Option<&proto::Dot>) -> Result<Dot> {
        let dot = dot.ok_or_else(|| malformed("a dot is missing"))?;
        let counter = self.counter(dot.counter)?;
        if counter == 0 {
            return Err(malformed("dot counters start at 1"));
        }
        Ok(Dot {
            replica: self.actor(dot.replica)?,
            counter,
        })
    }

    pub fn version_vector(&self, entries: &[proto::VersionEntry]) -> Result<VersionVector> {
        let mut vector = VersionVector::new();
        for entry in entries {
            vector.observe(self.actor(entry.replica)?, self.counter(entry.count)?);
        }
        Ok(vector)
    }

    pub fn context(&self, context: Option<&proto::Context>) -> Result<CausalContext> {
        let Some(context) = context else {
            return Ok(CausalContext::new());
        };
        if context.cloud.len() > MAX_CLOUD_DOTS {
            return Err(Error::TooMany {
                what: "dots beyond a gap in one context",
                count: context.cloud.len(),
                max: MAX_CLOUD_DOTS,
            });
        }
        let cloud = context
            .cloud
            .iter()
            .map(|dot| self.dot(Some(dot)))
            .collect::<Result<Vec<_>>>()?;
        Ok(CausalContext::from_parts(
            self.version_vector(&context.compact)?,
            cloud,
        ))
    }

    fn counts(&self, state: Option<&proto::GCounterState>) -> Result<GCounter> {
        let counts = state
            .map(|state| state.counts.as_slice())
            .unwrap_or_default();
        let vector = self.version_vector(counts)?;
        Ok(GCounter::from_entries(vector.iter()))
    }

    /// A decoded object: its key and its state.
    pub fn object(&self, state: &proto::ObjectState) -> Result<(ObjectKey, Object)> {
        check_text("object name", &state.name, MAX_NAME_BYTES)?;
        let object = match &state.state {
            None => return Err(malformed("an object state without a type")),
            Some(State::GCounter(counter)) => Object::GCounter(self.counts(Some(counter))?),
            Some(State::PnCounter(counter)) => Object::PnCounter(PnCounter::from_parts(
                self.counts(counter.increments.as_ref())?,
                self.counts(counter.decrements.as_ref())?,
            )),
            Some(State::OrSet(set)) => {
                let mut entries = BTreeMap::new();
                for entry in &set.entries {
                    check_text("set element", &entry.element, MAX_ELEMENT_BYTES)?;
                    let dots = entry
                        .dots
                        .iter()
                        .map(|dot| self.dot(Some(dot)))
                        .collect::<Result<BTreeSet<_>>>()?;
                    if entries.insert(entry.element.clone(), dots).is_some() {
                        return Err(malformed("a set lists an element twice"));
                    }
                }
                Object::OrSet(OrSet::from_parts(
                    entries,
                    self.context(set.context.as_ref())?,
                ))
            }
            Some(State::MvRegister(register)) => {
                let mut values = BTreeMap::new();
                for sibling in &register.siblings {
                    check_text("register value", &sibling.value, MAX_ELEMENT_BYTES)?;
                    if values
                        .insert(self.dot(sibling.dot.as_ref())?, sibling.value.clone())
                        .is_some()
                    {
                        return Err(malformed("two siblings share a dot"));
                    }
                }
                let context = self.context(register.context.as_ref())?;
                Object::MvRegister(MvRegister::from_siblings(Siblings::from_parts(
                    values, context,
                )))
            }
            Some(State::LwwRegister(register)) => {
                check_text("register value", &register.value, MAX_ELEMENT_BYTES)?;
                let winner = match register.stamp {
                    None => None,
                    // The counter's last value would leave the receiving
                    // clock nowhere to go.
                    Some(stamp) if stamp.logical == u32::MAX => {
                        return Err(malformed("a hybrid timestamp with an exhausted counter"));
                    }
                    Some(stamp) => Some(Stamped {
                        stamp: HlcTimestamp {
                            wall_ns: stamp.wall_ns,
                            logical: stamp.logical,
                        },
                        writer: self.actor(register.writer)?,
                        value: register.value.clone(),
                    }),
                };
                Object::LwwRegister(HlcLww::from_winner(winner))
            }
        };
        let key = ObjectKey {
            kind: object.kind(),
            name: state.name.clone(),
        };
        Ok((key, object))
    }
}

/// Refuses text over `max` bytes, naming what it was but not quoting it.
pub fn check_text(what: &'static str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::TooLarge {
            what,
            bytes: text.len(),
            max,
        });
    }
    Ok(())
}

pub fn version_entries(vector: &VersionVector) -> Vec<proto::VersionEntry> {
    vector
        .iter()
        .map(|(replica, count)| proto::VersionEntry {
            replica: replica.0,
            count,
        })
        .collect()
}

fn dot(dot: Dot) -> proto::Dot {
    proto::Dot {
        replica: dot.replica.0,
        counter: dot.counter,
    }
}

pub fn context(context: &CausalContext) -> proto::Context {
    proto::Context {
        compact: version_entries(context.version_vector()),
        cloud: context.cloud().map(dot).collect(),
    }
}

fn counts(counter: &GCounter) -> proto::GCounterState {
    proto::GCounterState {
        counts: counter
            .entries()
            .map(|(replica, count)| proto::VersionEntry {
                replica: replica.0,
                count,
            })
            .collect(),
    }
}

/// An object's state (or delta) on the wire.
pub fn encode(name: &str, object: &Object) -> proto::ObjectState {
    let state = match object {
        Object::GCounter(counter) => State::GCounter(counts(counter)),
        Object::PnCounter(counter) => {
            let (increments, decrements) = counter.parts();
            State::PnCounter(proto::PnCounterState {
                increments: Some(counts(increments)),
                decrements: Some(counts(decrements)),
            })
        }
        Object::OrSet(set) => State::OrSet(proto::OrSetState {
            entries: set
                .entries()
                .map(|(element, dots)| proto::or_set_state::Entry {
                    element: element.clone(),
                    dots: dots.iter().copied().map(dot).collect(),
                })
                .collect(),
            context: Some(context(set.context())),
        }),
        Object::MvRegister(register) => State::MvRegister(proto::MvRegisterState {
            siblings: register
                .siblings()
                .dotted_values()
                .map(|(at, value)| proto::mv_register_state::Sibling {
                    dot: Some(dot(at)),
                    value: value.clone(),
                })
                .collect(),
            context: Some(context(register.siblings().context())),
        }),
        Object::LwwRegister(register) => State::LwwRegister(match register.winner() {
            None => proto::LwwRegisterState::default(),
            Some(winner) => proto::LwwRegisterState {
                stamp: Some(proto::HlcTimestamp {
                    wall_ns: winner.stamp.wall_ns,
                    logical: winner.stamp.logical,
                }),
                writer: winner.writer.0,
                value: winner.value.clone(),
            },
        }),
    };
    proto::ObjectState {
        name: name.to_owned(),
        state: Some(state),
    }
}

/// The hybrid timestamp a state carries, if any: checked against the
/// local clock before anything is merged.
pub fn stamp(object: &Object) -> Option<HlcTimestamp> {
    match object {
        Object::LwwRegister(register) => register.winner().map(|winner| winner.stamp),
        _ => None,
    }
}
