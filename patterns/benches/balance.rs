//! What choosing an endpoint costs, per policy, against tower's `p2c`.
//!
//! - `pick/<policy>/<N>`: the pure pick alone, over N endpoints that are
//!   all ready, with a fixed load state (outstanding requests 0..7 and a
//!   measured RTT on every endpoint);
//! - `request/<balancer>/<N>`: one whole request through the balancer as a
//!   tower `Service` — `poll_ready`, `call`, and the response future run to
//!   completion — over N inner services that are always ready and answer
//!   at once, for ours (p2c, peak-EWMA) and tower's (`p2c::Balance` over
//!   `PendingRequestsDiscover` and over `PeakEwmaDiscover`). Same N, same
//!   inner services, same (idle) load state on both sides, every endpoint
//!   ready: like for like, including the load bookkeeping of each.
//!
//! cargo bench -p patterns --bench balance

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use patterns::balance::{Balance, Load, LoadConfig, Pick, Policy};
use tokio::time::Instant;
use tower::balance::p2c;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};
use tower_service::Service;

const SIZES: [usize; 3] = [2, 10, 100];

type Inner = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, Infallible>>>;

fn inner() -> Inner {
    tower::service_fn(|n| std::future::ready(Ok(n)))
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    let now = Instant::now();
    for n in SIZES {
        let loads: Vec<Load> = (0..n)
            .map(|i| {
                let load = Load::new(1 + (i % 3) as u32, LoadConfig::default(), now);
                load.set_outstanding((i % 8) as u32);
                load.observe(Duration::from_micros(500 + 100 * i as u64), now);
                load
            })
            .collect();
        let ready: Vec<usize> = (0..n).collect();
        for mut policy in Policy::all(7) {
            let id = BenchmarkId::new(policy.name(), n);
            group.bench_function(id, |b| {
                b.iter(|| black_box(policy.pick(black_box(&loads), &ready, now)))
            });
        }
    }
    group.finish();
}

/// One request, start to end, through a balancer whose services answer at
/// once: the waker is never needed, so a no-op one does.
fn request<S>(balancer: &mut S, n: u64, cx: &mut Context<'_>) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    match balancer.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("always-ready endpoints, got {other:?}"),
    }
    let response = pin!(balancer.call(n));
    match response.poll(cx) {
        Poll::Ready(Ok(answer)) => answer,
        other => panic!("instant answers, got {other:?}"),
    }
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    let mut cx = Context::from_waker(Waker::noop());
    let config = LoadConfig::default();
    for n in SIZES {
        for name in ["p2c", "peak-ewma"] {
            let policy = Policy::by_name(name, 7).expect("known policy");
            let mut ours = Balance::from_services(policy, config, (0..n).map(|_| inner()))
                .expect("within bounds");
            let id = BenchmarkId::new(format!("dslab {name}"), n);
            group.bench_function(id, |b| {
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    black_box(request(&mut ours, i, &mut cx))
                })
            });
        }
        let pending = PendingRequestsDiscover::new(
            ServiceList::new((0..n).map(|_| inner())),
            CompleteOnResponse::default(),
        );
        let mut tower_p2c = p2c::Balance::new(pending);
        group.bench_function(BenchmarkId::new("tower p2c", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(request(&mut tower_p2c, i, &mut cx))
            })
        });
        let ewma = PeakEwmaDiscover::new(
            ServiceList::new((0..n).map(|_| inner())),
            config.default_rtt,
            config.decay,
            CompleteOnResponse::default(),
        );
        let mut tower_ewma = p2c::Balance::new(ewma);
        group.bench_function(BenchmarkId::new("tower peak-ewma", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(request(&mut tower_ewma, i, &mut cx))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, picks, requests);
criterion_main!(benches);
