//! Leases: ownership that lapses unless its owner keeps proving it is
//! alive, replicated through the Raft log as etcd replicates them.
//!
//! Episode: 16, "Distributed Locking" (also 17, 4)
//! Pattern: coordination / leases
//! Try it:  cargo run -- demo distributed-lock
//! Test it: cargo test -p consensus lease_
//!
//! A lease is a promise with a deadline: "these keys exist while I keep
//! sending keep-alives". A crashed or partitioned owner stops sending, the
//! lease runs out, and its keys — a lock, a leader's name, a service's
//! registration — disappear without anyone having to decide the owner is
//! dead. The catch is *who* decides the lease ran out. Each replica's clock
//! differs, so if every replica expired leases on its own they would
//! disagree about which keys exist. etcd (and this module) splits the job:
//!
//! - the **table** — which leases exist, their TTLs and the keys attached
//!   to them — is replicated state, changed only by log entries (grant,
//!   revoke, a put with a lease), so every replica agrees on it;
//! - the **clock** lives with the leader alone ([`Lessor`]): it renews
//!   leases on keep-alives and, when one runs out, *proposes* its revoke,
//!   which deletes the lease's keys atomically in one revision, on every
//!   replica, in log order.
//!
//! A new leader does not know when the old one last heard a keep-alive, so
//! it restarts every lease's full TTL (plus an election timeout) rather
//! than expiring them at once: a failover lengthens leases, never shortens
//! them. That is the safe direction for the lease holder, and the reason a
//! lock holder must still use a fencing token ([`crate::lock`]): a lease
//! says when the *store* will give the lock away, not when the holder
//! stops believing it has it.
//!
//! Bounds: at most [`MAX_LEASES`] leases; a TTL is raised to the minimum
//! the election timing allows and refused above [`MAX_LEASE_TTL`].
//!
//! Simplified: no lease checkpoints (etcd 3.4's optional
//! `--experimental-enable-lease-checkpoint`, which persists remaining TTLs
//! so a failover does not extend them).

pub mod lessor;

use std::collections::{BTreeMap, BTreeSet};

pub use lessor::Lessor;

use crate::{Error, Result};

/// The longest TTL etcd grants, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// The most leases the store holds at once.
pub const MAX_LEASES: usize = 100_000;

/// One lease, as every replica knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The TTL it was granted, in seconds.
    pub ttl: i64,
    /// The keys whose current version carries it.
    pub keys: BTreeSet<Vec<u8>>,
}

/// The replicated lease table: part of the state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Every lease as (id, granted TTL), in id order.
    pub fn ttls(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, lease)| (*id, lease.ttl))
    }

    pub(crate) fn grant(&mut self, id: i64, ttl: i64) -> Result<()> {
        if self.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        if self.leases.len() >= MAX_LEASES {
            return Err(Error::TooManyLeases);
        }
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: i64) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// Records that `key`'s current version carries `id` (0: no lease).
    pub(crate) fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
        }
    }

    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }
}
