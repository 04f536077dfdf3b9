//! A bounded connection pool, sized by Little's law.
//!
//! Episode: 26, "Little's Law Applications" (also 30)
//! Pattern: performance / connection pool sizing
//! Try it:  cargo test -p patterns pool_sized_by_littles_law
//! Test it: cargo test -p patterns pool
//!
//! A pool holds connections that are expensive to open (a TLS handshake,
//! a database login) so that each request borrows one instead. How many?
//! Little's law answers: connections in use L = λ W, the request rate
//! times how long each holds its connection. 200 queries a second holding
//! a connection 50 ms each keep 10 busy *on average*; arrivals are bursty,
//! so [`size_for`] adds headroom. Too few and requests queue for a
//! connection (then time out); too many and the database drowns in
//! connections it serves no faster — past its own cores and disks more
//! concurrency only adds contention (HikariCP's advice is about
//! cores × 2 + spindles, far fewer than most people configure).
//!
//! The one thing to watch for: an acquire must never wait forever. A pool
//! is a queue in front of a bounded server, and an unbounded wait is the
//! unbounded FIFO of Episode 7 again. [`Pool::acquire`] waits at most the
//! configured timeout, then fails with [`Error::PoolExhausted`].
//!
//! Bounds: the pool holds exactly the connections it was given (at most
//! [`MAX_POOL_SIZE`] from [`size_for`]); waiters queue in tokio's fair
//! semaphore, each for at most the acquire timeout.
//!
//! Simplified: connections are created up front and never checked or
//! replaced. Real pools (deadpool, bb8, r2d2, HikariCP) open lazily,
//! test connections on checkout, retire them after a maximum lifetime,
//! and keep a minimum idle count.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// The largest pool [`size_for`] recommends; beyond it the answer is to
/// shorten the hold time, not to open more connections.
pub const MAX_POOL_SIZE: usize = 10_000;

/// The pool size for `throughput` requests per second each holding a
/// connection for `hold_time`: ⌈λ W (1 + headroom)⌉, at least 1.
///
/// `headroom` is the fraction added for bursts (0.25 = 25%); with Poisson
/// arrivals the number in use fluctuates by about √(λW) around λW, so a
/// small pool needs proportionally more.
pub fn size_for(throughput: f64, hold_time: Duration, headroom: f64) -> Result<usize> {
    if hold_time.is_zero() {
        return Err(Error::InvalidPoolSizing {
            reason: "the hold time must be positive".into(),
        });
    }
    if !(headroom.is_finite() && (0.0..=10.0).contains(&headroom)) {
        return Err(Error::InvalidPoolSizing {
            reason: format!("headroom {headroom} is outside 0..=10"),
        });
    }
    let in_use = crate::queueing::littles_law_in_system(throughput, hold_time)?;
    let size = (in_use * (1.0 + headroom)).ceil().max(1.0);
    if size > MAX_POOL_SIZE as f64 {
        return Err(Error::InvalidPoolSizing {
            reason: format!(
                "{size} connections exceeds {MAX_POOL_SIZE}: shorten the hold time instead"
            ),
        });
    }
    Ok(size as usize)
}

/// What the pool has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: usize,
    pub in_use: usize,
    /// The most connections lent out at once.
    pub peak_in_use: usize,
    pub acquired: u64,
    pub timed_out: u64,
}

#[derive(Debug)]
struct Shared<T> {
    /// One permit per idle connection: holding a permit guarantees that
    /// `idle` has a connection to take.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<T>>,
    size: usize,
    acquire_timeout: Duration,
    in_use: AtomicUsize,
    peak_in_use: AtomicUsize,
    acquired: AtomicU64,
    timed_out: AtomicU64,
}

/// A fixed set of connections lent out one request at a time. Clones
/// share the pool.
#[derive(Debug)]
pub struct Pool<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Pool<T> {
    /// A pool of `connections`; each acquire waits at most
    /// `acquire_timeout`. An empty set is refused: a pool of zero
    /// connections would time out every request.
    pub fn new(connections: Vec<T>, acquire_timeout: Duration) -> Result<Self> {
        if connections.is_empty() {
            return Err(Error::ZeroCapacity);
        }
        let size = connections.len();
        Ok(Self {
            shared: Arc::new(Shared {
                permits: Arc::new(Semaphore::new(size)),
                idle: Mutex::new(connections),
                size,
                acquire_timeout,
                in_use: AtomicUsize::new(0),
                peak_in_use: AtomicUsize::new(0),
                acquired: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
            }),
        })
    }

    /// Borrows a connection, waiting (fairly, first come first served)
    /// at most the acquire timeout. Dropping the guard returns it.
    pub async fn acquire(&self) -> Result<Pooled<T>> {
        let shared = &self.shared;
        let permit = tokio::time::timeout(
            shared.acquire_timeout,
            Arc::clone(&shared.permits).acquire_owned(),
        )
        .await;
        let permit = match permit {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Error::PoolClosed),
            Err(_elapsed) => {
                shared.timed_out.fetch_add(1, Ordering::Relaxed);
                return Err(Error::PoolExhausted {
                    size: shared.size,
                    waited: shared.acquire_timeout,
                });
            }
        };
        let connection = shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("a permit is only available while a connection is idle");
        let in_use = shared.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
        shared.acquired.fetch_add(1, Ordering::Relaxed);
        Ok(Pooled {
            connection: Some(connection),
            shared: Arc::clone(shared),
            permit: Some(permit),
        })
    }

    /// Stops lending: waiting and later acquires fail with
    /// [`Error::PoolClosed`]; connections already lent are unaffected.
    pub fn close(&self) {
        self.shared.permits.close();
    }

    pub fn size(&self) -> usize {
        self.shared.size
    }

    pub fn stats(&self) -> PoolStats {
        let shared = &self.shared;
        PoolStats {
            size: shared.size,
            in_use: shared.in_use.load(Ordering::Relaxed),
            peak_in_use: shared.peak_in_use.load(Ordering::Relaxed),
            acquired: shared.acquired.load(Ordering::Relaxed),
            timed_out: shared.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// A borrowed connection; it goes back to the pool when dropped.
#[derive(Debug)]
pub struct Pooled<T> {
    connection: Option<T>,
    shared: Arc<Shared<T>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.connection
            .as_ref()
            .expect("the connection is only taken in drop")
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.connection
            .as_mut()
            .expect("the connection is only taken in drop")
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.shared
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
        self.shared.in_use.fetch_sub(1, Ordering::Relaxed);
        // Pitfall: the permit must go back only after the connection is
        // in `idle`, or a waiter woken by it could find `idle` empty.
        drop(self.permit.take());
    }
}

#[cfg(test)]
mod tests;
