//! `dslab demo circuit-breaker`: a breaker meets a scripted outage.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;
use tower_layer::Layer;

use super::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{CallRequest, FILE_DESCRIPTOR_SET, Outage, Script, StatsRequest};
use crate::flaky::{Behaviour, Flaky};

/// Episode 37: closed → open → half-open → open → half-open → closed,
/// against a real gRPC backend on 127.0.0.1.
pub async fn circuit_breaker_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 37: a circuit breaker against a scripted outage");
    out.say("A Flaky backend on 127.0.0.1 is healthy, then down from 0.4 s to 1.6 s, then healthy again.");
    out.say("A client calls it every 10 ms through a breaker: 50% failures over the last 10 calls opens it,");
    out.say("it waits 300 ms, then lets exactly 3 probes through.");
    let script = Script {
        outages: vec![Outage {
            start_millis: 400,
            end_millis: 1_600,
            code: 0,
        }],
        latency: Some(crate::flaky::proto::Latency {
            base_micros: 2_000,
            jitter_micros: 0,
            distribution: 0,
        }),
        ..Script::default()
    };
    let backend = Flaky::new("backend", Behaviour::from_script(&script)?);
    let server = RpcServer::new()
        .add_service(backend.clone().into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?
        .spawn();
    let breaker = CircuitBreaker::new(BreakerConfig {
        sliding_window: SlidingWindow::Count(10),
        minimum_number_of_calls: 10,
        wait_duration_in_open_state: Duration::from_millis(300),
        max_wait_duration_in_open_state: Duration::from_millis(300),
        permitted_calls_in_half_open_state: 3,
        ..BreakerConfig::new("backend")
    })?;
    let channel = ClientBuilder::new(Net::Tcp).connect_lazy(server.uri());
    let mut client =
        FlakyClient::new(CircuitBreakerLayer::new(breaker.clone()).layer(channel.clone()));
    let mut stats_client = FlakyClient::new(channel);
    // The outage clock starts when the script is installed: now.
    backend.configure(Behaviour::from_script(&script)?);
    let started = Instant::now();

    let mut calls_while_open = 0u64;
    let mut backend_calls_while_open = 0u64;
    while started.elapsed() < Duration::from_millis(2_400) {
        let open_before = breaker.state() == State::Open;
        let seen_before = backend.stats().calls;
        let _ = client.call(CallRequest::default()).await;
        if open_before && breaker.state() == State::Open {
            calls_while_open += 1;
            backend_calls_while_open += backend.stats().calls - seen_before;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = stats_client.stats(StatsRequest {}).await?.into_inner();
    server.shutdown().await?;

    out.section("What the breaker did");
    let changes = breaker.state_changes();
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                format!(
                    "{:>5} ms",
                    c.at.saturating_duration_since(started).as_millis()
                ),
                format!("{} → {}", c.from, c.to),
            ]
        })
        .collect();
    out.table(&["at", "transition"], &rows);
    let metrics = breaker.metrics();
    out.say(&format!(
        "Calls refused without touching the backend: {}; calls the backend saw: {} (of which {} failed).",
        metrics.counters.not_permitted, stats.calls, stats.failed
    ));

    let path: Vec<(State, State)> = changes.iter().map(|c| (c.from, c.to)).collect();
    out.check(
        "the breaker opened during the outage and closed after it",
        path.first() == Some(&(State::Closed, State::Open))
            && path.last() == Some(&(State::HalfOpen, State::Closed)),
        path.iter()
            .map(|(f, t)| format!("{f}→{t}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.check(
        "while open, calls fail fast: the backend sees none of them",
        calls_while_open > 0 && backend_calls_while_open == 0,
        format!("{calls_while_open} calls refused while open, {backend_calls_while_open} reached the backend"),
    );
    out.check(
        "probing during the outage re-opened it (no premature close)",
        path.contains(&(State::HalfOpen, State::Open)),
        "HALF_OPEN → OPEN while the backend was still down",
    );
    out.check(
        "the breaker ends closed, serving again",
        breaker.state() == State::Closed,
        format!("final state {}", breaker.state()),
    );
    Ok(())
}
