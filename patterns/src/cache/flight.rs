//! Single-flight: one load per key at a time, its outcome shared by every
//! caller that missed while it ran.
//!
//! The registered flight doubles as the fill's lease: a load may fill the
//! cache only while its flight is still the key's registered one, and an
//! invalidation removes it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// What a load ended with, as every caller sharing it sees it. Errors are
/// shared (each waiter gets the leader's error) but never cached.
pub(super) type Outcome<V, E> = Result<V, Arc<E>>;

/// A load in flight: its id (the lease) and where its outcome goes.
#[derive(Debug)]
pub(super) struct Flight<V, E> {
    pub(super) id: u64,
    pub(super) outcome: watch::Sender<Option<Outcome<V, E>>>,
}

/// The loads in flight of one shard, by key.
pub(super) type Flights<K, V, E> = HashMap<K, Flight<V, E>>;

pub(super) fn lock_flights<K, V, E>(
    flights: &Mutex<Flights<K, V, E>>,
) -> MutexGuard<'_, Flights<K, V, E>> {
    // Every critical section leaves the map consistent.
    flights.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a caller's lookup decided.
pub(super) enum Role<V, E> {
    /// Lead the load; `fallback` is the still-live value an early
    /// recompute may answer with if the load fails.
    Lead { id: u64, fallback: Option<V> },
    /// Wait for the leader's outcome.
    Follow(watch::Receiver<Option<Outcome<V, E>>>),
    /// The flight table is full: load alone, fill nothing.
    Alone,
}

/// Unregisters a flight whose leader never finished (its future was
/// dropped, or the loader panicked): the waiters see the channel close
/// and retry, one of them becoming the new leader.
///
/// Pitfall: without this, a leader cancelled mid-load leaves its flight
/// registered forever, and every later miss of the key waits on a load
/// nobody is running.
pub(super) struct FlightGuard<'a, K: Eq + Hash, V, E> {
    pub(super) flights: &'a Mutex<Flights<K, V, E>>,
    /// `None` once the leader finished normally.
    pub(super) key: Option<K>,
    pub(super) id: u64,
}

impl<K: Eq + Hash, V, E> Drop for FlightGuard<'_, K, V, E> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut flights = lock_flights(self.flights);
            // Only its own flight: an invalidation may have replaced it.
            if flights.get(&key).is_some_and(|f| f.id == self.id) {
                flights.remove(&key);
            }
        }
    }
}

/// The leader's outcome, or `None` if it went away without one.
pub(super) async fn wait<V: Clone, E>(
    mut outcome: watch::Receiver<Option<Outcome<V, E>>>,
) -> Option<Outcome<V, E>> {
    loop {
        if let Some(done) = outcome.borrow_and_update().clone() {
            return Some(done);
        }
        if outcome.changed().await.is_err() {
            // Closed: the value, if the leader sent one before it went.
            return outcome.borrow().clone();
        }
    }
}
