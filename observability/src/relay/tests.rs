//! Relay chains over the simulated and the real network.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status as SpanStatus};
use opentelemetry_sdk::trace::SpanData;
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};

use super::demo::call_chain;
use super::proto::relay_client::RelayClient;
use super::proto::relay_server::RelayServer;
use super::proto::{FILE_DESCRIPTOR_SET, ForwardReply, ForwardRequest};
use super::{MAX_HOPS, Relay};
use crate::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle, deadline};
use crate::sim::{self, Simulation, faults, for_each_seed};
use crate::telemetry::capture_for_test;
use crate::telemetry::span_tree::{attribute, trace_ids};

const FORWARD: &str = "observability.v1.Relay/Forward";

fn request(payload: &str) -> ForwardRequest {
    ForwardRequest {
        payload: payload.into(),
        visited: Vec::new(),
    }
}

/// Registers a relay called `name` on simulated host `name`, forwarding to
/// host `next`.
fn sim_relay(sim: &mut Simulation<'_>, name: &str, next: Option<&str>) {
    let (name, next) = (name.to_owned(), next.map(str::to_owned));
    let host = name.clone();
    sim.host(&host, move || {
        let next = next
            .as_deref()
            .map(|n| ClientBuilder::new(Net::Sim).connect_lazy(sim::uri(n)));
        let relay = Relay::new(name.clone(), next);
        async move {
            RpcServer::new()
                .add_service(relay.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

/// The chain `n1 → n2 → n3`.
fn sim_three_relays(sim: &mut Simulation<'_>) {
    sim_relay(sim, "n1", Some("n2"));
    sim_relay(sim, "n2", Some("n3"));
    sim_relay(sim, "n3", None);
}

fn sim_client(target: &str) -> RelayClient<RpcChannel> {
    RelayClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri(target)))
}

/// Asserts the spans of one relay call through `hops` hops form the tree
/// OpenTelemetry's RPC conventions describe.
fn assert_one_traced_chain(spans: &[SpanData], hops: usize) {
    assert_eq!(
        spans.len(),
        2 * hops,
        "one client and one server span per hop: {spans:#?}"
    );
    assert_eq!(trace_ids(spans).len(), 1, "every span in one trace");
    let chain = call_chain(spans);
    assert_eq!(
        chain.len(),
        2 * hops,
        "the spans form one unbroken parent chain"
    );
    for (i, span) in chain.iter().enumerate() {
        let kind = if i % 2 == 0 {
            SpanKind::Client
        } else {
            SpanKind::Server
        };
        assert_eq!(span.span_kind, kind, "span {i} kind");
        assert_eq!(
            span.name, FORWARD,
            "span name follows package.Service/Method"
        );
        assert_eq!(attribute(span, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attribute(span, "rpc.service").as_deref(),
            Some("observability.v1.Relay")
        );
        assert_eq!(attribute(span, "rpc.method").as_deref(), Some("Forward"));
        assert_eq!(
            attribute(span, "rpc.grpc.status_code").as_deref(),
            Some("0"),
            "status recorded"
        );
        assert_eq!(span.status, SpanStatus::Ok);
    }
    assert_eq!(
        chain[0].parent_span_id,
        SpanId::INVALID,
        "the first client span is the root"
    );
}

/// Episode 31. Three relays on a simulated network, one call: one trace,
/// each server span the child of the previous hop's client span.
#[test]
fn relay_sim_three_hops_share_one_trace() {
    for_each_seed(|seed| {
        let (spans, _guard) = capture_for_test();
        let mut sim = Simulation::builder(seed).build();
        sim_three_relays(&mut sim);
        sim.client(async {
            let reply = sim_client("n1")
                .forward(request("hello"))
                .await?
                .into_inner();
            let path: Vec<&str> = reply.path.iter().map(|hop| hop.name.as_str()).collect();
            assert_eq!(path, ["n1", "n2", "n3"]);
            assert_eq!(reply.payload, "hello");
            // Give the servers a moment to finish (and export) their spans.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        });
        sim.run()?;
        drop(sim);
        assert_one_traced_chain(&spans.spans(), 3);
        Ok(())
    });
}

/// A relay on 127.0.0.1 (port 0), forwarding to `next`.
pub(crate) async fn tcp_relay(name: &str, next: Option<&ServerHandle>) -> ServerHandle {
    let relay = Relay::new(
        name,
        next.map(|hop| ClientBuilder::new(Net::Tcp).connect_lazy(hop.uri())),
    );
    RpcServer::new()
        .max_message_bytes(1024)
        .add_service(relay.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("port 0 on loopback binds")
        .spawn()
}

/// Episode 31. The same three-hop chain over real TCP on 127.0.0.1.
#[tokio::test]
async fn relay_tcp_three_hops_share_one_trace() {
    let (spans, _guard) = capture_for_test();
    let hop3 = tcp_relay("hop-3", None).await;
    let hop2 = tcp_relay("hop-2", Some(&hop3)).await;
    let hop1 = tcp_relay("hop-1", Some(&hop2)).await;
    let reply = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop1.uri()))
        .forward(request("over tcp"))
        .await
        .expect("chain is healthy")
        .into_inner();
    for hop in [hop1, hop2, hop3] {
        hop.shutdown().await.expect("graceful shutdown");
    }
    let captured = spans.spans();
    assert_one_traced_chain(&captured, 3);
    let trace_id = trace_ids(&captured).into_iter().next().expect("one trace");
    assert!(
        reply.path.iter().all(|hop| hop.trace_id == trace_id),
        "each hop reports the trace it joined"
    );
}

/// Episode 4. Partition hop 2 from hop 3: the call fails with
/// DeadlineExceeded or Unavailable within its deadline, and the failure is
/// on the spans. After the partition heals, the same call succeeds again.
#[test]
fn relay_partition_fails_within_deadline_then_recovers() {
    for_each_seed(|seed| {
        let (spans, _guard) = capture_for_test();
        let mut sim = Simulation::builder(seed).build();
        sim_three_relays(&mut sim);
        let failed_trace = Rc::new(RefCell::new(String::new()));
        let failed_trace_out = failed_trace.clone();
        sim.client(async move {
            let mut client = sim_client("n1");
            client.forward(request("warm-up")).await?;

            faults::partition("n2", "n3");
            let budget = Duration::from_millis(800);
            let mut call = Request::new(request("during partition"));
            call.set_timeout(budget);
            let started = Instant::now();
            let status = client
                .forward(call)
                .await
                .expect_err("n3 is unreachable from n2");
            let waited = started.elapsed();
            assert!(
                matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
                "got {status:?}"
            );
            // Simulated time: a bound on behaviour, not a benchmark.
            assert!(
                waited <= budget + Duration::from_millis(50),
                "failed after {waited:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            *failed_trace_out.borrow_mut() = status.message().to_owned();

            faults::heal("n2", "n3");
            // The first call after healing may still land on the connection
            // whose packets the partition ate; keepalive pings retire it.
            let mut recovered = None;
            for _ in 0..10 {
                let mut call = Request::new(request("after heal"));
                call.set_timeout(Duration::from_secs(2));
                if let Ok(reply) = client.forward(call).await {
                    recovered = Some(reply.into_inner());
                    break;
                }
            }
            let reply = recovered.expect("the chain recovers once the partition heals");
            assert_eq!(reply.path.len(), 3);
            Ok(())
        });
        sim.run()?;
        drop(sim);
        let captured = spans.spans();
        let failed = |address: &str| -> Vec<String> {
            captured
                .iter()
                .filter(|s| {
                    s.span_kind == SpanKind::Client
                        && attribute(s, "server.address").as_deref() == Some(address)
                        && matches!(s.status, SpanStatus::Error { .. })
                })
                .map(|s| attribute(s, "rpc.grpc.status_code").unwrap_or_default())
                .collect()
        };
        // The caller's span carries the code the caller saw; n2's span to
        // n3 failed too — by its own deadline, or cancelled by its caller.
        let at_client = failed("n1:9000");
        assert!(
            at_client.iter().any(|code| code == "4" || code == "14"),
            "DeadlineExceeded (4) or Unavailable (14) on the caller's span: {at_client:?}"
        );
        let at_n2 = failed("n3:9000");
        assert!(
            !at_n2.is_empty()
                && at_n2
                    .iter()
                    .all(|code| ["1", "4", "14"].contains(&code.as_str())),
            "n2's call to n3 records its failure: {at_n2:?}"
        );
        assert!(!failed_trace.borrow().is_empty());
        Ok(())
    });
}

/// A Relay stand-in that records the `grpc-timeout` it was sent and then
/// never answers: a peer that is alive but stuck.
#[derive(Clone, Default)]
struct StuckPeer {
    seen_timeouts: Arc<Mutex<Vec<Option<Duration>>>>,
}

#[tonic::async_trait]
impl super::proto::relay_server::Relay for StuckPeer {
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let timeout = deadline::parse(&request.metadata().clone().into_headers());
        self.seen_timeouts.lock().expect("test lock").push(timeout);
        std::future::pending().await
    }
}

/// Episode 4. The client gives the chain 300 ms. The third hop must be told
/// what is left of those 300 ms, not a fresh default of 5 s.
#[test]
fn relay_deadline_propagates_remaining_time_across_hops() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).build();
        sim_relay(&mut sim, "n1", Some("n2"));
        sim_relay(&mut sim, "n2", Some("n3"));
        let stuck = StuckPeer::default();
        let seen = stuck.seen_timeouts.clone();
        sim.host("n3", move || {
            let stuck = stuck.clone();
            async move {
                RpcServer::new()
                    .add_service(RelayServer::new(stuck), FILE_DESCRIPTOR_SET)
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
        let budget = Duration::from_millis(300);
        sim.client(async move {
            let mut call = Request::new(request("slow"));
            call.set_timeout(budget);
            let status = sim_client("n1")
                .forward(call)
                .await
                .expect_err("n3 never answers");
            assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
            Ok(())
        });
        sim.run()?;
        let seen = seen.lock().expect("test lock").clone();
        assert_eq!(seen.len(), 1, "n3 was called once");
        let at_n3 = seen[0].expect("n3 received a grpc-timeout");
        // Timeouts travel relative (no clock sync needed), so time in
        // flight is not deducted: n3 sees at most the caller's budget.
        assert!(
            at_n3 <= budget,
            "n3 got {at_n3:?}, more than the caller's {budget:?}"
        );
        assert!(
            at_n3 > budget / 2,
            "and not the 5 s default either: {at_n3:?}"
        );
        Ok(())
    });
}

/// Bad input: a relay configured to loop (n1 → n2 → n1) refuses instead of
/// recursing, with InvalidArgument, and no hop runs twice.
#[test]
fn relay_loop_is_refused_with_invalid_argument() {
    for_each_seed(|seed| {
        let (spans, _guard) = capture_for_test();
        let mut sim = Simulation::builder(seed).build();
        sim_relay(&mut sim, "n1", Some("n2"));
        sim_relay(&mut sim, "n2", Some("n1"));
        sim.client(async {
            let status = sim_client("n1")
                .forward(request("round and round"))
                .await
                .expect_err("loop refused");
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(
                status.message().contains("n1 -> n2 -> n1"),
                "{}",
                status.message()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        });
        sim.run()?;
        drop(sim);
        let captured = spans.spans();
        let servers = captured
            .iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .count();
        assert_eq!(servers, 3, "{captured:#?}");
        assert_eq!(servers, 3, "n1, n2, then n1 refusing: no recursion");
        Ok(())
    });
}

/// Bad input: a request already carrying MAX_HOPS hops is refused.
#[tokio::test]
async fn relay_overlong_route_is_refused_with_invalid_argument() {
    let hop = tcp_relay("solo", None).await;
    let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop.uri()));
    let status = client
        .forward(ForwardRequest {
            payload: String::new(),
            visited: (0..MAX_HOPS).map(|i| format!("h{i}")).collect(),
        })
        .await
        .expect_err("too long");
    assert_eq!(status.code(), Code::InvalidArgument);
    let reply = client
        .forward(request(""))
        .await
        .expect("an empty payload is fine");
    assert_eq!(reply.into_inner().path.len(), 1);
}

/// Bad input: a message over the server's limit gets ResourceExhausted,
/// the server keeps serving, and the RED metrics count the refusal.
#[tokio::test]
async fn rpc_server_oversized_message_is_resource_exhausted() {
    let hop = tcp_relay("small", None).await;
    let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop.uri()));
    let status = client
        .forward(request(&"x".repeat(4096)))
        .await
        .expect_err("over 1 KiB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let ok = client.forward(request(&"x".repeat(900))).await;
    assert!(ok.is_ok(), "a message under the limit still works: {ok:?}");
    let red = hop.metrics().snapshot();
    let forward = red
        .iter()
        .find(|m| m.method == FORWARD)
        .expect("forward recorded");
    assert_eq!(forward.requests, 2);
    assert_eq!(
        forward.by_code,
        vec![(Code::Ok, 1), (Code::ResourceExhausted, 1)]
    );
}

/// Calls `hop` with a raw tonic channel (no client stack), sending the
/// given `traceparent` header as any foreign client might.
async fn call_with_traceparent(hop: &ServerHandle, traceparent: &'static str) -> ForwardReply {
    let channel = tonic::transport::Endpoint::from(hop.uri())
        .connect()
        .await
        .expect("loopback connects");
    let mut call = Request::new(request("foreign"));
    call.metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    RelayClient::new(channel)
        .forward(call)
        .await
        .expect("call succeeds")
        .into_inner()
}

/// Bad input: a malformed `traceparent` starts a fresh trace and the call
/// still succeeds; a well-formed one from a foreign client is continued.
#[tokio::test]
async fn rpc_server_malformed_traceparent_starts_fresh_trace() {
    let (spans, _guard) = capture_for_test();
    let hop = tcp_relay("edge", None).await;
    let fresh = call_with_traceparent(&hop, "00-zzzz-not-a-trace-01").await;
    let continued = call_with_traceparent(
        &hop,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .await;
    hop.shutdown().await.expect("graceful shutdown");

    let servers: Vec<SpanData> = spans
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2);
    let fresh_span = servers
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == fresh.path[0].trace_id)
        .expect("span of the malformed call");
    assert_eq!(fresh_span.parent_span_id, SpanId::INVALID, "a new root");
    assert_ne!(fresh.path[0].trace_id, "00000000000000000000000000000000");
    assert_eq!(
        continued.path[0].trace_id,
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let continued_span = servers
        .iter()
        .find(|s| !std::ptr::eq(*s, fresh_span))
        .expect("second span");
    assert_eq!(
        continued_span.parent_span_id.to_string(),
        "00f067aa0ba902b7"
    );
}

/// Every server answers grpc.health.v1 and lists its services by reflection.
#[tokio::test]
async fn rpc_server_serves_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let hop = tcp_relay("health", None).await;
    let channel = ClientBuilder::new(Net::Tcp).connect_lazy(hop.uri());
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "observability.v1.Relay"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);

    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .expect("reflection answers")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("stream ok")
        .expect("one reply");
    let Some(MessageResponse::ListServicesResponse(listed)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    let mut names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "observability.v1.Relay"
        ]
    );
}

/// Graceful shutdown drains, but not forever: a call that never finishes
/// is cut off once the drain timeout passes, long before its own deadline.
#[test]
fn rpc_server_shutdown_gives_up_on_stuck_calls_after_drain_timeout() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).build();
        sim.host("n1", || async {
            RpcServer::new()
                .drain_timeout(Duration::from_secs(2))
                .add_service(RelayServer::new(StuckPeer::default()), FILE_DESCRIPTOR_SET)
                .serve(
                    Net::Sim,
                    sim::listen_addr(),
                    tokio::time::sleep(Duration::from_millis(500)),
                )
                .await?;
            Ok(())
        });
        sim.client(async {
            let started = Instant::now();
            let mut call = Request::new(request("stuck"));
            call.set_timeout(Duration::from_secs(30));
            let status = sim_client("n1")
                .forward(call)
                .await
                .expect_err("the server goes away");
            let waited = started.elapsed();
            assert_ne!(
                status.code(),
                Code::DeadlineExceeded,
                "cut off by the drain, not the deadline: {status:?}"
            );
            assert!(
                waited >= Duration::from_millis(2400) && waited < Duration::from_secs(4),
                "shutdown at 0.5 s + 2 s drain, got {waited:?}"
            );
            Ok(())
        });
        sim.run()
    });
}
