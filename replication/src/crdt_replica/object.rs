//! The objects a replica hosts: one enum over the CRDT types, the
//! operations clients send, and the values they read.

use std::fmt;

use crate::clock::ReplicaId;
use crate::clock::hlc::HybridClock;
use crate::clock::physical::PhysicalClock;
use crate::clock::vector::VersionVector;
use crate::crdt::lww::HlcLww;
use crate::crdt::{Crdt, GCounter, MvRegister, OrSet, PnCounter};
use crate::proto;
use crate::{Error, Result};

/// An object's CRDT type. Objects are named within their type, so two
/// replicas creating `cart` as different types never conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GCounter,
    PnCounter,
    OrSet,
    MvRegister,
    LwwRegister,
}

impl Kind {
    /// The type a request names; unspecified or unknown values refused.
    pub fn from_proto(value: i32) -> Result<Self> {
        match proto::CrdtType::try_from(value) {
            Ok(proto::CrdtType::GCounter) => Ok(Self::GCounter),
            Ok(proto::CrdtType::PnCounter) => Ok(Self::PnCounter),
            Ok(proto::CrdtType::OrSet) => Ok(Self::OrSet),
            Ok(proto::CrdtType::MvRegister) => Ok(Self::MvRegister),
            Ok(proto::CrdtType::LwwRegister) => Ok(Self::LwwRegister),
            Ok(proto::CrdtType::Unspecified) | Err(_) => Err(Error::UnknownObjectType { value }),
        }
    }

    pub fn to_proto(self) -> proto::CrdtType {
        match self {
            Self::GCounter => proto::CrdtType::GCounter,
            Self::PnCounter => proto::CrdtType::PnCounter,
            Self::OrSet => proto::CrdtType::OrSet,
            Self::MvRegister => proto::CrdtType::MvRegister,
            Self::LwwRegister => proto::CrdtType::LwwRegister,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GCounter => "G-Counter",
            Self::PnCounter => "PN-Counter",
            Self::OrSet => "OR-Set",
            Self::MvRegister => "MV register",
            Self::LwwRegister => "LWW register",
        })
    }
}

/// An object's identity: its type and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

/// One hosted object.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    GCounter(GCounter),
    PnCounter(PnCounter),
    OrSet(OrSet<String>),
    MvRegister(MvRegister<String>),
    LwwRegister(HlcLww<String>),
}

/// What a client asks an object to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    Increment(u64),
    Add(i64),
    Insert(String),
    Remove(String),
    /// `context`: what the writer read; `None` replaces what this
    /// replica holds.
    Write {
        value: String,
        context: Option<VersionVector>,
    },
    Assign(String),
}

impl Operation {
    /// The only type this operation applies to.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Increment(_) => Kind::GCounter,
            Self::Add(_) => Kind::PnCounter,
            Self::Insert(_) | Self::Remove(_) => Kind::OrSet,
            Self::Write { .. } => Kind::MvRegister,
            Self::Assign(_) => Kind::LwwRegister,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Increment(_) => "increment",
            Self::Add(_) => "add",
            Self::Insert(_) => "insert",
            Self::Remove(_) => "remove",
            Self::Write { .. } => "write",
            Self::Assign(_) => "assign",
        }
    }
}

impl Object {
    /// The type's empty value: what a never-written object reads as.
    pub fn empty(kind: Kind) -> Self {
        match kind {
            Kind::GCounter => Self::GCounter(GCounter::new()),
            Kind::PnCounter => Self::PnCounter(PnCounter::new()),
            Kind::OrSet => Self::OrSet(OrSet::new()),
            Kind::MvRegister => Self::MvRegister(MvRegister::new()),
            Kind::LwwRegister => Self::LwwRegister(HlcLww::new()),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::GCounter(_) => Kind::GCounter,
            Self::PnCounter(_) => Kind::PnCounter,
            Self::OrSet(_) => Kind::OrSet,
            Self::MvRegister(_) => Kind::MvRegister,
            Self::LwwRegister(_) => Kind::LwwRegister,
        }
    }

    /// Applies `operation` at `replica`; returns the delta.
    pub fn apply<C: PhysicalClock>(
        &mut self,
        replica: ReplicaId,
        operation: Operation,
        clock: &mut HybridClock<C>,
    ) -> Result<Self> {
        let kind = self.kind();
        let mismatch = |operation: &Operation| Error::OperationMismatch {
            kind: kind.to_string(),
            operation: operation.name(),
        };
        Ok(match (self, operation) {
            (Self::GCounter(counter), Operation::Increment(amount)) => {
                Self::GCounter(counter.increment(replica, amount)?)
            }
            (Self::PnCounter(counter), Operation::Add(amount)) => {
                Self::PnCounter(counter.add(replica, amount)?)
            }
            (Self::OrSet(set), Operation::Insert(element)) => {
                Self::OrSet(set.insert(replica, element))
            }
            (Self::OrSet(set), Operation::Remove(element)) => Self::OrSet(set.remove(&element)),
            (Self::MvRegister(register), Operation::Write { value, context }) => {
                Self::MvRegister(match context {
                    Some(context) => register.write_after(replica, &context, value),
                    None => register.write(replica, value),
                })
            }
            (Self::LwwRegister(register), Operation::Assign(value)) => {
                let stamp = clock.now()?;
                Self::LwwRegister(register.set(replica, stamp, value))
            }
            (_, operation) => return Err(mismatch(&operation)),
        })
    }

    /// Joins another state (or delta) of the same object into this one.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        match (self, other) {
            (Self::GCounter(ours), Self::GCounter(theirs)) => ours.merge(theirs),
            (Self::PnCounter(ours), Self::PnCounter(theirs)) => ours.merge(theirs),
            (Self::OrSet(ours), Self::OrSet(theirs)) => ours.merge(theirs),
            (Self::MvRegister(ours), Self::MvRegister(theirs)) => ours.merge(theirs),
            (Self::LwwRegister(ours), Self::LwwRegister(theirs)) => ours.merge(theirs),
            (ours, theirs) => {
                return Err(Error::MalformedState {
                    reason: format!("a {} state for a {} object", theirs.kind(), ours.kind()),
                });
            }
        }
        Ok(())
    }

    /// What a reader sees.
    pub fn value(&self) -> proto::Value {
        let mut value = proto::Value::default();
        match self {
            Self::GCounter(counter) => value.count = counter.value().to_string(),
            Self::PnCounter(counter) => value.count = counter.value().to_string(),
            Self::OrSet(set) => value.elements = set.value().into_iter().collect(),
            Self::MvRegister(register) => {
                let (siblings, context) = register.read();
                value.siblings = siblings;
                value.context = super::codec::version_entries(&context);
            }
            Self::LwwRegister(register) => value.value = register.value().unwrap_or_default(),
        }
        value
    }
}
