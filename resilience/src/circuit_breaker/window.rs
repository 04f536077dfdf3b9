//! Sliding windows: the recent calls a failure rate is computed over.
//!
//! Both keep running totals, so recording a call and reading the rate are
//! O(1) — the closed-state path runs on every single call.

use tokio::time::Instant;

/// What one call contributes to a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u32,
    pub failed: u32,
    pub slow: u32,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.calls += other.calls;
        self.failed += other.failed;
        self.slow += other.slow;
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
    }

    pub fn failure_rate(&self) -> f64 {
        f64::from(self.failed) * 100.0 / f64::from(self.calls.max(1))
    }

    pub fn slow_rate(&self) -> f64 {
        f64::from(self.slow) * 100.0 / f64::from(self.calls.max(1))
    }
}

/// The last `n` calls, as a ring of one-call entries.
#[derive(Clone, Debug)]
pub struct CountWindow {
    ring: Vec<Totals>,
    next: usize,
    totals: Totals,
}

impl CountWindow {
    pub fn new(size: u32) -> Self {
        Self {
            ring: vec![Totals::default(); size.max(1) as usize],
            next: 0,
            totals: Totals::default(),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.ring.len() as u32
    }

    pub fn record(&mut self, failed: bool, slow: bool) -> Totals {
        let call = Totals {
            calls: 1,
            failed: u32::from(failed),
            slow: u32::from(slow),
        };
        let evicted = std::mem::replace(&mut self.ring[self.next], call);
        self.totals.sub(evicted);
        self.totals.add(call);
        self.next = (self.next + 1) % self.ring.len();
        self.totals
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }
}

/// The calls of the last `n` whole seconds, one bucket per second.
#[derive(Clone, Debug)]
pub struct TimeWindow {
    buckets: Vec<Totals>,
    start: Instant,
    /// The second (since `start`) of the newest bucket.
    current: u64,
    totals: Totals,
}

impl TimeWindow {
    pub fn new(seconds: u32, now: Instant) -> Self {
        Self {
            buckets: vec![Totals::default(); seconds.max(1) as usize],
            start: now,
            current: 0,
            totals: Totals::default(),
        }
    }

    /// Drops buckets that fell out of the window by `now`.
    fn advance(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        let size = self.buckets.len() as u64;
        let stale = second.saturating_sub(self.current).min(size);
        for step in 1..=stale {
            let slot = ((self.current + step) % size) as usize;
            let expired = std::mem::take(&mut self.buckets[slot]);
            self.totals.sub(expired);
        }
        self.current = self.current.max(second);
    }

    pub fn record(&mut self, failed: bool, slow: bool, now: Instant) -> Totals {
        self.advance(now);
        let call = Totals {
            calls: 1,
            failed: u32::from(failed),
            slow: u32::from(slow),
        };
        let slot = (self.current % self.buckets.len() as u64) as usize;
        self.buckets[slot].add(call);
        self.totals.add(call);
        self.totals
    }

    pub fn totals(&mut self, now: Instant) -> Totals {
        self.advance(now);
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn circuit_breaker_count_window_forgets_the_oldest_call() {
        let mut window = CountWindow::new(3);
        window.record(true, false);
        window.record(false, true);
        window.record(false, false);
        assert_eq!(
            window.totals(),
            Totals {
                calls: 3,
                failed: 1,
                slow: 1
            }
        );
        let totals = window.record(false, false);
        assert_eq!(
            totals,
            Totals {
                calls: 3,
                failed: 0,
                slow: 1
            },
            "the failure aged out"
        );
    }

    #[test]
    fn circuit_breaker_time_window_expires_whole_seconds() {
        let t0 = Instant::now();
        let mut window = TimeWindow::new(2, t0);
        window.record(true, false, t0);
        window.record(true, false, t0 + Duration::from_millis(1500));
        assert_eq!(window.totals(t0 + Duration::from_millis(1999)).failed, 2);
        assert_eq!(
            window.totals(t0 + Duration::from_secs(2)).failed,
            1,
            "second 0 left the window"
        );
        assert_eq!(
            window.totals(t0 + Duration::from_secs(60)),
            Totals::default(),
            "a long gap empties it"
        );
    }
}
