//! The resilience layers on real tonic calls, over the simulated network.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::sim::{self, SimResult, Simulation, for_each_seed};
use resilience::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use resilience::circuit_breaker::{
    BreakerConfig, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State,
};
use resilience::flaky::proto::flaky_client::FlakyClient;
use resilience::flaky::proto::{CallRequest, FILE_DESCRIPTOR_SET, Latency, Outage, Script};
use resilience::flaky::{Behaviour, Flaky};
use resilience::rate_limit::{Gcra, Quota, RateLimitLayer};
use resilience::retry::{BudgetConfig, Idempotency, RetryLayer, RetryPolicy};
use resilience::server::Guarded;
use resilience::timeout::TimeoutLayer;
use tokio::time::Instant;
use tonic::{Code, Request};
use tower::ServiceBuilder;
use tower::layer::Layer;

fn script(latency: Duration, outages: &[(u64, u64)]) -> Script {
    Script {
        latency: Some(Latency {
            base_micros: latency.as_micros() as u64,
            jitter_micros: 0,
            distribution: 0,
        }),
        outages: outages
            .iter()
            .map(|&(start_millis, end_millis)| Outage {
                start_millis,
                end_millis,
                code: 0,
            })
            .collect(),
        ..Script::default()
    }
}

/// Hosts `flaky` on simulated host `name`.
fn host_flaky(sim: &mut Simulation<'_>, name: &str, flaky: Flaky) {
    sim.host(name, move || {
        let flaky = flaky.clone();
        async move {
            RpcServer::new()
                .add_service(flaky.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

/// Episodes 37, 40, 39, 38. The whole client stack against a backend that
/// is down from 1 s to 3 s: once the breaker opens, the backend sees no
/// calls but the breaker's probes; after the outage traffic flows again;
/// and retries stay within their budget.
#[test]
fn full_stack_breaker_and_retry_ride_out_an_outage() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).hosts(1).build();
        let backend = Flaky::new(
            "backend",
            Behaviour::from_script(&script(Duration::from_millis(5), &[(1_000, 3_000)]))?,
        );
        host_flaky(&mut sim, "n1", backend.clone());
        let breaker = CircuitBreaker::new(BreakerConfig {
            sliding_window: SlidingWindow::Count(10),
            minimum_number_of_calls: 10,
            wait_duration_in_open_state: Duration::from_millis(500),
            max_wait_duration_in_open_state: Duration::from_millis(500),
            permitted_calls_in_half_open_state: 2,
            ..BreakerConfig::new("backend")
        })?;
        let policy = RetryPolicy {
            max_attempts: 3,
            budget: Some(BudgetConfig {
                max_tokens: 10.0,
                token_ratio: 0.1,
            }),
            seed,
            ..RetryPolicy::new(Idempotency::Methods(vec![
                "/resilience.v1.Flaky/Call".into(),
            ]))
        };
        let retry = RetryLayer::new(policy)?;
        let stats = retry.stats();
        let observed = backend.clone();
        let observed_breaker = breaker.clone();
        let calls_to_backend_while_open = Rc::new(RefCell::new(0u64));
        let while_open = calls_to_backend_while_open.clone();
        sim.client(async move {
            let channel = ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1"));
            let stack = ServiceBuilder::new()
                .layer(retry)
                .layer(CircuitBreakerLayer::new(breaker.clone()))
                .layer(TimeoutLayer::new(Duration::from_millis(200))?)
                .layer(BulkheadLayer::new(Bulkhead::new(BulkheadConfig {
                    name: "backend".into(),
                    max_concurrent: 4,
                    max_wait: Duration::ZERO,
                })?))
                .service(channel);
            let mut client = FlakyClient::new(stack);
            let started = Instant::now();
            let mut late_successes = 0;
            while started.elapsed() < Duration::from_secs(5) {
                let open = breaker.state() == State::Open;
                let seen = observed.stats().calls;
                let result = client.call(CallRequest::default()).await;
                if open && breaker.state() == State::Open {
                    *while_open.borrow_mut() += observed.stats().calls - seen;
                }
                if started.elapsed() > Duration::from_secs(4) {
                    assert!(result.is_ok(), "after recovery calls succeed: {result:?}");
                    late_successes += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(late_successes > 10);
            Ok(())
        });
        sim.run()?;
        let changes = observed_breaker.state_changes();
        assert_eq!(
            (changes[0].from, changes[0].to),
            (State::Closed, State::Open),
            "the outage opened the breaker"
        );
        assert_eq!(
            observed_breaker.state(),
            State::Closed,
            "and recovery closed it"
        );
        assert_eq!(
            *calls_to_backend_while_open.borrow(),
            0,
            "while open, nothing reached the backend"
        );
        assert!(observed_breaker.metrics().counters.not_permitted > 0);
        // Retries are bounded by the budget: 10 tokens allow 5 retries on
        // credit, then one per ten successes.
        let calls = stats.calls.load(std::sync::atomic::Ordering::Relaxed);
        let retries = stats.attempts.load(std::sync::atomic::Ordering::Relaxed) - calls;
        let bound = 5 + 1 + calls / 10;
        assert!(
            retries <= bound,
            "{retries} retries exceed the budget's bound {bound}"
        );
        assert!(
            stats.amplification() < 1.5,
            "amplification {:.2}",
            stats.amplification()
        );
        Ok(())
    });
}

/// Episode 39. The client allows 300 ms; hop 1 spends 50 ms and forwards;
/// hop 2 would take 2 s. Hop 2 is told what is left, the client gets
/// DeadlineExceeded at its deadline, not after 2 s.
#[test]
fn full_stack_deadline_propagates_across_two_hops() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).hosts(2).build();
        let slow = Flaky::new(
            "slow",
            Behaviour::from_script(&script(Duration::from_secs(2), &[]))?,
        );
        host_flaky(&mut sim, "n2", slow.clone());
        sim.host("n1", || async {
            let next = ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n2"));
            let hop = Flaky::forwarding(
                "hop",
                Behaviour::from_script(&script(Duration::from_millis(50), &[]))?,
                next,
            );
            RpcServer::new()
                .add_service(hop.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        });
        sim.client(async {
            let mut client =
                FlakyClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1")));
            let mut call = Request::new(CallRequest::default());
            call.set_timeout(Duration::from_millis(300));
            let started = Instant::now();
            let status = client.call(call).await.expect_err("hop 2 is too slow");
            assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
            let waited = started.elapsed();
            assert!(
                waited <= Duration::from_millis(320),
                "gave up at the deadline, not later: {waited:?}"
            );
            Ok(())
        });
        sim.run()?;
        let at_hop2 = slow.stats().deadlines_micros;
        assert_eq!(at_hop2.len(), 1);
        let told = Duration::from_micros(at_hop2[0]);
        assert!(
            told > Duration::ZERO && told <= Duration::from_millis(255),
            "hop 2 was given {told:?} of the 300 ms"
        );
        Ok(())
    });
}

/// Episode 38. Each dependency has its own bulkhead: flooding the slow one
/// fills its two slots and is refused at once, while calls to the fast
/// one keep succeeding.
#[test]
fn full_stack_bulkhead_isolates_a_slow_dependency() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).hosts(2).build();
        host_flaky(
            &mut sim,
            "n1",
            Flaky::new(
                "slow",
                Behaviour::from_script(&script(Duration::from_secs(3), &[]))?,
            ),
        );
        host_flaky(
            &mut sim,
            "n2",
            Flaky::new(
                "fast",
                Behaviour::from_script(&script(Duration::from_millis(5), &[]))?,
            ),
        );
        sim.client(async {
            let guarded = |host: &str, name: &str| -> SimResult<_> {
                let bulkhead = Bulkhead::new(BulkheadConfig {
                    name: name.into(),
                    max_concurrent: 2,
                    max_wait: Duration::ZERO,
                })?;
                Ok(FlakyClient::new(BulkheadLayer::new(bulkhead).layer(
                    ClientBuilder::new(Net::Sim).connect_lazy(sim::uri(host)),
                )))
            };
            let slow = guarded("n1", "slow")?;
            let mut fast = guarded("n2", "fast")?;
            let flood: Vec<_> = (0..10)
                .map(|_| {
                    let mut slow = slow.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        (
                            slow.call(CallRequest::default()).await.map(drop),
                            started.elapsed(),
                        )
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(100)).await;
            for _ in 0..5 {
                fast.call(CallRequest::default()).await?;
            }
            let mut refused_fast = 0;
            for call in flood {
                let (result, took) = call.await?;
                if let Err(status) = result {
                    assert_eq!(status.code(), Code::ResourceExhausted);
                    assert!(
                        took < Duration::from_millis(50),
                        "refused at once, not after waiting: {took:?}"
                    );
                    refused_fast += 1;
                }
            }
            assert_eq!(refused_fast, 8, "two slots, ten callers");
            Ok(())
        });
        sim.run()
    });
}

/// Layers work on the server side too: a rate limit in front of Flaky
/// admits exactly its burst and tells the rest when to come back.
#[test]
fn full_stack_server_side_rate_limit_refuses_with_pushback() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).hosts(1).build();
        let backend = Flaky::new("limited", Behaviour::healthy());
        let served = backend.clone();
        sim.host("n1", move || {
            let backend = backend.clone();
            async move {
                let limit = RateLimitLayer::new(Arc::new(Gcra::new(Quota::new(
                    Duration::from_secs(60),
                    5,
                )?)));
                RpcServer::new()
                    .add_service(
                        Guarded::new(limit.layer(backend.into_service())),
                        FILE_DESCRIPTOR_SET,
                    )
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
        sim.client(async {
            let mut client =
                FlakyClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1")));
            let mut admitted = 0;
            for _ in 0..12 {
                match client.call(CallRequest::default()).await {
                    Ok(_) => admitted += 1,
                    Err(status) => {
                        assert_eq!(status.code(), Code::ResourceExhausted);
                        assert!(
                            status.metadata().get("grpc-retry-pushback-ms").is_some(),
                            "tells the client when to return"
                        );
                    }
                }
            }
            assert_eq!(admitted, 5);
            Ok(())
        });
        sim.run()?;
        assert_eq!(
            served.stats().calls,
            5,
            "refused calls never reached the service"
        );
        Ok(())
    });
}
