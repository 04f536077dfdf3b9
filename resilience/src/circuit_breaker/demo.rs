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
    // Calls that reached the backend per HALF_OPEN spell: the probes.
    let mut probes: Vec<u64> = Vec::new();
    while started.elapsed() < Duration::from_millis(2_400) {
        let state_before = breaker.state();
        let seen_before = backend.stats().calls;
        let changes_before = breaker.state_changes().len();
        let _ = client.call(CallRequest::default()).await;
        let reached = backend.stats().calls - seen_before;
        if state_before == State::Open && breaker.state() == State::Open {
            calls_while_open += 1;
            backend_calls_while_open += reached;
        }
        // One call at a time, so a call was a probe if it was admitted
        // half open: the breaker was HALF_OPEN already, or the wait ran
        // out as this call asked (OPEN → HALF_OPEN during it).
        let changes = breaker.state_changes();
        let (earlier, during) = changes.split_at(changes_before.min(changes.len()));
        let entered_now = during.iter().any(|c| c.to == State::HalfOpen);
        if reached > 0 && (state_before == State::HalfOpen || entered_now) {
            let spell = earlier.iter().filter(|c| c.to == State::HalfOpen).count()
                + usize::from(entered_now);
            probes.resize(probes.len().max(spell), 0);
            if let Some(count) = probes.get_mut(spell.saturating_sub(1)) {
                *count += reached;
            }
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
        "each half-open spell let exactly 3 probes reach the backend",
        !probes.is_empty() && probes.iter().all(|&n| n == 3),
        format!(
            "probes per half-open spell: {}",
            probes
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
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
