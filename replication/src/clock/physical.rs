//! Physical clocks, injected so that skew can be simulated.
//!
//! A hybrid or TrueTime clock reads "the time" through [`PhysicalClock`].
//! Production reads the operating system's wall clock
//! ([`SystemClock`]); tests and demos use a [`ManualClock`] they set by
//! hand, or a [`TokioClock`] that advances with tokio's (possibly paused
//! or simulated) time from a chosen start, plus a fixed skew — the
//! misbehaving machine of Episode 3.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Nanoseconds since the Unix epoch, as some machine believes them.
pub trait PhysicalClock: Send + Sync + std::fmt::Debug {
    fn now_ns(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ns(&self) -> u64 {
        // A clock set before 1970 reads as the epoch; one past 2554 as the
        // end of u64 nanoseconds. Both are broken clocks, not panics.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that reads whatever the test last set. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now_ns: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(now_ns: u64) -> Self {
        Self {
            now_ns: Arc::new(AtomicU64::new(now_ns)),
        }
    }

    pub fn set(&self, now_ns: u64) {
        self.now_ns.store(now_ns, Ordering::Relaxed);
    }

    pub fn advance(&self, by_ns: u64) {
        self.now_ns.fetch_add(by_ns, Ordering::Relaxed);
    }
}

impl PhysicalClock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Relaxed)
    }
}

/// Wall time that advances with `tokio::time` from `start_ns`, off by a
/// fixed `skew_ns`: under `tokio::time::pause` or turmoil, a whole cluster
/// of skewed clocks moves in simulated time.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: Instant,
    start_ns: u64,
    skew_ns: i64,
}

impl TokioClock {
    /// A clock reading `start_ns + skew_ns` now.
    pub fn new(start_ns: u64, skew_ns: i64) -> Self {
        Self {
            origin: Instant::now(),
            start_ns,
            skew_ns,
        }
    }
}

impl PhysicalClock for TokioClock {
    fn now_ns(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.start_ns
            .saturating_add(elapsed)
            .saturating_add_signed(self.skew_ns)
    }
}

impl<T: PhysicalClock + ?Sized> PhysicalClock for Arc<T> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}
