//! Where a limiter reads the time.
//!
//! A rate limit check is a handful of nanoseconds of arithmetic; reading
//! the clock can cost more than the rest. Two clocks, one trade-off:
//!
//! - [`TokioClock`] (the default): `tokio::time`, so limits follow turmoil's
//!   simulated time and `tokio::time::pause` in tests. About 20 ns a read.
//! - [`TscClock`]: the CPU's time-stamp counter via `quanta`, calibrated
//!   against the OS clock. A few nanoseconds a read; real time only, so
//!   simulations cannot steer it. For hot paths in production.

use quanta::Clock as Quanta;

/// Monotonic nanoseconds since the clock's own origin.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn nanos(&self) -> u64;
}

/// `tokio::time`: follows simulated and paused time.
#[derive(Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    #[inline]
    fn nanos(&self) -> u64 {
        tokio::time::Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64
    }
}

/// The CPU's time-stamp counter: fast, real time only.
#[derive(Debug)]
pub struct TscClock {
    clock: Quanta,
    origin: quanta::Instant,
}

impl Default for TscClock {
    fn default() -> Self {
        let clock = Quanta::new();
        let origin = clock.now();
        Self { clock, origin }
    }
}

impl Clock for TscClock {
    #[inline]
    fn nanos(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64
    }
}
