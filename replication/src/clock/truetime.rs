//! A TrueTime-style interval clock with commit-wait (Spanner, 2012).
//!
//! Episode 3. Instead of pretending to know the time, [`TrueTime::now`]
//! answers an interval `[earliest, latest]` guaranteed to contain true
//! time, given that the local clock is within `epsilon` of it (Spanner
//! bounds epsilon with GPS and atomic clocks, typically a few ms).
//!
//! Commit-wait turns that into external consistency: a transaction takes
//! `latest` as its commit timestamp `s`, then waits until `earliest > s`
//! before anyone may see it. After the wait, true time has certainly
//! passed `s`, so any transaction that starts later — on any machine with
//! a clock within epsilon — draws a larger timestamp. The price is about
//! `2 × epsilon` of latency per commit: clock uncertainty becomes wait
//! time instead of anomalies.

use std::time::Duration;

use super::physical::PhysicalClock;

/// An interval that contains true time, in nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeInterval {
    pub earliest_ns: u64,
    pub latest_ns: u64,
}

/// A clock that reports its uncertainty.
#[derive(Debug)]
pub struct TrueTime<C> {
    physical: C,
    epsilon: Duration,
}

impl<C: PhysicalClock> TrueTime<C> {
    /// A clock whose physical reading is within `epsilon` of true time.
    pub fn new(physical: C, epsilon: Duration) -> Self {
        Self { physical, epsilon }
    }

    fn epsilon_ns(&self) -> u64 {
        u64::try_from(self.epsilon.as_nanos()).unwrap_or(u64::MAX)
    }

    /// `[reading − ε, reading + ε]`.
    pub fn now(&self) -> TimeInterval {
        let reading_ns = self.physical.now_ns();
        TimeInterval {
            earliest_ns: reading_ns.saturating_sub(self.epsilon_ns()),
            latest_ns: reading_ns.saturating_add(self.epsilon_ns()),
        }
    }

    /// True once `timestamp_ns` is certainly in the past.
    pub fn after(&self, timestamp_ns: u64) -> bool {
        self.now().earliest_ns > timestamp_ns
    }

    /// Picks a commit timestamp and waits, in `tokio::time`, until it is
    /// certainly in the past; returns the timestamp. Only then may the
    /// commit be acknowledged or its writes be read.
    pub async fn commit(&self) -> u64 {
        let timestamp_ns = self.now().latest_ns;
        self.commit_wait(timestamp_ns).await;
        timestamp_ns
    }

    /// Waits until `timestamp_ns` is certainly in the past.
    pub async fn commit_wait(&self, timestamp_ns: u64) {
        while !self.after(timestamp_ns) {
            // Sleep for the remaining gap, at least a microsecond, so a
            // clock that reads coarsely cannot make this loop spin.
            let gap_ns = timestamp_ns.saturating_sub(self.now().earliest_ns);
            tokio::time::sleep(Duration::from_nanos(gap_ns.max(1_000))).await;
        }
    }
}
