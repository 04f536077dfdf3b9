//! The pure part of load balancing: what a policy may know about an
//! endpoint, and how each policy picks one. No IO and no clock: the time
//! of the pick is passed in, so a simulation and a benchmark drive the same
//! code a live balancer does.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// A peak-sensitive, exponentially weighted moving average of round-trip
/// time: Finagle's and Linkerd's `PeakEwma`, and tower's.
///
/// A sample above the estimate replaces it at once (the *peak*): one slow
/// answer is enough to make an endpoint look slow. A sample below it is
/// blended in with weight `1 − e^(−Δ/τ)`, Δ the time since the previous
/// sample and τ the decay, so good news is believed slowly. Between
/// samples the estimate decays towards zero with the same τ, so an
/// endpoint shunned for being slow is eventually tried again: without the
/// decay it would never be picked, never measured, and never forgiven.
///
/// Simplified: reading the estimate does not update it. tower and Finagle
/// fold every read in as an observation of zero; the decayed value is the
/// same (decays compose), only the weight given to the next real sample
/// differs — here it grows with the time since the last *sample*, not the
/// last read, so it does not depend on how often the balancer looks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RttEstimate {
    nanos: f64,
    stamp: Instant,
}

impl RttEstimate {
    /// An endpoint not measured yet is assumed to answer in `initial`.
    pub fn new(initial: Duration, now: Instant) -> Self {
        Self {
            nanos: initial.as_nanos() as f64,
            stamp: now,
        }
    }

    /// The estimate at `now`, in nanoseconds, decayed since the last sample.
    pub fn at(&self, now: Instant, decay: Duration) -> f64 {
        self.nanos * weight_of_past(now.saturating_duration_since(self.stamp), decay)
    }

    /// Folds in one measured round trip that ended at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let elapsed = now.saturating_duration_since(self.stamp);
        let past = weight_of_past(elapsed, decay);
        let decayed = self.nanos * past;
        self.nanos = if rtt > decayed {
            rtt
        } else {
            decayed + rtt * (1.0 - past)
        };
        self.stamp = self.stamp.max(now);
    }
}

/// `e^(−elapsed/decay)`; a zero decay forgets the past at once.
fn weight_of_past(elapsed: Duration, decay: Duration) -> f64 {
    if decay.is_zero() {
        return 0.0;
    }
    (-elapsed.as_secs_f64() / decay.as_secs_f64()).exp()
}

/// What a policy may read about one endpoint when it picks.
pub trait LoadView {
    /// Requests sent to it that have not completed.
    fn outstanding(&self) -> u32;
    /// Its static share, for weighted policies (1 when unweighted).
    fn weight(&self) -> u32;
    /// Its peak-EWMA round-trip estimate at `now`, in nanoseconds.
    fn rtt_nanos(&self, now: Instant) -> f64;
}

/// A load-balancing policy: chooses one of the ready endpoints.
pub trait Pick {
    /// The policy's name, as `dslab bench balance` prints it.
    fn name(&self) -> &'static str;

    /// Picks one of `ready` (indices into `endpoints`, ascending), or
    /// `None` when `ready` is empty. Never panics on any input.
    fn pick<L: LoadView>(
        &mut self,
        endpoints: &[L],
        ready: &[usize],
        now: Instant,
    ) -> Option<usize>;

    /// The endpoint set changed (indices moved): forget per-index state.
    fn reset(&mut self) {}
}

/// Round robin: each ready endpoint in turn, blind to load.
///
/// This is the episode's broken twin. It is fair in *requests*, not in
/// *work*: a node that became ten times slower still gets one request in
/// N, and if that exceeds what it can serve its queue grows without bound
/// — round robin keeps feeding the slow node while the fast ones idle.
#[derive(Clone, Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Pick for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn pick<L: LoadView>(&mut self, _: &[L], ready: &[usize], _: Instant) -> Option<usize> {
        // The first ready index at or after the cursor, wrapping around: a
        // not-ready endpoint is skipped, not given a double turn later.
        let at = ready.partition_point(|&i| i < self.next);
        let chosen = *ready.get(at).or_else(|| ready.first())?;
        self.next = chosen + 1;
        Some(chosen)
    }

    fn reset(&mut self) {
        self.next = 0;
    }
}

/// Smooth weighted round robin, nginx's algorithm: every pick, each ready
/// endpoint's `current` grows by its weight; the largest wins and is set
/// back by the total. Weights {5, 1, 1} give `a a b a c a a`: the heavy
/// node's turns are spread out, not sent as a burst of five.
#[derive(Clone, Debug, Default)]
pub struct SmoothWeighted {
    current: Vec<i64>,
}

impl Pick for SmoothWeighted {
    fn name(&self) -> &'static str {
        "weighted-round-robin"
    }

    fn pick<L: LoadView>(&mut self, endpoints: &[L], ready: &[usize], _: Instant) -> Option<usize> {
        if self.current.len() != endpoints.len() {
            self.current = vec![0; endpoints.len()];
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for &i in ready {
            let Some(endpoint) = endpoints.get(i) else {
                continue;
            };
            let weight = i64::from(endpoint.weight());
            self.current[i] += weight;
            total += weight;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        self.current[chosen] -= total;
        Some(chosen)
    }

    fn reset(&mut self) {
        self.current.clear();
    }
}

/// Least outstanding requests ("least connections"): the ready endpoint
/// with the fewest requests in flight. A slow node holds its requests
/// longer, so it counts as busy and is passed over: load-aware without
/// measuring any latency.
///
/// Pitfall: ties must not always go to the lowest index, or at light load
/// (everyone at zero) the first endpoint takes every request. Ties are
/// broken by a rotating starting point.
#[derive(Clone, Debug, Default)]
pub struct LeastOutstanding {
    start: usize,
}

impl Pick for LeastOutstanding {
    fn name(&self) -> &'static str {
        "least-outstanding"
    }

    fn pick<L: LoadView>(&mut self, endpoints: &[L], ready: &[usize], _: Instant) -> Option<usize> {
        let n = ready.len();
        if n == 0 {
            return None;
        }
        self.start = (self.start + 1) % n;
        let mut best: Option<(u32, usize)> = None;
        for k in 0..n {
            let i = ready[(self.start + k) % n];
            let Some(endpoint) = endpoints.get(i) else {
                continue;
            };
            let load = endpoint.outstanding();
            if best.is_none_or(|(least, _)| load < least) {
                best = Some((load, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// Draws two distinct ready endpoints at random: the heart of p2c.
fn two_choices(rng: &mut SmallRng, ready: &[usize]) -> Option<(usize, usize)> {
    match ready.len() {
        0 => None,
        1 => Some((ready[0], ready[0])),
        n => {
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            Some((ready[a], ready[b]))
        }
    }
}

/// Power of two choices over outstanding requests: two random ready
/// endpoints, the less loaded one wins. Mitzenmacher: the maximum load
/// drops from Θ(log n / log log n) for one random choice to
/// Θ(log log n) — and, unlike least-outstanding, it needs no scan of every
/// endpoint and no agreement between many clients that would otherwise
/// all rush to the same "least loaded" node.
#[derive(Clone, Debug)]
pub struct PowerOfTwoChoices {
    rng: SmallRng,
}

impl PowerOfTwoChoices {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }
}

impl Pick for PowerOfTwoChoices {
    fn name(&self) -> &'static str {
        "p2c"
    }

    fn pick<L: LoadView>(&mut self, endpoints: &[L], ready: &[usize], _: Instant) -> Option<usize> {
        let (a, b) = two_choices(&mut self.rng, ready)?;
        let load = |i: usize| endpoints.get(i).map_or(u32::MAX, LoadView::outstanding);
        Some(if load(b) < load(a) { b } else { a })
    }
}

/// Peak-EWMA (Finagle, Linkerd): power of two choices over the cost
/// `RTT estimate × (outstanding + 1)`. Latency and queue depth together:
/// an idle but slow node costs its slow RTT, a fast node costs more only
/// once it holds many requests — so the slow node is tried only when the
/// fast ones are genuinely backed up, or when its estimate has decayed.
#[derive(Clone, Debug)]
pub struct PeakEwma {
    rng: SmallRng,
}

impl PeakEwma {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }
}

/// Peak-EWMA's cost of sending one more request to `endpoint` at `now`.
pub fn peak_ewma_cost<L: LoadView>(endpoint: &L, now: Instant) -> f64 {
    endpoint.rtt_nanos(now) * f64::from(endpoint.outstanding().saturating_add(1))
}

impl Pick for PeakEwma {
    fn name(&self) -> &'static str {
        "peak-ewma"
    }

    fn pick<L: LoadView>(
        &mut self,
        endpoints: &[L],
        ready: &[usize],
        now: Instant,
    ) -> Option<usize> {
        let (a, b) = two_choices(&mut self.rng, ready)?;
        let cost = |i: usize| {
            endpoints
                .get(i)
                .map_or(f64::INFINITY, |e| peak_ewma_cost(e, now))
        };
        Some(if cost(b) < cost(a) { b } else { a })
    }
}
