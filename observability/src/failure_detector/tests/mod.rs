//! Failure detectors: the monitor's bookkeeping, the gRPC service on the
//! simulated and the real network, and the trade-off experiment's maths.

mod experiment;
mod monitor;
mod service;

use std::time::Duration;

use super::{MonitorConfig, PhiConfig};

/// The heartbeat period the monitor and service tests use.
const INTERVAL: Duration = Duration::from_millis(100);

/// A monitor for 100 ms heartbeats: phi 8 with 300 ms of allowance, or a
/// 500 ms timeout, for at most 8 peers.
fn fast_config() -> MonitorConfig {
    MonitorConfig {
        phi: PhiConfig {
            threshold: 8.0,
            max_sample_size: 100,
            min_std_deviation: Duration::from_millis(20),
            acceptable_heartbeat_pause: Duration::from_millis(300),
            first_heartbeat_estimate: INTERVAL,
        },
        timeout: Duration::from_millis(500),
        max_peers: 8,
    }
}
