//! Distributed locks on the Raft KV, and the fencing tokens that make them
//! safe.
//!
//! Episode: 16, "Distributed Locking" (also 17, 4)
//! Pattern: coordination / lock with fencing token
//! Try it:  cargo run -- demo distributed-lock
//! Test it: cargo test -p consensus lock_
//!
//! The recipe is etcd's (`clientv3/concurrency`, what `etcdctl lock` runs):
//! each contender puts a key `NAME/LEASE` attached to its lease, in a
//! transaction that only creates it if absent; the store gives every
//! created key a revision, and revisions only grow, so the contenders form
//! a queue ordered by creation revision. The one with the lowest holds the
//! lock; every other watches the key just ahead of it and waits for its
//! deletion — an unlock, or the lease running out. No thundering herd:
//! each deletion wakes exactly one waiter.
//!
//! A lock on its own is not mutual exclusion for the *resource*. The
//! holder can stall — a GC pause, a swapped-out VM, a slow disk — past its
//! lease; the store then gives the lock to the next contender, and when
//! the first wakes it still believes it holds the lock and writes.
//! Martin Kleppmann's answer is the fencing token: the lock key's creation
//! revision, which is larger for every later holder. The resource
//! ([`fencing::FencedStore`]) remembers the largest token it has seen and
//! refuses writes that carry a smaller one. `fencing::Fencing::Off` is the
//! broken twin that accepts them.
//!
//! The recipe needs only `Txn`, `Range` and a way to wait for a deletion
//! ([`Etcd`]): [`client`] runs it against any etcd endpoint over gRPC (a
//! dslab node or a real etcd), and the node's own `Lock` and `Election`
//! services ([`crate::etcd`]) run it in-process.

pub mod client;
mod demo;
pub mod fencing;
pub mod recipe;
#[cfg(test)]
mod tests;

pub use client::{EtcdClient, Session};
pub use demo::distributed_lock_demo;
pub use recipe::{Etcd, Held};
