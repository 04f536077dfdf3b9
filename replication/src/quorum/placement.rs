//! Where a key lives: its preference list on the consistent-hash ring.
//!
//! Dynamo places each key on the first N *distinct* nodes clockwise from
//! its hash (virtual nodes make the walk pass several points of one
//! node). The nodes after those N, in the same order, are the stand-ins a
//! sloppy quorum falls back to — each node computes the same list, so
//! nobody has to agree on it at request time.

use std::collections::{BTreeMap, BTreeSet};

use patterns::hashing::Placement as _;
use patterns::hashing::ring::Ring;

use super::{MAX_MEMBERS, MAX_N};
use crate::clock::ReplicaId;
use crate::{Error, Result};

/// Virtual nodes per member: enough that three to seven members share
/// the keys within a few percent (see `dslab demo consistent-hashing`).
const VIRTUAL_NODES: u32 = 64;

/// The ring of a fixed membership and the replication factor N.
#[derive(Clone, Debug)]
pub struct Placement {
    ring: Ring,
    by_name: BTreeMap<String, ReplicaId>,
    n: usize,
}

impl Placement {
    /// A ring of `members`, N replicas per key. Refuses an empty or
    /// oversized membership and N outside 1..=min(members, [`MAX_N`]).
    pub fn new(members: &BTreeSet<ReplicaId>, n: usize) -> Result<Self> {
        if members.len() > MAX_MEMBERS {
            return Err(Error::TooManyMembers {
                members: members.len(),
                max: MAX_MEMBERS,
            });
        }
        if n == 0 || n > members.len() || n > MAX_N {
            return Err(Error::QuorumOutOfRange {
                what: "N",
                value: n,
                max: members.len().min(MAX_N),
            });
        }
        let mut ring = Ring::new(VIRTUAL_NODES).map_err(|err| Error::MalformedState {
            reason: err.to_string(),
        })?;
        let mut by_name = BTreeMap::new();
        for &member in members {
            if member.0 == 0 {
                return Err(Error::InvalidMemberId { replica: member });
            }
            let name = member.to_string();
            ring.add_node(&name, 1)
                .map_err(|err| Error::MalformedState {
                    reason: err.to_string(),
                })?;
            by_name.insert(name, member);
        }
        Ok(Self { ring, by_name, n })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn members(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.by_name.values().copied()
    }

    pub fn is_member(&self, id: ReplicaId) -> bool {
        self.by_name.values().any(|&member| member == id)
    }

    /// Every member, clockwise from the key's hash: the first N are its
    /// preference list, the rest its stand-ins in order.
    pub fn ring_order(&self, key: &str) -> Vec<ReplicaId> {
        self.ring
            .replicas(key.as_bytes(), self.by_name.len())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| self.by_name.get(name).copied())
            .collect()
    }

    /// The N nodes that own the key, first (the usual coordinator) first.
    pub fn preference_list(&self, key: &str) -> Vec<ReplicaId> {
        let mut order = self.ring_order(key);
        order.truncate(self.n);
        order
    }

    /// True when `node` is one of the key's N replicas.
    pub fn replicates(&self, key: &str, node: ReplicaId) -> bool {
        self.preference_list(key).contains(&node)
    }
}
