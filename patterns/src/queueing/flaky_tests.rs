//! Little's law on a real service: a `Flaky` backend over the simulated
//! network, measured from outside the way an operator would.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::sim::{self, Simulation, for_each_seed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use resilience::flaky::proto::flaky_client::FlakyClient;
use resilience::flaky::proto::{CallRequest, FILE_DESCRIPTOR_SET};
use resilience::flaky::{Behaviour, Flaky};
use tokio::time::Instant;

/// What the client side measured, with three separate instruments.
#[derive(Debug, Default)]
struct Measured {
    /// Samples of the in-flight gauge, one per millisecond.
    in_flight_samples: Vec<u64>,
    in_flight: u64,
    completed: u64,
    latency_total: Duration,
}

/// Episode 26. Open-loop Poisson load on a Flaky that serves 8 calls at
/// once in 15–25 ms and queues 32 more: 300 calls/s asked, about 260/s
/// sent (tokio's millisecond timer rounds each gap up), so about 65% busy
/// with some queueing and about 6 calls in flight. Three
/// independent measurements — a gauge of calls in flight sampled every
/// millisecond, a completion counter, per-call latencies — satisfy
/// in-flight = throughput × latency within 5%, on every seed.
#[test]
fn queueing_littles_law_holds_on_a_real_flaky_backend() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed)
            .hosts(1)
            .duration(Duration::from_secs(60))
            .build();
        let backend = Flaky::new(
            "backend",
            Behaviour {
                capacity: 8,
                queue: 32,
                latency_base: Duration::from_millis(15),
                latency_jitter: Duration::from_millis(10),
                seed,
                ..Behaviour::healthy()
            },
        );
        sim.host("n1", move || {
            let backend = backend.clone();
            async move {
                RpcServer::new()
                    .add_service(backend.into_service(), FILE_DESCRIPTOR_SET)
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
        let measured = Rc::new(RefCell::new(Measured::default()));
        let shared = measured.clone();
        sim.client(async move {
            let client =
                FlakyClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1")));
            // Warm the connection so the load measures calls, not the
            // handshake.
            client.clone().call(CallRequest::default()).await?;
            let mut rng = SmallRng::seed_from_u64(seed);
            let load_for = Duration::from_secs(4);
            let started = Instant::now();
            let sampler = {
                let shared = shared.clone();
                tokio::task::spawn_local(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(1));
                    while started.elapsed() < load_for {
                        tick.tick().await;
                        let mut m = shared.borrow_mut();
                        let now = m.in_flight;
                        m.in_flight_samples.push(now);
                    }
                })
            };
            let mut calls = Vec::new();
            while started.elapsed() < load_for {
                let gap = -(1.0 - rng.random::<f64>()).ln() / 300.0;
                tokio::time::sleep(Duration::from_secs_f64(gap)).await;
                let mut client = client.clone();
                let shared = shared.clone();
                calls.push(tokio::task::spawn_local(async move {
                    shared.borrow_mut().in_flight += 1;
                    let sent = Instant::now();
                    let mut request = tonic::Request::new(CallRequest::default());
                    request.set_timeout(Duration::from_secs(5));
                    let result = client.call(request).await;
                    let mut m = shared.borrow_mut();
                    m.in_flight -= 1;
                    m.completed += 1;
                    m.latency_total += sent.elapsed();
                    result.map(|_| ())
                }));
            }
            sampler.await?;
            for call in calls {
                call.await??;
            }
            Ok(())
        });
        sim.run()?;
        let m = measured.borrow();
        let window = m.in_flight_samples.len() as f64 / 1_000.0;
        let in_flight = m.in_flight_samples.iter().sum::<u64>() as f64
            / m.in_flight_samples.len().max(1) as f64;
        let throughput = m.completed as f64 / window;
        let latency = m.latency_total.as_secs_f64() / m.completed.max(1) as f64;
        let predicted =
            crate::queueing::littles_law_in_system(throughput, Duration::from_secs_f64(latency))?;
        let error = (in_flight - predicted).abs() / predicted;
        assert!(
            error < 0.05,
            "seed {seed}: gauge {in_flight:.2} in flight, λW = {throughput:.1}/s × {:.1} ms = {predicted:.2}",
            latency * 1_000.0
        );
        assert!(
            in_flight > 3.0,
            "the backend was under load: {in_flight:.2}"
        );
        Ok(())
    });
}
