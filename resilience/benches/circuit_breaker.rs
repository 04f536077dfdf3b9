//! Circuit breaker overhead on the closed path (the path every call takes
//! on a healthy day), compared like for like:
//!
//! - `circuit_breaker_direct`: one thread; each iteration asks permission
//!   and reports a success through each library's direct API — dslab's
//!   `try_acquire` + `success`, failsafe's `call`.
//! - `circuit_breaker_direct_2threads`: the same with two threads sharing
//!   one breaker; time per call per thread.
//! - `circuit_breaker_tower`: each library's tower layer — dslab's
//!   `CircuitBreakerLayer` and tower-resilience's (it has no direct API) —
//!   around the same no-op gRPC-shaped service, polled without a runtime.
//!
//! Each library runs with its defaults, and they do not keep the same
//! books: dslab's breaker records every outcome in a 100-call sliding
//! window and computes a failure rate; failsafe's default policy counts
//! consecutive failures, which is less work per call. The ratio therefore
//! favours failsafe, if anything.
//!
//! cargo bench -p resilience --bench circuit_breaker

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use futures_util::FutureExt;
use resilience::circuit_breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer};
use tower::{Layer, Service, ServiceExt};

#[path = "two_threads.rs"]
mod two_threads;
use two_threads::two_threads;

fn dslab_breaker() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig::new("bench")).expect("defaults are valid")
}

fn tower_resilience_layer() -> tower_resilience::circuitbreaker::CircuitBreakerLayer<
    tower_resilience::circuitbreaker::DefaultClassifier,
> {
    tower_resilience::circuitbreaker::circuit_breaker_builder()
        .failure_rate_threshold(0.5)
        .build()
        .expect("valid")
}

/// A backend that answers at once: a trailers-only OK, so every layer
/// sees the call's outcome immediately.
fn ok_response() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    response
        .headers_mut()
        .insert("grpc-status", http::HeaderValue::from_static("0"));
    response
}

fn noop() -> impl Service<
    http::Request<()>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send,
> + Clone {
    tower::service_fn(|_: http::Request<()>| std::future::ready(Ok::<_, Infallible>(ok_response())))
}

/// One call through a tower service, polled to completion without a
/// runtime (every future here is ready at once).
fn call_once<S>(service: &mut S) -> bool
where
    S: Service<http::Request<()>>,
{
    let ready = service
        .ready()
        .now_or_never()
        .and_then(Result::ok)
        .is_some();
    ready
        && service
            .call(http::Request::new(()))
            .now_or_never()
            .is_some_and(|r| r.is_ok())
}

fn direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker_direct");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let dslab = dslab_breaker();
    group.bench_function("dslab", |b| {
        b.iter(|| {
            if let Ok(permit) = black_box(&dslab).try_acquire() {
                permit.success();
            }
        })
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter(|| black_box(failsafe.call(|| Ok::<(), ()>(())).is_ok()))
    });
    group.finish();
}

fn direct_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker_direct_2threads");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let dslab = dslab_breaker();
    group.bench_function("dslab", |b| {
        b.iter_custom(|iters| {
            let breaker = dslab.clone();
            two_threads(iters, move |n| {
                for _ in 0..n {
                    if let Ok(permit) = breaker.try_acquire() {
                        permit.success();
                    }
                }
            })
        })
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter_custom(|iters| {
            let breaker = failsafe.clone();
            two_threads(iters, move |n| {
                for _ in 0..n {
                    black_box(breaker.call(|| Ok::<(), ()>(())).is_ok());
                }
            })
        })
    });
    group.finish();
}

fn tower_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker_tower");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut dslab = CircuitBreakerLayer::new(dslab_breaker()).layer(noop());
    group.bench_function("dslab", |b| b.iter(|| black_box(call_once(&mut dslab))));
    let mut tower_resilience = tower_resilience_layer().layer(noop());
    group.bench_function("tower_resilience", |b| {
        b.iter(|| black_box(call_once(&mut tower_resilience)))
    });
    group.finish();
}

criterion_group!(benches, direct, direct_two_threads, tower_layers);
criterion_main!(benches);
