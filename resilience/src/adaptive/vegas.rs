//! Vegas: keep the estimated queue small but not empty.

use std::time::Duration;

use super::{LimitAlgorithm, LimitBounds, Sample};

/// Delay-based limit after TCP Vegas, as in Netflix's `VegasLimit`.
///
/// `rtt_noload` is the fastest call seen: the latency with no queue. Then
/// `queue = limit × (1 − rtt_noload / rtt)` estimates how many calls are
/// waiting. Fewer than α (3·log₁₀ limit): grow; more than β (6·log₁₀
/// limit): shrink. Every so often `rtt_noload` is re-measured, because
/// the backend's no-load latency can change (a deploy, a cache warming).
///
/// Pitfall: Netflix's `VegasLimit` re-measures by taking the next sample
/// as the new no-load latency — under sustained load that sample includes
/// the queue, Vegas then believes there is no queue, and the limit jumps.
/// No-load latency can only be measured without load, so the probe here
/// works like BBR's ProbeRTT: halve the limit for about one round of calls
/// so the queue drains, and keep the fastest call seen meanwhile.
///
/// Drops cut the limit at most once per `limit` samples — about one round
/// trip of calls — as TCP reacts once per congestion event, not once per
/// lost packet. Otherwise a burst of calls that were already in flight
/// when the backend filled up cuts the limit once each and drives it far
/// below capacity.
#[derive(Clone, Debug)]
pub struct Vegas {
    bounds: LimitBounds,
    limit: f64,
    rtt_noload: Option<Duration>,
    samples_since_probe: u64,
    samples_since_drop_cut: u64,
    probe: Option<Probe>,
    /// Re-probe after `probe_multiplier × limit` samples.
    probe_multiplier: u64,
}

/// A no-load latency measurement in progress.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// The limit to return to.
    saved_limit: f64,
    samples_left: u64,
    fastest: Option<Duration>,
}

impl Vegas {
    pub fn new(bounds: LimitBounds) -> Self {
        Self {
            bounds,
            limit: bounds.initial as f64,
            rtt_noload: None,
            samples_since_probe: 0,
            samples_since_drop_cut: u64::MAX,
            probe: None,
            probe_multiplier: 30,
        }
    }
}

fn log10(limit: f64) -> f64 {
    limit.max(1.0).log10().max(1.0)
}

impl LimitAlgorithm for Vegas {
    fn limit(&self) -> usize {
        self.limit as usize
    }

    fn update(&mut self, sample: Sample) {
        if let Some(probe) = &mut self.probe {
            if !sample.dropped {
                probe.fastest = Some(probe.fastest.map_or(sample.rtt, |f| f.min(sample.rtt)));
            }
            probe.samples_left -= 1;
            if probe.samples_left == 0 {
                self.rtt_noload = probe.fastest.or(self.rtt_noload);
                self.limit = probe.saved_limit;
                self.probe = None;
            }
            return;
        }
        self.samples_since_probe += 1;
        self.samples_since_drop_cut = self.samples_since_drop_cut.saturating_add(1);
        if sample.dropped {
            if self.samples_since_drop_cut >= self.limit as u64 {
                self.samples_since_drop_cut = 0;
                self.limit = self.bounds.clamp(self.limit - log10(self.limit));
            }
            return;
        }
        if self.samples_since_probe > self.probe_multiplier * self.limit as u64 {
            self.samples_since_probe = 0;
            self.probe = Some(Probe {
                saved_limit: self.limit,
                samples_left: (self.limit as u64).max(1) * 2,
                fastest: None,
            });
            self.limit = self.bounds.clamp(self.limit / 2.0);
            return;
        }
        let noload = match self.rtt_noload {
            Some(noload) if sample.rtt >= noload => noload,
            _ => {
                self.rtt_noload = Some(sample.rtt);
                return;
            }
        };
        let limit = self.limit;
        let queue =
            (limit * (1.0 - noload.as_secs_f64() / sample.rtt.as_secs_f64().max(1e-9))).ceil();
        let step = log10(limit);
        let next = if (sample.inflight as f64) * 2.0 < limit {
            return;
        } else if queue <= step {
            limit + 6.0 * step
        } else if queue < 3.0 * step {
            limit + step
        } else if queue > 6.0 * step {
            limit - step
        } else {
            return;
        };
        self.limit = self.bounds.clamp(next);
    }
}
