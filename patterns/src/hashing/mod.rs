//! Consistent hashing: which node owns a key, and how little moves when
//! the membership changes.
//!
//! Episode: 28, "Load Balancing Algorithms" (also 24, and the consistent-hashing deep dive)
//! Pattern: placement / consistent hashing
//! Try it:  cargo run -- demo consistent-hashing
//! Test it: cargo test -p patterns hashing
//!
//! `hash(key) % N` spreads keys evenly until N changes — then almost every
//! key moves (N/(N+1) of them when a node joins). Consistent hashing
//! places keys so that a membership change moves only about K/N keys: the
//! ones the new node takes over, or the ones the departed node held. The
//! strategies here trade that property against balance, lookup speed,
//! memory and weights differently:
//!
//! | strategy | lookup | balance | on a membership change |
//! |---|---|---|---|
//! | [`ring`] | O(1) with a prefix index | improves with virtual nodes | minimal |
//! | [`course_ring`] | O(log V), md5-bound | as the course's Python | minimal |
//! | [`jump`] | O(log N), no memory | near perfect | minimal when appending; removal renumbers |
//! | [`rendezvous`] | O(N) | near perfect | minimal |
//! | [`maglev`] | O(1) table lookup | near perfect | near minimal |
//! | [`bounded`] | ring walk | max load ≤ ⌈c·K/N⌉ | depends on arrival order |
//!
//! [`analysis`] measures balance, movement and memory for any of them.
//!
//! Pitfall: Rust's `HashMap` hasher (`RandomState`) is seeded per process.
//! A placement built on it would send the same key to different nodes on
//! every restart. Every hash here is a fixed function (xxh3, md5).

pub mod analysis;
pub mod bounded;
pub mod course_ring;
mod demo;
pub mod jump;
pub mod maglev;
pub mod place;
pub mod rendezvous;
pub mod report;
pub mod ring;
#[cfg(test)]
mod tests;

pub use demo::consistent_hashing;

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The heaviest weight a node may carry (relative to weight 1).
pub const MAX_WEIGHT: u32 = 1_000;
/// The most virtual nodes per unit of weight.
pub const MAX_VIRTUAL_NODES: u32 = 10_000;
/// The longest node name, in bytes.
pub const MAX_NODE_NAME_BYTES: usize = 255;
/// The most nodes any strategy accepts.
pub const MAX_NODES: usize = 100_000;

/// Hashes a key for placement: xxh3, 64 bits, identical on every platform
/// and in every process.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Which node owns a key.
///
/// Nodes are named; a name is the node's identity (an address, a host
/// name). Placement is a pure function of the membership (and, for
/// [`bounded`], of the keys assigned so far), so every client that knows
/// the membership agrees on where a key lives without asking anyone.
pub trait Placement: Send + Sync + fmt::Debug {
    fn strategy(&self) -> Strategy;

    /// Adds `node` with a relative `weight` (1 = a standard node).
    fn add_node(&mut self, node: &str, weight: u32) -> Result<()>;

    fn remove_node(&mut self, node: &str) -> Result<()>;

    /// The members, in the order they were added.
    fn nodes(&self) -> Vec<&str>;

    /// The node that owns `key`.
    fn owner(&self, key: &[u8]) -> Result<&str>;

    /// `count` distinct nodes for `key`, owner first: where its replicas
    /// go. Fewer when there are fewer members.
    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>>;

    /// Places `key` and remembers it. Strategies whose answer depends on
    /// what was placed before ([`bounded`]) count it; for the others this
    /// is [`owner`](Self::owner).
    fn assign(&mut self, key: &[u8]) -> Result<&str> {
        self.owner(key)
    }

    /// One key assigned to `node` is done (a request finished, or an
    /// assignment was not kept). Only [`bounded`] counts; for the others
    /// this does nothing.
    fn release(&mut self, _node: &str) -> Result<()> {
        Ok(())
    }

    /// Bytes of memory the lookup structures use.
    fn memory_bytes(&self) -> usize;

    /// A copy with the same members and nothing assigned yet.
    fn fresh_copy(&self) -> Box<dyn Placement>;
}

/// The strategies, by the name the CLI and the service use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    Ring,
    CourseRing,
    Jump,
    Rendezvous,
    Maglev,
    Bounded,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::Ring,
        Strategy::CourseRing,
        Strategy::Jump,
        Strategy::Rendezvous,
        Strategy::Maglev,
        Strategy::Bounded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ring => "ring",
            Strategy::CourseRing => "course-ring",
            Strategy::Jump => "jump",
            Strategy::Rendezvous => "rendezvous",
            Strategy::Maglev => "maglev",
            Strategy::Bounded => "bounded",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownStrategy {
                name: name.to_owned(),
                known: Strategy::ALL.map(Strategy::name).join(", "),
            })
    }
}

/// A strategy and its tuning knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StrategyConfig {
    pub strategy: Strategy,
    /// Points per unit of weight on the rings (`ring`, `course-ring`, `bounded`).
    pub vnodes: u32,
    /// Maglev lookup table size: a prime, ideally ≥ 100 × the node count.
    pub table_size: u64,
    /// Bounded loads: no node holds more than `capacity_factor` × the mean.
    pub capacity_factor: f64,
}

impl StrategyConfig {
    /// The defaults: 150 virtual nodes (as the course), a 65537-entry
    /// Maglev table (as the Maglev paper), capacity factor 1.25.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            vnodes: 150,
            table_size: maglev::DEFAULT_TABLE_SIZE,
            capacity_factor: bounded::DEFAULT_CAPACITY_FACTOR,
        }
    }

    /// Builds an empty placement, refusing out-of-range knobs.
    pub fn build(&self) -> Result<Box<dyn Placement>> {
        Ok(match self.strategy {
            Strategy::Ring => Box::new(ring::Ring::new(self.vnodes)?),
            Strategy::CourseRing => Box::new(course_ring::CourseRing::new(self.vnodes)?),
            Strategy::Jump => Box::new(jump::Jump::new()),
            Strategy::Rendezvous => Box::new(rendezvous::Rendezvous::new()),
            Strategy::Maglev => Box::new(maglev::Maglev::new(self.table_size)?),
            Strategy::Bounded => Box::new(bounded::BoundedLoad::new(
                self.vnodes,
                self.capacity_factor,
            )?),
        })
    }

    /// Builds a placement holding `nodes` (each with weight 1).
    pub fn build_with<S: AsRef<str>>(&self, nodes: &[S]) -> Result<Box<dyn Placement>> {
        let mut placement = self.build()?;
        for node in nodes {
            placement.add_node(node.as_ref(), 1)?;
        }
        Ok(placement)
    }
}

/// A member and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub name: Box<str>,
    pub weight: u32,
}

/// Membership bookkeeping every strategy shares: names, weights, order,
/// and the validation of both.
#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    pub list: Vec<Member>,
}

impl Members {
    /// Validates and appends `name`.
    pub fn add(&mut self, name: &str, weight: u32) -> Result<()> {
        validate_name(name)?;
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(Error::InvalidWeight {
                weight,
                max: MAX_WEIGHT,
            });
        }
        if self.position(name).is_some() {
            return Err(Error::NodeExists {
                node: name.to_owned(),
            });
        }
        if self.list.len() >= MAX_NODES {
            return Err(Error::CapacityExceeded {
                what: "membership",
                limit: MAX_NODES as u64,
            });
        }
        self.list.push(Member {
            name: name.into(),
            weight,
        });
        Ok(())
    }

    /// Removes `name`, returning where it was.
    pub fn remove(&mut self, name: &str) -> Result<usize> {
        let index = self.index_of(name)?;
        self.list.remove(index);
        Ok(index)
    }

    /// Where `name` is, or `UnknownNode`.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.position(name).ok_or_else(|| Error::UnknownNode {
            node: name.to_owned(),
        })
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|m| &*m.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|m| &*m.name).collect()
    }

    pub fn name(&self, index: usize) -> &str {
        &self.list[index].name
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes held by the names themselves.
    pub fn memory_bytes(&self) -> usize {
        self.list
            .iter()
            .map(|m| std::mem::size_of::<Member>() + m.name.len())
            .sum()
    }
}

/// Members read clockwise around a circular array of `len` slots from
/// `start` (`owner_at(slot)` names a slot's member), each member once: how
/// the rings and Maglev pick replicas.
pub(crate) fn distinct_clockwise(
    len: usize,
    start: usize,
    members: usize,
    owner_at: impl Fn(usize) -> usize,
) -> impl Iterator<Item = usize> {
    let mut seen = vec![false; members];
    (0..len)
        .map(move |step| owner_at((start + step) % len))
        .filter(move |&owner| !std::mem::replace(&mut seen[owner], true))
}

/// Node names are identities that travel in protos and in `key<TAB>node`
/// output: non-empty, bounded, free of control characters.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NODE_NAME_BYTES {
        "longer than 255 bytes"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidNodeName {
        reason: reason.into(),
    })
}

/// Refuses weights for strategies that cannot honour them.
pub(crate) fn unweighted(strategy: Strategy, weight: u32) -> Result<()> {
    if weight == 1 {
        Ok(())
    } else {
        Err(Error::WeightsUnsupported {
            strategy: strategy.name(),
            weight,
        })
    }
}

pub(crate) fn validate_vnodes(vnodes: u32) -> Result<()> {
    if (1..=MAX_VIRTUAL_NODES).contains(&vnodes) {
        Ok(())
    } else {
        Err(Error::InvalidVirtualNodes {
            vnodes,
            max: MAX_VIRTUAL_NODES,
        })
    }
}
