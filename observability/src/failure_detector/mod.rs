//! Failure detectors: turning a peer's silence into a suspicion.
//!
//! Episode: 13, "FLP Impossibility & Practical Consensus" (also 4, 11)
//! Pattern: observability / failure detection (heartbeats, timeouts, phi accrual)
//! Try it:  cargo run -- demo failure-detectors
//! Test it: cargo test -p observability failure_detector
//!
//! FLP says that in an asynchronous system no one can tell a crashed
//! process from a slow one. Chandra and Toueg's answer is to give that job
//! to a *failure detector* that is allowed to be wrong, and to make
//! consensus survive its mistakes (Raft's election timeout is one). So the
//! question is not whether a detector errs but how: every detector trades
//! **detection time** (crash → first suspicion) against **false
//! positives** (suspicions of a peer that was only late), and this module
//! measures that trade.
//!
//! - [`FixedTimeout`] suspects after T of silence;
//! - [`PhiAccrual`] fits a normal distribution to the peer's recent
//!   inter-arrival times and suspects once the silence is 10^-phi unlikely;
//! - [`monitor`] is both, for a bounded set of declared peers, and
//!   [`service`] serves it as the `observability.v1.Heartbeat` gRPC service
//!   with a [`HeartbeatSender`] for the peers;
//! - [`experiment`] simulates heartbeats through a jittery network, with
//!   GC-like pauses and then a crash, and tabulates the trade-off.
//!
//! The one thing to watch for: the normal fit describes jitter, not
//! stalls. A 2 s garbage-collection pause is "impossible" for a peer whose
//! heartbeats arrive every 1 s ± 20 ms, so phi without an
//! `acceptable_heartbeat_pause` suspects every such pause; the demo shows
//! what that allowance costs and buys.
//!
//! Bounds: a detector's window holds at most [`MAX_WINDOW`] intervals;
//! every duration setting lies in (0, [`MAX_DURATION`]]; a phi threshold
//! lies in (0, [`MAX_PHI_THRESHOLD`]]. The monitor watches at most
//! [`monitor::MAX_PEERS`] peers with ids of at most
//! [`monitor::MAX_PEER_ID_BYTES`], so it holds at most
//! `MAX_PEERS × (window + id)`; undeclared senders are refused, never
//! added.
//!
//! Simplified: one monitor sees each peer through one network path, so a
//! partition between them looks exactly like a crash; real systems
//! (SWIM, Lifeguard) ask other members to probe before they suspect.

mod demo;
pub mod experiment;
pub mod monitor;
pub mod network;
pub mod normal;
pub mod phi;
pub mod service;
#[cfg(test)]
mod tests;
pub mod timeout;
pub mod window;

use std::time::Duration;

use tokio::time::Instant;

pub use demo::failure_detectors_demo;
pub use monitor::{Monitor, MonitorConfig, PeerReport};
pub use phi::{PhiAccrual, PhiConfig};
pub use service::{HeartbeatMonitor, HeartbeatSender, Stall};
pub use timeout::FixedTimeout;

use crate::{Error, Result};

/// The most inter-arrival times a phi detector keeps (Akka keeps 1,000).
pub const MAX_WINDOW: usize = 10_000;
/// The longest timeout, pause allowance or spread a detector accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The highest phi threshold accepted: a claimed error probability of
/// 10^-100 is already far beyond what a normal fit can support.
pub const MAX_PHI_THRESHOLD: f64 = 100.0;

/// What every failure detector does: hear heartbeats, answer "suspect?".
///
/// Time is passed in, so the same detector runs on tokio's clock in the
/// service, on turmoil's simulated clock in tests, and on an experiment's
/// event times hours ahead of the real clock.
pub trait FailureDetector {
    /// Starts the clock at `at` as if a heartbeat had arrived, without
    /// treating the silence before the first real heartbeat as one of the
    /// peer's heartbeat intervals.
    fn start(&mut self, at: Instant);
    /// A heartbeat arrived at `at`. One from before the last is ignored.
    fn heartbeat(&mut self, at: Instant);
    /// Whether the peer is suspected at `now` (never before the clock
    /// has started).
    fn suspect(&self, now: Instant) -> bool;
    /// When the detector will start suspecting if nothing else arrives;
    /// `None` before the clock has started.
    fn suspicion_time(&self) -> Option<Instant>;
}

/// Refuses a zero duration and one beyond [`MAX_DURATION`].
fn check_duration(setting: &'static str, value: Duration) -> Result<()> {
    if value.is_zero() || value > MAX_DURATION {
        return Err(Error::InvalidDetectorSetting {
            setting,
            value: format!("{value:?}"),
            expected: "a duration above zero and at most one day",
        });
    }
    Ok(())
}
