//! The runner's client: it calls the replicas through their proxies at a
//! steady rate and records how each call ended.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use patterns::chaos::WindowMetrics;
use resilience::flaky::proto::CallRequest;
use resilience::flaky::proto::flaky_client::FlakyClient;
use tonic::transport::Channel;

use super::config::ProcessGroupConfig;

/// Sends `rate` calls per second, each with up to one attempt per
/// replica (with failover), and records how each call ended.
pub(crate) async fn probe(
    clients: Vec<FlakyClient<Channel>>,
    config: ProcessGroupConfig,
    metrics: Arc<Mutex<WindowMetrics>>,
) {
    let timeout = Duration::from_millis(config.attempt_timeout_ms);
    let attempts = if config.failover { clients.len() } else { 1 };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for id in 0usize.. {
        tick.tick().await;
        let clients = clients.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut ok = false;
            for attempt in 0..attempts {
                let mut client = clients[(id + attempt) % clients.len()].clone();
                let call = client.call(CallRequest {
                    payload: "chaos".into(),
                });
                if matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(_))) {
                    ok = true;
                    break;
                }
            }
            let mut window = metrics.lock().unwrap_or_else(PoisonError::into_inner);
            window.finished += 1;
            window.succeeded += u64::from(ok);
            window.latencies.push(started.elapsed());
        });
    }
}
