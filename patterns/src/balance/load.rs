//! The load the balancer tracks per endpoint: requests in flight, requests
//! sent, and the RTT estimate — shared between the balancer (which reads
//! it to pick) and each response future (which updates it on completion).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::core::{LoadView, RttEstimate};

/// How the RTT estimate starts and forgets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadConfig {
    /// The RTT assumed for an endpoint not measured yet.
    pub default_rtt: Duration,
    /// τ of the estimate's decay.
    pub decay: Duration,
}

impl Default for LoadConfig {
    /// Linkerd's defaults: 30 ms for an unmeasured endpoint, τ = 10 s.
    fn default() -> Self {
        Self {
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Cell {
    weight: u32,
    outstanding: AtomicU32,
    sent: AtomicU64,
    rtt: Mutex<RttEstimate>,
    decay: Duration,
}

/// One endpoint's load. Clones share it.
#[derive(Clone, Debug)]
pub struct Load {
    cell: Arc<Cell>,
}

impl Load {
    pub fn new(weight: u32, config: LoadConfig, now: Instant) -> Self {
        Self {
            cell: Arc::new(Cell {
                weight,
                outstanding: AtomicU32::new(0),
                sent: AtomicU64::new(0),
                rtt: Mutex::new(RttEstimate::new(config.default_rtt, now)),
                decay: config.decay,
            }),
        }
    }

    /// Requests sent to this endpoint so far.
    pub fn sent(&self) -> u64 {
        self.cell.sent.load(Ordering::Relaxed)
    }

    /// Marks one request as sent at `now`; its guard tracks it until done.
    pub fn start(&self, now: Instant) -> InFlight {
        self.cell.outstanding.fetch_add(1, Ordering::AcqRel);
        self.cell.sent.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load: self.clone(),
            sent_at: now,
        }
    }

    /// Sets the outstanding count directly: for benchmarks and tests that
    /// need a given load state without real requests in flight.
    pub fn set_outstanding(&self, outstanding: u32) {
        self.cell.outstanding.store(outstanding, Ordering::Release);
    }

    /// Folds in a round trip directly (see [`Self::set_outstanding`]).
    pub fn observe(&self, rtt: Duration, now: Instant) {
        self.estimate().observe(rtt, now, self.cell.decay);
    }

    fn estimate(&self) -> std::sync::MutexGuard<'_, RttEstimate> {
        // An estimate is a plain number pair: still meaningful after a
        // panicking holder.
        self.cell.rtt.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LoadView for Load {
    fn outstanding(&self) -> u32 {
        self.cell.outstanding.load(Ordering::Acquire)
    }

    fn weight(&self) -> u32 {
        self.cell.weight
    }

    fn rtt_nanos(&self, now: Instant) -> f64 {
        self.estimate().at(now, self.cell.decay)
    }
}

/// One request in flight. Completing it records its round trip; dropping
/// it (the caller gave up) only ends it, since an abandoned call says
/// nothing about how fast the endpoint is.
#[derive(Debug)]
pub struct InFlight {
    load: Load,
    sent_at: Instant,
}

impl InFlight {
    /// The response arrived at `now`, success or failure alike.
    ///
    /// Pitfall: a node that fails fast looks fast. Peak-EWMA (here, in
    /// tower and in Finagle) counts failures' round trips too, so a node
    /// answering every call with an instant error attracts traffic; pair
    /// it with outlier ejection or a circuit breaker.
    pub fn complete(self, now: Instant) {
        self.load
            .observe(now.saturating_duration_since(self.sent_at), now);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Saturating: `set_outstanding` may have lowered the count under
        // requests still in flight, and a wrapped count would read as 4
        // billion requests.
        let _ = self
            .load
            .cell
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}
