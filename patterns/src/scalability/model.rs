//! What one call to the contended server costs, and a deterministic model
//! of the throughput that follows from it.

use std::time::Duration;

use super::core::{Point, Usl, UslError};

/// The longest any one cost may be: a call must stay well inside the
/// stack's unary deadline even with [`MAX_WORKERS`] callers queued.
pub const MAX_COST: Duration = Duration::from_millis(100);
/// The most concurrent callers the cost model (and the service's
/// cross-talk) accounts for; more are refused by the service.
pub const MAX_WORKERS: usize = 1_024;
/// The longest the lock is ever held by one call, however many are in
/// flight: it bounds the CPU one call can burn on an async worker.
pub const MAX_HOLD: Duration = Duration::from_millis(100);

/// The three costs of one call, each a [`Duration`].
///
/// - `parallel`: work that overlaps freely with other calls (waiting on a
///   disk or a downstream service);
/// - `serial`: work done while holding the one shared lock (contention);
/// - `crosstalk`: extra time inside the lock for each *other* call in
///   flight (coherency: invalidating a cache line, a lock table, a
///   replica per peer). With N in flight, the lock is held for
///   `serial + crosstalk × (N − 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Costs {
    pub parallel: Duration,
    pub serial: Duration,
    pub crosstalk: Duration,
}

impl Costs {
    pub fn new(
        parallel: Duration,
        serial: Duration,
        crosstalk: Duration,
    ) -> Result<Self, UslError> {
        for (name, cost) in [
            ("parallel", parallel),
            ("serial", serial),
            ("crosstalk", crosstalk),
        ] {
            if cost > MAX_COST {
                return Err(UslError::InvalidParameter {
                    name,
                    value: cost.as_secs_f64(),
                    reason: "exceeds the 100 ms limit per cost",
                });
            }
        }
        Ok(Self {
            parallel,
            serial,
            crosstalk,
        })
    }

    /// How long the lock is held when `in_flight` calls are in the server,
    /// at most [`MAX_HOLD`].
    pub fn hold(&self, in_flight: usize) -> Duration {
        let others = in_flight.clamp(1, MAX_WORKERS) - 1;
        // Cannot overflow: at most 100 ms × 1023.
        (self.serial + self.crosstalk * others as u32).min(MAX_HOLD)
    }

    /// The USL parameters these costs roughly correspond to: one caller
    /// completes a call every `parallel + serial`, so λ = 1/(W+s); under
    /// saturation the lock admits one call per `s + k(N−1)`, which the
    /// law reproduces for large N with σ = s/(W+s) and κ = k/(W+s).
    /// Below saturation the law is only an approximation of this server:
    /// its knee is sharp where the law's is round, so a fit trades σ for
    /// a larger λ and κ (keeping λ/κ near 1/k, the tail), places the peak
    /// within a fifth, and underestimates its height by up to a quarter.
    pub fn expected_usl(&self) -> Result<Usl, UslError> {
        let cycle = (self.parallel + self.serial).as_secs_f64();
        if cycle <= 0.0 {
            return Err(UslError::InvalidParameter {
                name: "parallel + serial",
                value: cycle,
                reason: "a call must cost something",
            });
        }
        Usl::new(
            1.0 / cycle,
            self.serial.as_secs_f64() / cycle,
            self.crosstalk.as_secs_f64() / cycle,
        )
    }
}

/// Throughput of the contended server with `n` callers in a closed loop
/// (each sends its next call as soon as the last returns), when every cost
/// is exact. A deterministic simulation, solved in closed form:
///
/// Start all `n` callers together. The lock serves them back to back, one
/// every D = hold(n); the first is back for more after W + D. If the lock
/// finishes the other n − 1 before then (n·D ≤ W + D), it idles and the
/// system cycles every W + D: X = n / (W + D). Otherwise the lock never
/// idles again: X = 1 / D. So X(n) = min(n / (W + D), 1 / D), exactly, in
/// the steady state — the asymptotic bounds of operational analysis are
/// tight when nothing is random.
pub fn simulated_throughput(costs: &Costs, n: usize) -> Result<f64, UslError> {
    if n == 0 || n > MAX_WORKERS {
        return Err(UslError::InvalidParameter {
            name: "n",
            value: n as f64,
            reason: "callers must be 1..=1024",
        });
    }
    let hold = costs.hold(n).as_secs_f64();
    let cycle = costs.parallel.as_secs_f64() + hold;
    if hold <= 0.0 {
        return Err(UslError::InvalidParameter {
            name: "serial",
            value: hold,
            reason: "without a serial section the model has no bottleneck",
        });
    }
    Ok((n as f64 / cycle).min(1.0 / hold))
}

/// A sweep of [`simulated_throughput`] at each level.
pub fn simulated_sweep(costs: &Costs, levels: &[usize]) -> Result<Vec<Point>, UslError> {
    levels
        .iter()
        .map(|&n| Ok(Point::new(n as f64, simulated_throughput(costs, n)?)))
        .collect()
}
