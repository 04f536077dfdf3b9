//! The last N heartbeat inter-arrival times, and their mean and spread.
//!
//! Phi accrual fits a normal distribution to recent inter-arrival times, so
//! it needs their mean and standard deviation after every heartbeat. Keeping
//! running sums makes that O(1); keeping them as *integers* (nanoseconds,
//! summed in `u128`) makes them exact. A long-lived detector adds and
//! removes billions of samples, and floating-point running sums drift —
//! eventually to a negative variance.
//!
//! Bounded: at most `capacity` samples (≤ [`super::MAX_WINDOW`]), each
//! clamped to [`MAX_INTERVAL`], so the sums cannot overflow:
//! `capacity² · MAX_INTERVAL²` is below 10^36, far under `u128::MAX`.

use std::collections::VecDeque;
use std::time::Duration;

/// The longest inter-arrival time recorded as such; longer silences are
/// recorded as this. A peer back after a day is not a statistic anyway.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// A sliding window of inter-arrival times with exact running sums.
#[derive(Clone, Debug)]
pub struct IntervalWindow {
    capacity: usize,
    nanos: VecDeque<u64>,
    sum: u128,
    sum_of_squares: u128,
}

impl IntervalWindow {
    /// An empty window keeping the last `capacity` intervals (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            // Grown on demand: a monitor declares peers long before it has
            // heard enough heartbeats to fill their windows.
            nanos: VecDeque::with_capacity(capacity.min(16)),
            sum: 0,
            sum_of_squares: 0,
        }
    }

    /// Adds `interval`, evicting the oldest once the window is full.
    pub fn push(&mut self, interval: Duration) {
        let nanos = u64::try_from(interval.min(MAX_INTERVAL).as_nanos())
            .expect("MAX_INTERVAL fits in u64 nanoseconds");
        if self.nanos.len() == self.capacity
            && let Some(oldest) = self.nanos.pop_front()
        {
            self.sum -= u128::from(oldest);
            self.sum_of_squares -= u128::from(oldest) * u128::from(oldest);
        }
        self.nanos.push_back(nanos);
        self.sum += u128::from(nanos);
        self.sum_of_squares += u128::from(nanos) * u128::from(nanos);
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Mean interval in seconds (0 when empty).
    pub fn mean_secs(&self) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        self.sum as f64 / self.nanos.len() as f64 / 1e9
    }

    /// Population standard deviation in seconds, as Akka and Cassandra use.
    pub fn std_dev_secs(&self) -> f64 {
        let n = self.nanos.len() as u128;
        if n == 0 {
            return 0.0;
        }
        // n·Σx² − (Σx)² is n² times the variance, and never negative in
        // exact arithmetic (Cauchy–Schwarz): no clamp needed.
        let scaled = n * self.sum_of_squares - self.sum * self.sum;
        (scaled as f64).sqrt() / n as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_detector_window_keeps_exact_statistics_of_the_last_n() {
        let mut window = IntervalWindow::new(3);
        for millis in [100, 900, 1_000, 1_100, 1_200] {
            window.push(Duration::from_millis(millis));
        }
        assert_eq!(window.len(), 3, "bounded by its capacity");
        assert!((window.mean_secs() - 1.1).abs() < 1e-12);
        // Population variance of {1.0, 1.1, 1.2} s is 0.02/3 s².
        assert!((window.std_dev_secs() - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        // A million identical samples later the spread is exactly zero:
        // the integer sums have not drifted.
        for _ in 0..1_000_000 {
            window.push(Duration::from_nanos(999_999_937));
        }
        assert_eq!(window.std_dev_secs(), 0.0);
        assert!((window.mean_secs() - 0.999_999_937).abs() < 1e-15);
    }

    #[test]
    fn failure_detector_window_clamps_absurd_silences() {
        let mut window = IntervalWindow::new(2);
        window.push(Duration::MAX);
        window.push(Duration::MAX);
        assert!((window.mean_secs() - MAX_INTERVAL.as_secs_f64()).abs() < 1e-6);
        assert_eq!(window.std_dev_secs(), 0.0);
    }
}
