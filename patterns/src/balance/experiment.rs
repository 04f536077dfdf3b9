//! The experiment every balancer is judged by: N `Flaky` backends, one of
//! them ten times slower, and an open-loop stream of calls.
//!
//! The same code runs in two clocks. The tests run it in tokio's paused
//! time over in-process backends: seeded, deterministic, and a minute of
//! traffic in well under a second. `dslab bench balance` runs it in real
//! time over gRPC on loopback. Either way each balancer gets fresh
//! backends with the same scripts and the same arrival times — like for
//! like — and tower's own `p2c` + `PeakEwma` balancer runs beside ours.
//!
//! Why open loop: arrivals do not wait for answers, as on a real service
//! with many users. A closed loop (each client waits for its previous
//! call) would slow the offered load down exactly when a backend
//! struggles, hiding the queue that round robin builds.
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use resilience::flaky::Flaky;
use resilience::flaky::proto::CallRequest;
use resilience::flaky::proto::flaky_client::FlakyClient;
use tokio::time::Instant;
use tower::balance::p2c;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower_service::Service;

pub use super::scenario::{MAX_REQUESTS, Outcome, Scenario};
use super::{Balance, BoxError, LoadConfig, Pick, Policy};
use crate::Result;

/// Requests the shared balancer may hold queued for its worker.
const BUFFER: usize = 1_024;

/// Which balancer a run uses: one of ours, or the peer.
#[derive(Clone, Debug)]
pub enum Balancer {
    Ours(Policy),
    /// tower's `p2c::Balance` over `PeakEwmaDiscover`, with the same RTT
    /// defaults as ours.
    TowerPeakEwma,
}

impl Balancer {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ours(policy) => policy.name(),
            Self::TowerPeakEwma => "tower p2c+peak-ewma",
        }
    }

    /// Our five, then tower's.
    pub fn all(seed: u64) -> Vec<Self> {
        let mut all: Vec<Self> = Policy::all(seed).into_iter().map(Self::Ours).collect();
        all.push(Self::TowerPeakEwma);
        all
    }
}

/// Sends the scenario's arrivals, each as its own task calling `call`;
/// returns every latency (ascending) and how many calls failed.
pub async fn drive<C, F>(scenario: &Scenario, mut call: C) -> (Vec<Duration>, u64)
where
    C: FnMut() -> F,
    F: Future<Output = bool> + Send + 'static,
{
    let start = Instant::now();
    let deadline = scenario.deadline;
    let mut calls = Vec::with_capacity(scenario.requests);
    for at in scenario.arrivals() {
        tokio::time::sleep_until(start + at).await;
        let attempt = call();
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            // Dropping the call at the deadline cancels it downstream,
            // which frees its place in the backend's queue.
            let ok = matches!(tokio::time::timeout(deadline, attempt).await, Ok(true));
            (sent.elapsed().min(deadline), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(calls.len());
    let mut failed = 0;
    for handle in calls {
        match handle.await {
            Ok((latency, ok)) => {
                latencies.push(latency);
                failed += u64::from(!ok);
            }
            Err(_) => {
                latencies.push(deadline);
                failed += 1;
            }
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

/// tower's balancer draws from its own `Rng` trait; seeding it keeps a
/// simulated run of the peer replayable too.
#[derive(Debug)]
struct SeededRng(SmallRng);

impl tower::util::rng::Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        self.0.random()
    }
}

/// Runs `scenario` through `balancer` over `services`, one per backend in
/// `backends` (in-process `FlakyServer`s, or channels to them), shared by
/// every call through a `tower::buffer::Buffer`.
pub async fn run<S, B>(
    scenario: &Scenario,
    balancer: Balancer,
    backends: &[Flaky],
    services: Vec<S>,
) -> Result<Outcome>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    scenario.validate()?;
    let before: Vec<u64> = backends.iter().map(|b| b.stats().calls).collect();
    let name = balancer.name();
    let config = LoadConfig::default();
    let (latencies, failed) = match balancer {
        Balancer::Ours(policy) => {
            let mut balance = Balance::new(policy, config);
            for ((i, service), weight) in services.into_iter().enumerate().zip(scenario.weights()) {
                balance.insert(format!("n{}", i + 1), service, weight)?;
            }
            drive_client(scenario, FlakyClient::new(Buffer::new(balance, BUFFER))).await
        }
        Balancer::TowerPeakEwma => {
            let discover = PeakEwmaDiscover::new(
                ServiceList::new(services),
                config.default_rtt,
                config.decay,
                CompleteOnResponse::default(),
            );
            let rng = SeededRng(SmallRng::seed_from_u64(scenario.seed));
            let balance = p2c::Balance::from_rng(discover, rng);
            drive_client(scenario, FlakyClient::new(Buffer::new(balance, BUFFER))).await
        }
    };
    let calls = backends
        .iter()
        .zip(before)
        .map(|(b, before)| b.stats().calls - before)
        .collect();
    Ok(Outcome {
        balancer: name,
        latencies,
        failed,
        calls,
        slow_node: scenario.slow_node(),
    })
}

async fn drive_client<T>(scenario: &Scenario, client: FlakyClient<T>) -> (Vec<Duration>, u64)
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    drive(scenario, || {
        let mut client = client.clone();
        async move { client.call(CallRequest::default()).await.is_ok() }
    })
    .await
}

/// Runs every balancer over fresh in-process backends (no network): what
/// the tests run in paused time.
pub async fn run_in_process(scenario: &Scenario, balancer: Balancer) -> Result<Outcome> {
    let backends = scenario.backends()?;
    let services = backends.iter().map(|b| b.clone().into_service()).collect();
    run(scenario, balancer, &backends, services).await
}
