//! Gradient2: follow the ratio of long-term to current latency.

use std::time::Duration;

use super::{LimitAlgorithm, LimitBounds, Sample};

/// Samples averaged plainly before the long average turns exponential.
const WARMUP_SAMPLES: u64 = 10;

/// Netflix's `Gradient2Limit`.
///
/// A long-window average of latency stands for "normal": the mean of the
/// first 10 samples, then an exponential average over the window
/// (smoothing factor 2 / (window + 1)), as Netflix's `ExpAvgMeasurement`
/// computes it. The gradient
/// `tolerance × long / current`, clamped to [0.5, 1], is 1 while calls
/// are as fast as usual and falls as they slow down; the new limit is
/// `limit × gradient + queue_size`, smoothed. When load drops and latency
/// falls well below the long average, the average decays toward it, so
/// the next increase is not held back by an old, slow past.
///
/// One departure from Netflix: their Gradient2 ignores dropped calls.
/// Under sustained overload the long average drifts up with the queue, the
/// gradient stays near 1, and the limit climbs to its maximum while the
/// backend refuses the excess. Here a drop cuts the limit by 10 %, as in
/// AIMD, so a backend's bounded queue caps the limit too.
#[derive(Clone, Debug)]
pub struct Gradient2 {
    bounds: LimitBounds,
    limit: f64,
    long_rtt: Option<f64>,
    samples: u64,
    /// Samples in the long window (an exponential average over ~N).
    long_window: u64,
    tolerance: f64,
    smoothing: f64,
    queue_size: f64,
}

impl Gradient2 {
    /// Netflix's defaults: window 600, tolerance 1.5, smoothing 0.2, queue 4.
    pub fn new(bounds: LimitBounds) -> Self {
        Self {
            bounds,
            limit: bounds.initial as f64,
            long_rtt: None,
            samples: 0,
            long_window: 600,
            tolerance: 1.5,
            smoothing: 0.2,
            queue_size: 4.0,
        }
    }

    /// The long-window average latency.
    pub fn long_rtt(&self) -> Option<Duration> {
        self.long_rtt.map(Duration::from_secs_f64)
    }
}

impl LimitAlgorithm for Gradient2 {
    fn limit(&self) -> usize {
        self.limit as usize
    }

    fn update(&mut self, sample: Sample) {
        let short = sample.rtt.as_secs_f64().max(1e-9);
        self.samples += 1;
        // A plain mean while warming up (so one odd first sample does not
        // define "normal"), then an exponential average.
        let weight = if self.samples <= WARMUP_SAMPLES {
            1.0 / self.samples as f64
        } else {
            2.0 / (self.long_window as f64 + 1.0)
        };
        let long = match self.long_rtt {
            None => short,
            Some(long) => long + (short - long) * weight,
        };
        let long = if long / short > 2.0 {
            long * 0.95
        } else {
            long
        };
        self.long_rtt = Some(long);
        if sample.dropped {
            self.limit = self.bounds.clamp(self.limit * 0.9);
            return;
        }
        if (sample.inflight as f64) < self.limit / 2.0 {
            return;
        }
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        let target = self.limit * gradient + self.queue_size;
        self.limit = self
            .bounds
            .clamp(self.limit * (1.0 - self.smoothing) + target * self.smoothing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(millis: u64) -> Sample {
        Sample {
            rtt: Duration::from_millis(millis),
            inflight: 0,
            dropped: false,
        }
    }

    /// The long average follows Netflix's: a mean over 10 warm-up samples,
    /// then an exponential average with factor 2 / 601.
    #[test]
    fn adaptive_gradient2_long_rtt_warms_up_then_decays_exponentially() {
        let mut limit = Gradient2::new(LimitBounds {
            initial: 20,
            min: 1,
            max: 200,
        });
        // Five samples of 10 ms and five of 30 ms: the plain mean, 20 ms.
        for millis in [10, 30, 10, 30, 10, 30, 10, 30, 10, 30] {
            limit.update(sample(millis));
        }
        let warmed = limit.long_rtt().expect("measured").as_secs_f64();
        assert!((warmed - 0.020).abs() < 1e-9, "{warmed}");
        limit.update(sample(50));
        let after = limit.long_rtt().expect("measured").as_secs_f64();
        let expected = 0.020 + (0.050 - 0.020) * 2.0 / 601.0;
        assert!((after - expected).abs() < 1e-9, "{after} vs {expected}");
    }
}
