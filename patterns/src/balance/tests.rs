//! The policies alone, the balancer as a tower service, and the slow-node
//! experiment in tokio's paused time.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status};
use tower::ServiceExt;
use tower::discover::Change;
use tower_service::Service;

use super::*;

fn loads(outstanding: &[u32], weights: &[u32]) -> Vec<Load> {
    let now = Instant::now();
    outstanding
        .iter()
        .zip(weights)
        .map(|(&n, &w)| {
            let load = Load::new(w, LoadConfig::default(), now);
            load.set_outstanding(n);
            load
        })
        .collect()
}

fn picks<P: Pick>(policy: &mut P, endpoints: &[Load], ready: &[usize], n: usize) -> Vec<usize> {
    let now = Instant::now();
    (0..n)
        .map(|_| {
            policy
                .pick(endpoints, ready, now)
                .expect("a ready endpoint")
        })
        .collect()
}

/// Episode 28. Round robin visits the ready endpoints in turn and skips
/// one that is not ready without giving it a double turn later.
#[test]
fn balance_round_robin_cycles_ready_endpoints_in_turn() {
    let endpoints = loads(&[0, 0, 0, 0], &[1, 1, 1, 1]);
    let mut rr = RoundRobin::default();
    assert_eq!(
        picks(&mut rr, &endpoints, &[0, 1, 2, 3], 6),
        [0, 1, 2, 3, 0, 1]
    );
    assert_eq!(picks(&mut rr, &endpoints, &[0, 1, 3], 4), [3, 0, 1, 3]);
}

/// nginx's smooth weighted round robin: weights {5, 1, 1} give exactly
/// `a a b a c a a`, the heavy endpoint's turns spread out.
#[test]
fn balance_smooth_weighted_matches_nginx_sequence() {
    let endpoints = loads(&[0, 0, 0], &[5, 1, 1]);
    let mut swrr = SmoothWeighted::default();
    assert_eq!(
        picks(&mut swrr, &endpoints, &[0, 1, 2], 14),
        [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]
    );
    // Not-ready endpoints neither win nor accumulate credit.
    let mut swrr = SmoothWeighted::default();
    assert_eq!(picks(&mut swrr, &endpoints, &[1, 2], 4), [1, 2, 1, 2]);
}

/// Least outstanding picks the idlest endpoint, and spreads ties.
#[test]
fn balance_least_outstanding_picks_the_idlest_and_rotates_ties() {
    let endpoints = loads(&[3, 1, 2, 1], &[1, 1, 1, 1]);
    let mut least = LeastOutstanding::default();
    let chosen = picks(&mut least, &endpoints, &[0, 1, 2, 3], 8);
    assert!(chosen.iter().all(|&i| i == 1 || i == 3), "{chosen:?}");
    assert!(
        chosen.contains(&1) && chosen.contains(&3),
        "ties rotate: {chosen:?}"
    );
    assert_eq!(picks(&mut least, &endpoints, &[0, 2], 3), [2, 2, 2]);
}

/// Power of two choices never picks the single most loaded endpoint (it
/// always loses its comparison), and with two endpoints always picks the
/// less loaded one.
#[test]
fn balance_p2c_never_picks_the_most_loaded() {
    let endpoints = loads(&[9, 1, 2, 3, 4], &[1; 5]);
    let mut p2c = PowerOfTwoChoices::new(7);
    let chosen = picks(&mut p2c, &endpoints, &[0, 1, 2, 3, 4], 500);
    assert!(!chosen.contains(&0), "the most loaded was picked");
    for i in 1..5 {
        assert!(chosen.contains(&i), "{i} never picked");
    }
    let pair = loads(&[5, 2], &[1, 1]);
    assert_eq!(picks(&mut p2c, &pair, &[0, 1], 20), [1; 20]);
}

/// Peak-EWMA weighs latency by queue depth: an idle endpoint with a slow
/// estimate loses to a fast one holding a few requests, but not to one
/// holding many.
#[test]
fn balance_peak_ewma_weighs_latency_by_outstanding() {
    let now = Instant::now();
    // Unmeasured endpoints start at zero, so the first sample is a peak.
    let unmeasured = LoadConfig {
        default_rtt: Duration::ZERO,
        ..LoadConfig::default()
    };
    let pair = [Load::new(1, unmeasured, now), Load::new(1, unmeasured, now)];
    pair[1].set_outstanding(3);
    pair[0].observe(Duration::from_millis(100), now);
    pair[1].observe(Duration::from_millis(10), now);
    let mut ewma = PeakEwma::new(3);
    assert_eq!(picks(&mut ewma, &pair, &[0, 1], 10), [1; 10]);
    pair[1].set_outstanding(12);
    assert_eq!(picks(&mut ewma, &pair, &[0, 1], 10), [0; 10]);
}

/// The estimate jumps to a peak at once, believes good news slowly, and
/// decays towards zero while nothing is measured.
#[test]
fn balance_rtt_estimate_jumps_on_peaks_and_decays() {
    let decay = Duration::from_secs(10);
    let t0 = Instant::now();
    let ms = |n: u64| Duration::from_millis(n);
    let mut estimate = RttEstimate::new(ms(30), t0);
    estimate.observe(ms(100), t0, decay);
    assert_eq!(
        estimate.at(t0, decay),
        100e6,
        "a peak replaces the estimate"
    );
    estimate.observe(ms(10), t0 + ms(100), decay);
    let after_one_fast = estimate.at(t0 + ms(100), decay);
    assert!(
        (95e6..100e6).contains(&after_one_fast),
        "one fast sample barely moves it: {after_one_fast}"
    );
    let later = estimate.at(t0 + ms(100) + decay, decay);
    assert!(
        (after_one_fast / std::f64::consts::E - later).abs() < 1.0,
        "decays by 1/e per τ: {later}"
    );
    assert_eq!(estimate.at(t0, Duration::ZERO), 0.0, "zero τ forgets");
}

/// No ready endpoint, no pick; an out-of-range index is skipped, not a
/// panic.
#[test]
fn balance_policies_pick_nothing_from_nothing() {
    let endpoints = loads(&[0, 0], &[1, 1]);
    for mut policy in Policy::all(1) {
        assert_eq!(policy.pick(&endpoints, &[], Instant::now()), None);
        assert_eq!(policy.pick(&[] as &[Load], &[], Instant::now()), None);
    }
    assert!(matches!(
        Policy::by_name("random", 1),
        Err(crate::Error::UnknownStrategy { .. })
    ));
}

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>;

fn echo() -> Echo {
    tower::service_fn(|n| std::future::ready(Ok(n)))
}

/// An empty endpoint set is a typed refusal: `UNAVAILABLE`, not a panic
/// and not a hang — and a gRPC client sees exactly that code.
#[tokio::test]
async fn balance_empty_endpoint_set_is_unavailable() {
    let mut empty: Balance<RoundRobin, Echo> =
        Balance::new(RoundRobin::default(), LoadConfig::default());
    let err = empty.ready().await.expect_err("nothing to send to");
    let status = err.downcast::<Status>().expect("a Status");
    assert_eq!(status.code(), Code::Unavailable);

    let grpc: Balance<PeakEwma, resilience::flaky::proto::flaky_server::FlakyServer<_>> =
        Balance::from_services(PeakEwma::new(1), LoadConfig::default(), Vec::<
            resilience::flaky::proto::flaky_server::FlakyServer<resilience::flaky::Flaky>,
        >::new())
        .expect("no endpoints is a valid start");
    let mut client = resilience::flaky::proto::flaky_client::FlakyClient::new(
        tower::buffer::Buffer::new(grpc, 4),
    );
    let status = client
        .call(resilience::flaky::proto::CallRequest::default())
        .await
        .expect_err("no endpoints");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

/// Calling without a ready poll is the caller's bug: reported as
/// `FAILED_PRECONDITION`, not a panic.
#[tokio::test]
async fn balance_call_before_ready_fails_precondition() {
    let mut balance =
        Balance::from_services(RoundRobin::default(), LoadConfig::default(), [echo()])
            .expect("one endpoint");
    let err = balance.call(1).await.expect_err("not polled");
    let status = err.downcast::<Status>().expect("a Status");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        balance
            .ready()
            .await
            .expect("ready")
            .call(2)
            .await
            .expect("served"),
        2
    );
}

/// An endpoint that echoes, or whose readiness fails for good.
#[derive(Clone, Debug)]
struct Endpointish {
    broken: bool,
}

impl Service<u32> for Endpointish {
    type Response = u32;
    type Error = Status;
    type Future = std::future::Ready<Result<u32, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.broken {
            Poll::Ready(Err(Status::unavailable("connection refused")))
        } else {
            Poll::Ready(Ok(()))
        }
    }
    fn call(&mut self, n: u32) -> Self::Future {
        std::future::ready(if self.broken {
            Err(Status::internal("called while broken"))
        } else {
            Ok(n)
        })
    }
}

/// A failed endpoint is evicted and the rest keep serving; when none is
/// left the balancer says so, naming the last failure.
#[tokio::test]
async fn balance_evicts_endpoints_whose_readiness_fails() {
    let services = [Endpointish { broken: true }, Endpointish { broken: false }];
    let mut balance =
        Balance::from_services(LeastOutstanding::default(), LoadConfig::default(), services)
            .expect("two endpoints");
    for n in 0..4 {
        let ready = balance.ready().await.expect("n2 is up");
        assert_eq!(ready.call(n).await.expect("echo"), n);
    }
    assert_eq!(balance.endpoints().len(), 1);
    assert_eq!(balance.endpoints()[0].name(), "n2");

    let broken = [Endpointish { broken: true }];
    let mut dead = Balance::from_services(RoundRobin::default(), LoadConfig::default(), broken)
        .expect("one endpoint");
    let err = dead.ready().await.expect_err("all gone");
    let status = err.downcast::<Status>().expect("a Status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("connection refused"), "{status}");
}

/// Membership: unique names, bounded weights, removal by name, and
/// tower `Discover` changes.
#[test]
fn balance_membership_rejects_bad_changes() {
    let mut balance = Balance::new(SmoothWeighted::default(), LoadConfig::default());
    balance.insert("a", echo(), 3).expect("fresh");
    assert!(matches!(
        balance.insert("a", echo(), 1),
        Err(crate::Error::NodeExists { .. })
    ));
    assert!(matches!(
        balance.insert("b", echo(), 0),
        Err(crate::Error::InvalidWeight { .. })
    ));
    assert!(matches!(
        balance.insert("b", echo(), MAX_WEIGHT + 1),
        Err(crate::Error::InvalidWeight { .. })
    ));
    assert!(matches!(
        balance.remove("zz"),
        Err(crate::Error::UnknownNode { .. })
    ));
    balance
        .apply(Change::Insert("b".into(), echo()))
        .expect("insert");
    balance
        .apply(Change::Insert("b".into(), echo()))
        .expect("replace");
    assert_eq!(balance.endpoints().len(), 2);
    balance.apply(Change::Remove("a".into())).expect("remove");
    let names: Vec<&str> = balance.endpoints().iter().map(Endpoint::name).collect();
    assert_eq!(names, ["b"]);
}

/// A request counts as outstanding from `call` until its response
/// arrives — or until the caller drops it.
#[tokio::test]
async fn balance_outstanding_counts_requests_until_done_or_dropped() {
    let slow = tower::service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Infallible>(n)
    });
    let mut balance = Balance::from_services(RoundRobin::default(), LoadConfig::default(), [slow])
        .expect("one endpoint");
    let first = balance.ready().await.expect("ready").call(1);
    let second = balance.ready().await.expect("ready").call(2);
    let load = balance.endpoints()[0].load().clone();
    assert_eq!((load.outstanding(), load.sent()), (2, 2));
    assert_eq!(first.await.expect("served"), 1);
    assert_eq!(load.outstanding(), 1);
    drop(second);
    assert_eq!(load.outstanding(), 0);
}
