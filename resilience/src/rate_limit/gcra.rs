//! GCRA: a rate limiter that is one atomic number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::clock::{Clock, TokioClock};
use super::{Limiter, Quota};

/// The Generic Cell Rate Algorithm, lock-free.
///
/// State is the theoretical arrival time (TAT): when the next call would
/// be due if traffic flowed exactly at the rate. A call at `now` is
/// admitted if `TAT − now ≤ τ` (the burst tolerance, `(burst − 1) × T`),
/// and then pushes TAT to `max(TAT, now) + T`. A token bucket with
/// `burst` tokens refilling one per `T` admits exactly the same calls.
#[derive(Debug)]
pub struct Gcra<C: Clock = TokioClock> {
    emission_nanos: u64,
    tolerance_nanos: u64,
    /// Nanoseconds on `clock`.
    tat: AtomicU64,
    clock: C,
}

impl Gcra {
    /// A GCRA on tokio's clock (follows simulated time).
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, TokioClock::default())
    }
}

impl<C: Clock> Gcra<C> {
    /// A GCRA reading `clock` (see [`super::clock`] for the trade-off).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            emission_nanos: quota.emission_nanos(),
            tolerance_nanos: quota.tolerance_nanos(),
            tat: AtomicU64::new(0),
            clock,
        }
    }

    /// Checks one call at `now` (nanoseconds since the limiter's origin).
    #[inline]
    pub fn check_at(&self, now: u64) -> Result<(), Duration> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let due = tat.max(now);
            if due - now > self.tolerance_nanos {
                return Err(Duration::from_nanos(due - now - self.tolerance_nanos));
            }
            match self.tat.compare_exchange_weak(
                tat,
                due + self.emission_nanos,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// The limiter's clock, in nanoseconds.
    #[inline]
    pub fn now(&self) -> u64 {
        self.clock.nanos()
    }

    #[inline]
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(self.now())
    }
}

impl<C: Clock> Limiter for Gcra<C> {
    fn check(&self, _key: Option<&str>) -> Result<(), Duration> {
        Gcra::check(self)
    }
}
