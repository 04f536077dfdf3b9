//! The retry layer on real tonic calls to an in-process Flaky, in paused time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Request};
use tower_layer::Layer;

use super::*;
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{CallRequest, Script};
use crate::flaky::{Behaviour, Flaky};

const CALL: &str = "/resilience.v1.Flaky/Call";

fn backend(per_call: &[Code]) -> Flaky {
    let script = Script {
        per_call: per_call.iter().map(|&c| c as i32).collect(),
        ..Script::default()
    };
    Flaky::new("backend", Behaviour::from_script(&script).expect("valid"))
}

fn policy(idempotency: Idempotency) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        budget: None,
        ..RetryPolicy::new(idempotency)
    }
}

async fn call_through(
    layer: RetryLayer,
    flaky: &Flaky,
    timeout: Option<Duration>,
) -> Result<(), tonic::Status> {
    let mut client = FlakyClient::new(layer.layer(flaky.clone().into_service()));
    let mut request = Request::new(CallRequest {
        payload: "x".repeat(100),
    });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    client.call(request).await.map(drop)
}

/// Episode 40. Two UNAVAILABLEs, then success: the caller sees success,
/// the backend saw three attempts carrying the same request.
#[tokio::test(start_paused = true)]
async fn retry_recovers_from_transient_unavailability() {
    let flaky = backend(&[Code::Unavailable, Code::Unavailable, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::Methods(vec![CALL.into()]))).expect("valid");
    let stats = layer.stats();
    call_through(layer, &flaky, None)
        .await
        .expect("the third attempt succeeds");
    assert_eq!(flaky.stats().calls, 3);
    assert_eq!(stats.attempts.load(Ordering::Relaxed), 3);
}

/// Non-idempotent methods are never retried; nor are codes that say the
/// request itself is wrong.
#[tokio::test(start_paused = true)]
async fn retry_skips_non_idempotent_methods_and_non_retryable_codes() {
    let flaky = backend(&[Code::Unavailable, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::Methods(vec![
        "/other.Service/Read".into(),
    ])))
    .expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("not retried");
    assert_eq!((status.code(), flaky.stats().calls), (Code::Unavailable, 1));

    let flaky = backend(&[Code::InvalidArgument, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::AllMethods)).expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("not retried");
    assert_eq!(
        (status.code(), flaky.stats().calls),
        (Code::InvalidArgument, 1)
    );
}

/// Attempts are capped; the last failure is what the caller sees.
#[tokio::test(start_paused = true)]
async fn retry_gives_up_after_max_attempts() {
    let flaky = backend(&[Code::Unavailable; 10]);
    let layer = RetryLayer::new(policy(Idempotency::AllMethods)).expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("always failing");
    assert_eq!((status.code(), flaky.stats().calls), (Code::Unavailable, 4));
}

/// The budget drains during a failure streak and stops retries, shared
/// by every call through the layer.
#[tokio::test(start_paused = true)]
async fn retry_budget_stops_retries_during_a_failure_streak() {
    let flaky = backend(&[Code::Unavailable; 100]);
    let layer = RetryLayer::new(RetryPolicy {
        budget: Some(BudgetConfig {
            max_tokens: 4.0,
            token_ratio: 0.1,
        }),
        ..policy(Idempotency::AllMethods)
    })
    .expect("valid");
    let stats = layer.stats();
    for _ in 0..10 {
        let _ = call_through(layer.clone(), &flaky, None).await;
    }
    // 4 tokens; retries only while more than 2 remain. The first failure
    // leaves 3 (one retry), the retry's failure leaves 2: one retry in all.
    assert_eq!(
        flaky.stats().calls,
        10 + 1,
        "ten calls, one retry on credit"
    );
    assert!(stats.budget_denied.load(Ordering::Relaxed) >= 8);
}

/// Retries fit inside the caller's deadline: each attempt carries what is
/// left, and a retry whose backoff would outlive the deadline is not sent.
#[tokio::test(start_paused = true)]
async fn retry_respects_the_remaining_deadline() {
    let flaky = backend(&[Code::Unavailable; 10]);
    let layer = RetryLayer::new(RetryPolicy {
        max_attempts: 10,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: Jitter::None,
        },
        ..policy(Idempotency::AllMethods)
    })
    .expect("valid");
    let stats = layer.stats();
    let started = Instant::now();
    let status = call_through(layer, &flaky, Some(Duration::from_millis(1_000)))
        .await
        .expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable);
    // Backoffs 100, 200, 400 fit in 1 s (700 ms); the next 800 would not.
    assert_eq!(flaky.stats().calls, 4);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(stats.deadline_stopped.load(Ordering::Relaxed), 1);
    let told: Vec<u64> = flaky.stats().deadlines_micros;
    assert!(
        told.windows(2).all(|w| w[1] < w[0]),
        "each attempt is told less time: {told:?}"
    );
}

#[test]
fn retry_invalid_policies_are_refused_at_build_time() {
    let base = policy(Idempotency::AllMethods);
    let bad = [
        RetryPolicy {
            max_attempts: 0,
            ..base.clone()
        },
        RetryPolicy {
            max_attempts: 11,
            ..base.clone()
        },
        RetryPolicy {
            retryable_codes: vec![Code::Ok],
            ..base.clone()
        },
        RetryPolicy {
            buffer_limit: usize::MAX,
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                initial: Duration::ZERO,
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                multiplier: 0.5,
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                max: Duration::from_millis(1),
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            budget: Some(BudgetConfig {
                max_tokens: 0.0,
                token_ratio: 0.1,
            }),
            ..base.clone()
        },
    ];
    for policy in bad {
        let err = RetryLayer::new(policy.clone()).expect_err("invalid");
        assert!(
            matches!(err, crate::Error::InvalidConfig { .. }),
            "{policy:?}"
        );
    }
}

mod http_level {
    //! The retry layer against hand-built HTTP services, for the shapes a
    //! Flaky does not have: streams, committed responses, pushback.

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::time::Instant;
    use tonic::body::Body as TonicBody;
    use tower::{Layer, Service, ServiceExt};

    use super::super::*;

    type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, tonic::Status>>;

    fn grpc_request(body: TonicBody) -> http::Request<TonicBody> {
        let mut request = http::Request::new(body);
        *request.uri_mut() = "http://backend/test.v1.Echo/Chat".parse().expect("uri");
        request
    }

    fn trailers(code: tonic::Code) -> Frame<Bytes> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from(code as i32));
        Frame::trailers(map)
    }

    fn budget_policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            budget: Some(BudgetConfig {
                max_tokens: 10.0,
                token_ratio: 0.1,
            }),
            ..RetryPolicy::new(Idempotency::AllMethods)
        }
    }

    /// Episode 40 (gRFC A6). A bidirectional stream under an
    /// every-method retry policy: the first message reaches the backend
    /// and its echo comes back before the caller sends a second one. A
    /// layer that buffered the request to its end would wait forever.
    #[tokio::test(start_paused = true)]
    async fn retry_streams_pass_through_without_waiting_for_the_end() {
        // Echoes every request frame as a response frame, as it arrives.
        let echo = tower::service_fn(|request: http::Request<TonicBody>| async move {
            let frames: Frames = request
                .into_body()
                .into_data_stream()
                .map(|data| data.map(Frame::data))
                .boxed();
            Ok::<_, Infallible>(http::Response::new(TonicBody::new(StreamBody::new(frames))))
        });
        let layer = RetryLayer::new(budget_policy()).expect("valid");
        let mut service = layer.layer(echo);
        let (send, receive) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, tonic::Status>>(4);
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receive));
        send.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .expect("open");
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            service
                .ready()
                .await
                .expect("ready")
                .call(grpc_request(TonicBody::new(body))),
        )
        .await
        .expect("the call starts without waiting for the stream to end")
        .expect("answers");
        let mut reply = std::pin::pin!(response.into_body());
        let first = tokio::time::timeout(Duration::from_secs(5), reply.frame())
            .await
            .expect("the echo arrives while the stream is open")
            .expect("a frame")
            .expect("data");
        assert_eq!(
            first.into_data().expect("data"),
            Bytes::from_static(b"first")
        );
        send.send(Ok(Frame::data(Bytes::from_static(b"second"))))
            .await
            .expect("open");
        let second = reply.frame().await.expect("a frame").expect("data");
        assert_eq!(
            second.into_data().expect("data"),
            Bytes::from_static(b"second")
        );
        assert_eq!(layer_stats_attempts(&layer), 1, "a stream is sent once");
    }

    fn layer_stats_attempts(layer: &RetryLayer) -> u64 {
        layer.stats().attempts.load(Ordering::Relaxed)
    }

    /// gRFC A6 counts a call's final status. A response that commits (its
    /// headers arrive) and then ends UNAVAILABLE costs a token, like a
    /// trailers-only UNAVAILABLE would.
    #[tokio::test(start_paused = true)]
    async fn retry_budget_counts_the_final_status_of_committed_calls() {
        let failing_stream = tower::service_fn(|_request: http::Request<TonicBody>| async {
            let frames: Frames = futures_util::stream::iter([
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(trailers(tonic::Code::Unavailable)),
            ])
            .boxed();
            Ok::<_, Infallible>(http::Response::new(TonicBody::new(StreamBody::new(frames))))
        });
        let layer = RetryLayer::new(budget_policy()).expect("valid");
        let mut service = layer.clone().layer(failing_stream);
        for expected in [9.0, 8.0] {
            let response = service
                .ready()
                .await
                .expect("ready")
                .call(grpc_request(TonicBody::empty()))
                .await
                .expect("answers");
            let _ = response.into_body().collect().await;
            assert_eq!(layer.budget_tokens(), Some(expected));
        }
        assert_eq!(
            layer_stats_attempts(&layer),
            2,
            "committed calls are not retried"
        );
    }

    /// A service that answers UNAVAILABLE with the given pushback header
    /// the first time, then OK.
    fn pushing_back(
        pushback: &'static str,
    ) -> (
        impl Service<
            http::Request<TonicBody>,
            Response = http::Response<TonicBody>,
            Error = Infallible,
            Future = impl Send,
        > + Clone
        + Send,
        Arc<AtomicU32>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let service = tower::service_fn(move |_request: http::Request<TonicBody>| {
            let attempt = counted.fetch_add(1, Ordering::Relaxed);
            async move {
                let status = if attempt == 0 {
                    tonic::Status::unavailable("come back later")
                } else {
                    tonic::Status::ok("")
                };
                let mut response = observability::rpc::outcome::refusal::<TonicBody>(&status);
                if attempt == 0 {
                    response.headers_mut().insert(
                        "grpc-retry-pushback-ms",
                        http::HeaderValue::from_static(pushback),
                    );
                }
                Ok::<_, Infallible>(response)
            }
        });
        (service, calls)
    }

    /// gRFC A6: the server's `grpc-retry-pushback-ms` replaces the backoff
    /// — the retry goes out exactly 700 ms later — and a negative value
    /// means no retry at all.
    #[tokio::test(start_paused = true)]
    async fn retry_honours_server_pushback() {
        let (service, calls) = pushing_back("700");
        let mut service = RetryLayer::new(budget_policy())
            .expect("valid")
            .layer(service);
        let started = Instant::now();
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(grpc_request(TonicBody::empty()))
            .await
            .expect("answers");
        assert_eq!(response.headers()["grpc-status"], "0");
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(700));

        for refused in ["-1", "18446744073709551615"] {
            let (service, calls) = pushing_back(refused);
            let mut service = RetryLayer::new(budget_policy())
                .expect("valid")
                .layer(service);
            let response = service
                .ready()
                .await
                .expect("ready")
                .call(grpc_request(TonicBody::empty()))
                .await
                .expect("answers");
            assert_eq!(response.headers()["grpc-status"], "14");
            assert_eq!(calls.load(Ordering::Relaxed), 1, "{refused}: no retry");
        }
        let (service, calls) = pushing_back("-1");
        let mut service = RetryLayer::new(budget_policy())
            .expect("valid")
            .layer(service);
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(grpc_request(TonicBody::empty()))
            .await
            .expect("answers");
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(calls.load(Ordering::Relaxed), 1, "the server said stop");
    }
}
