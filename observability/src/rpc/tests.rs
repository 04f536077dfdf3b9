//! The stack's bounds, tried by a hostile client over real loopback TCP.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::limits::MAX_STATUS_MESSAGE_BYTES;
use super::{Net, RpcServer, ServerHandle, ServerLimits};
use crate::fuzz::{FuzzOptions, fuzz_service};
use crate::relay::Relay;
use crate::relay::proto::relay_client::RelayClient;
use crate::relay::proto::{FILE_DESCRIPTOR_SET, ForwardReply, ForwardRequest};

const FORWARD: &str = "/observability.v1.Relay/Forward";

async fn spawn(server: RpcServer) -> ServerHandle {
    server
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("binds")
        .spawn()
}

/// A plain tonic channel: a foreign client, with none of our stack (no
/// default deadline).
fn raw_channel(server: &ServerHandle) -> Channel {
    Endpoint::from(server.uri()).connect_lazy()
}

/// Calls `path` with a Relay request, however the path is spelled.
async fn forward_at(channel: Channel, path: &str) -> Result<ForwardReply, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    let path = PathAndQuery::try_from(path).map_err(|err| Status::internal(err.to_string()))?;
    let codec = tonic_prost::ProstCodec::<ForwardRequest, ForwardReply>::default();
    grpc.unary(
        tonic::Request::new(ForwardRequest {
            payload: "x".into(),
            visited: Vec::new(),
        }),
        path,
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// A stand-in for the Relay service whose handler does whatever `answer`
/// says, and notes whether it was dropped unfinished.
#[derive(Clone)]
struct FakeRelay {
    answer: Arc<dyn Fn() -> BoxFuture<'static, Status> + Send + Sync>,
    abandoned: Arc<AtomicBool>,
}

impl tonic::server::NamedService for FakeRelay {
    const NAME: &'static str = "observability.v1.Relay";
}

/// Sets its flag if dropped before it is disarmed.
struct NoteDrop(Option<Arc<AtomicBool>>);

impl Drop for NoteDrop {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

impl tower_service::Service<http::Request<Body>> for FakeRelay {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        let answer = (self.answer)();
        let mut note = NoteDrop(Some(self.abandoned.clone()));
        Box::pin(async move {
            let status = answer.await;
            note.0.take();
            Ok(super::outcome::refusal(&status))
        })
    }
}

fn fake(answer: impl Fn() -> BoxFuture<'static, Status> + Send + Sync + 'static) -> FakeRelay {
    FakeRelay {
        answer: Arc::new(answer),
        abandoned: Arc::default(),
    }
}

/// Episode 32. Thousands of calls to made-up methods of a real service
/// and of made-up services all land in one `unknown` metrics row: the
/// labels come from the route table, never from the client.
#[tokio::test]
async fn rpc_made_up_method_names_share_one_metrics_label() {
    let server = spawn(
        RpcServer::new().add_service(Relay::new("hop", None).into_service(), FILE_DESCRIPTOR_SET),
    )
    .await;
    let channel = raw_channel(&server);
    for i in 0..2_000 {
        let path = if i % 2 == 0 {
            format!("/observability.v1.Relay/Made{i}")
        } else {
            format!("/scan{i}.v1.X/Y")
        };
        let status = forward_at(channel.clone(), &path)
            .await
            .expect_err("no such method");
        assert_eq!(status.code(), Code::Unimplemented);
        // grpc-go's words, so a caller learns what was missing.
        let expected = if i % 2 == 0 {
            format!("unknown method Made{i} for service observability.v1.Relay")
        } else {
            format!("unknown service scan{i}.v1.X")
        };
        assert_eq!(status.message(), expected);
    }
    forward_at(channel, FORWARD).await.expect("the real one");
    let rows: Vec<String> = server
        .metrics()
        .snapshot()
        .into_iter()
        .map(|m| m.method)
        .collect();
    assert_eq!(rows, ["observability.v1.Relay/Forward", "unknown"]);
    let unknown = server.metrics().snapshot()[1].requests;
    assert_eq!(unknown, 2_000);
}

/// A unary call without a deadline cannot hold a task forever: the
/// server's cap ends it with DeadlineExceeded and drops the handler. A
/// route can be given a longer cap; a cap for a route nobody hosts is
/// refused when the server binds.
#[tokio::test]
async fn rpc_unary_calls_are_capped_even_without_a_deadline() {
    let hangs = fake(|| Box::pin(futures_util::future::pending()));
    let abandoned = hangs.abandoned.clone();
    let server = spawn(
        RpcServer::new()
            .limits(ServerLimits {
                max_unary_duration: Duration::from_millis(200),
                ..ServerLimits::default()
            })
            .add_service(hangs, FILE_DESCRIPTOR_SET),
    )
    .await;
    let status = forward_at(raw_channel(&server), FORWARD)
        .await
        .expect_err("capped");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The server drops the handler right after answering; wait for it.
    for _ in 0..1000 {
        if abandoned.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(abandoned.load(Ordering::SeqCst), "the handler was dropped");

    let slow = fake(|| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Status::not_found("slow, but answered")
        })
    });
    let server = spawn(
        RpcServer::new()
            .limits(ServerLimits {
                max_unary_duration: Duration::from_millis(100),
                ..ServerLimits::default()
            })
            .route_max_duration(FORWARD, Duration::from_secs(5))
            .add_service(slow, FILE_DESCRIPTOR_SET),
    )
    .await;
    let answered = forward_at(raw_channel(&server), FORWARD)
        .await
        .expect_err("the fake answers NotFound");
    assert_eq!(
        (answered.code(), answered.message()),
        (Code::NotFound, "slow, but answered"),
        "the route's own cap applies"
    );

    let refused = RpcServer::new()
        .route_max_duration("/observability.v1.Relay/Nope", Duration::from_secs(1))
        .add_service(Relay::new("hop", None).into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await;
    assert!(matches!(refused, Err(crate::Error::UnknownRoute(_))));
}

/// A stream nobody speaks on ends after the idle timeout with Cancelled,
/// sent as trailers (a precise status, not a reset).
#[tokio::test]
async fn rpc_idle_streams_are_ended_by_the_server() {
    let server = spawn(
        RpcServer::new()
            .route_idle_timeout("/grpc.health.v1.Health/Watch", Duration::from_millis(200))
            .add_service(Relay::new("hop", None).into_service(), FILE_DESCRIPTOR_SET),
    )
    .await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(raw_channel(&server));
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch opens")
        .into_inner();
    watch
        .message()
        .await
        .expect("the current status")
        .expect("a message");
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the server ends the silent stream");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(status.message().contains("idle"), "{status:?}");
}

/// Past the connection limit the server stops accepting: a third client
/// waits until one of the first two hangs up, then gets in.
#[tokio::test]
async fn rpc_connections_beyond_the_limit_wait_for_a_slot() {
    let server = spawn(
        RpcServer::new()
            .limits(ServerLimits {
                max_connections: 2,
                ..ServerLimits::default()
            })
            .add_service(Relay::new("hop", None).into_service(), FILE_DESCRIPTOR_SET),
    )
    .await;
    let (first, second, third) = (
        raw_channel(&server),
        raw_channel(&server),
        raw_channel(&server),
    );
    forward_at(first.clone(), FORWARD).await.expect("first");
    forward_at(second.clone(), FORWARD).await.expect("second");
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        forward_at(third.clone(), FORWARD),
    )
    .await;
    assert!(
        waited.is_err(),
        "no slot for a third connection: {waited:?}"
    );
    drop(first);
    let admitted = tokio::time::timeout(Duration::from_secs(5), forward_at(third, FORWARD)).await;
    assert!(
        matches!(admitted, Ok(Ok(_))),
        "a slot freed up: {admitted:?}"
    );
    forward_at(second, FORWARD).await.expect("still served");
}

/// A huge status message would overflow HTTP/2's header limit and turn
/// into a stream reset; the server truncates it and keeps the code.
#[tokio::test]
async fn rpc_long_status_messages_arrive_truncated() {
    let rambling = fake(|| Box::pin(async { Status::invalid_argument("x".repeat(1 << 20)) }));
    let server = spawn(RpcServer::new().add_service(rambling, FILE_DESCRIPTOR_SET)).await;
    let status = forward_at(raw_channel(&server), FORWARD)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() <= MAX_STATUS_MESSAGE_BYTES + 64);
    assert!(status.message().ends_with("(1048576 bytes, truncated)"));
}

/// Episode 34. The hostile client against a two-hop relay chain: every
/// call ends with a precise status, the server stays healthy, ordinary
/// traffic still flows, and the metrics hold one row per hosted method.
#[tokio::test]
async fn fuzz_relay_every_method_answers_precisely() {
    let tail = spawn(
        RpcServer::new().add_service(Relay::new("tail", None).into_service(), FILE_DESCRIPTOR_SET),
    )
    .await;
    let next = super::ClientBuilder::new(Net::Tcp).connect_lazy(tail.uri());
    let head = spawn(RpcServer::new().add_service(
        Relay::new("head", Some(next)).into_service(),
        FILE_DESCRIPTOR_SET,
    ))
    .await;
    let report = fuzz_service(
        head.uri(),
        FILE_DESCRIPTOR_SET,
        "observability.v1.Relay",
        &FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(report.calls > 50, "{report:?}");
    assert!(report.by_code.contains_key("InvalidArgument"), "{report:?}");
    let reply = RelayClient::new(raw_channel(&head))
        .forward(ForwardRequest {
            payload: "after".into(),
            visited: Vec::new(),
        })
        .await
        .expect("ordinary traffic flows")
        .into_inner();
    assert_eq!(reply.path.len(), 2);
    assert!(head.metrics().snapshot().len() <= 3);
}
