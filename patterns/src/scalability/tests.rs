use std::time::Duration;

use tonic::Code;

use super::*;

fn synthetic(model: &Usl, levels: impl IntoIterator<Item = u32>) -> Vec<Point> {
    levels
        .into_iter()
        .map(|n| Point::new(f64::from(n), model.throughput(f64::from(n))))
        .collect()
}

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

/// Episode 27. Points drawn from the law itself, with and without a point
/// at N = 1, must give back λ, σ and κ to round-off.
#[test]
fn usl_fit_recovers_known_sigma_and_kappa_exactly() {
    let cases = [
        (1_000.0, 0.05, 0.002, 1..=32),
        (250.0, 0.3, 0.0001, 1..=64),
        (80.0, 0.0, 0.01, 3..=20),
        (5_000.0, 0.02, 0.0, 2..=16),
        (1.0, 0.0, 0.0, 1..=8),
    ];
    for (lambda, sigma, kappa, levels) in cases {
        let truth = Usl::new(lambda, sigma, kappa).expect("valid parameters");
        let fitted = fit(&synthetic(&truth, levels)).expect("exact points fit");
        let m = fitted.model;
        assert!(
            close(m.lambda, lambda, lambda * 1e-9),
            "λ {m:?} vs {truth:?}"
        );
        assert!(close(m.sigma, sigma, 1e-9), "σ {m:?} vs {truth:?}");
        assert!(close(m.kappa, kappa, 1e-9), "κ {m:?} vs {truth:?}");
        assert!(fitted.r_squared > 1.0 - 1e-9, "R² {}", fitted.r_squared);
    }
}

/// Episode 27. N* = √((1−σ)/κ) is the top of the curve; Amdahl (κ = 0) and
/// σ ≥ 1 have none.
#[test]
fn usl_peak_is_the_maximum_and_amdahl_has_none() {
    let usl = Usl::new(1_000.0, 0.05, 0.002).expect("valid");
    let peak = usl.peak_concurrency().expect("κ > 0 has a peak");
    assert!(close(peak, (0.95_f64 / 0.002).sqrt(), 1e-12));
    let top = usl.throughput(peak);
    for n in [1.0, peak - 1.0, peak - 0.01, peak + 0.01, peak + 1.0, 200.0] {
        assert!(usl.throughput(n) <= top, "X({n}) above X(N*)");
    }
    assert_eq!(usl.peak_throughput(), Some(top));

    let amdahl = Usl::amdahl(1_000.0, 0.05).expect("valid");
    assert_eq!(amdahl.peak_concurrency(), None);
    assert_eq!(amdahl.amdahl_ceiling(), Some(20_000.0));
    // Amdahl's curve only rises, towards λ/σ.
    assert!(amdahl.throughput(10_000.0) > amdahl.throughput(100.0));
    assert!(amdahl.throughput(1e9) < 20_000.0);
    let serial = Usl::new(1_000.0, 1.0, 0.01).expect("valid");
    assert_eq!(serial.peak_concurrency(), None);
}

/// Episode 27. Amdahl's fit recovers σ from Amdahl data; on data with
/// coherency it fits worse than the full law.
#[test]
fn usl_fit_amdahl_is_the_kappa_zero_case() {
    let amdahl = Usl::amdahl(400.0, 0.1).expect("valid");
    let fitted = fit_amdahl(&synthetic(&amdahl, 1..=16)).expect("fits");
    assert!(close(fitted.model.sigma, 0.1, 1e-9));
    assert_eq!(fitted.model.kappa, 0.0);

    let retrograde = synthetic(&Usl::new(400.0, 0.05, 0.01).expect("valid"), 1..=32);
    let full = fit(&retrograde).expect("fits");
    let amdahl_only = fit_amdahl(&retrograde).expect("fits");
    assert!(full.r_squared > amdahl_only.r_squared + 0.1);
}

/// Episode 27. The deterministic simulation of the contended server (W of
/// parallel work, then a lock held for s plus k per other caller) is not
/// exactly a USL curve — its knee is sharp where the law's is round — but
/// the fit must still capture what matters: where the peak is, and the
/// retrograde tail, where every caller added costs k in the lock
/// (X → 1/(kN), which the law writes λ/(κN), so λ/κ must be near 1/k).
/// The law rounds the knee off, so it places the peak well but
/// underestimates its height by up to a quarter here — the tolerances say
/// so.
#[test]
fn usl_fit_from_simulated_service_within_tolerance() {
    let cases = [(10_000, 400, 100), (5_000, 200, 20), (20_000, 1_000, 50)];
    for (parallel_us, serial_us, crosstalk_us) in cases {
        let costs = Costs::new(
            Duration::from_micros(parallel_us),
            Duration::from_micros(serial_us),
            Duration::from_micros(crosstalk_us),
        )
        .expect("within bounds");
        let expected = costs.expected_usl().expect("valid costs");
        let levels: Vec<usize> = (1..=48).collect();
        let points = simulated_sweep(&costs, &levels).expect("valid sweep");
        let fitted = fit(&points).expect("simulated points fit");
        let m = fitted.model;
        let simulated = measured_peak(&points).expect("non-empty");
        let peak = m.peak_concurrency().expect("coherency gives a peak");
        let top = m.throughput(peak);
        let tail = m.lambda / m.kappa;
        let context = format!(
            "costs {costs:?}: fitted {m:?} (R² {:.3}), from the costs {expected:?}; \
             peak N* {peak:.1} X {top:.0} vs simulated {simulated:?}; λ/κ {tail:.0}",
            fitted.r_squared
        );
        assert!(fitted.r_squared > 0.85, "{context}");
        let one_over_k = 1.0 / costs.crosstalk.as_secs_f64();
        assert!(close(tail, one_over_k, 0.25 * one_over_k), "{context}");
        let n = simulated.concurrency;
        assert!(close(peak, n, 0.2 * n), "{context}");
        let x = simulated.throughput;
        assert!(top <= x && top >= 0.75 * x, "{context}");
        assert!(m.sigma <= expected.sigma + 0.05, "{context}");
    }
}

/// Episode 27. Noise can pull an unconstrained fit below zero; the fit
/// falls back to a constrained shape instead of reporting a negative cost.
#[test]
fn usl_fit_never_reports_negative_costs() {
    // Perfectly linear scaling with a wobble: the unconstrained quadratic
    // wants a small negative σ or κ.
    let wobbly: Vec<Point> = (1..=12)
        .map(|n| {
            let wobble = if n % 2 == 0 { 1.01 } else { 0.99 };
            Point::new(f64::from(n), 100.0 * f64::from(n) * wobble)
        })
        .collect();
    // Faster than linear: more workers make each one faster.
    let superlinear: Vec<Point> = (1..=8)
        .map(|n| Point::new(f64::from(n), 10.0 * f64::from(n * n)))
        .collect();
    for points in [wobbly, superlinear] {
        match fit(&points) {
            Ok(fitted) => {
                let m = fitted.model;
                assert!(m.lambda > 0.0 && m.sigma >= 0.0 && m.kappa >= 0.0, "{m:?}");
                assert!(
                    m.lambda.is_finite() && fitted.r_squared.is_finite(),
                    "{m:?}"
                );
            }
            Err(err) => assert!(matches!(err, UslError::Degenerate { .. }), "{err}"),
        }
    }
}

/// Bad input is a typed error, never a NaN.
#[test]
fn usl_bad_input_is_a_typed_error() {
    assert_eq!(fit(&[]), Err(UslError::NoPoints));
    let bad = |n: f64, x: f64| {
        let points = [
            Point::new(1.0, 10.0),
            Point::new(n, x),
            Point::new(3.0, 25.0),
        ];
        matches!(fit(&points), Err(UslError::InvalidPoint { index: 1, .. }))
    };
    assert!(bad(0.0, 10.0), "N = 0");
    assert!(bad(-2.0, 10.0), "negative N");
    assert!(bad(2.0, 0.0), "zero throughput");
    assert!(bad(2.0, -5.0), "negative throughput");
    assert!(bad(f64::NAN, 10.0), "NaN");
    assert!(bad(2.0, f64::INFINITY), "infinite throughput");
    let one_level = [Point::new(4.0, 10.0), Point::new(4.0, 11.0)];
    assert_eq!(
        fit(&one_level),
        Err(UslError::TooFewLevels {
            distinct: 1,
            needed: 3
        })
    );
    assert!(fit_amdahl(&one_level).is_err());
    let two_levels = [Point::new(1.0, 10.0), Point::new(2.0, 19.0)];
    assert!(matches!(
        fit(&two_levels),
        Err(UslError::TooFewLevels { .. })
    ));
    assert!(fit_amdahl(&two_levels).is_ok());
    let flood = vec![Point::new(1.0, 1.0); MAX_POINTS + 1];
    assert!(matches!(fit(&flood), Err(UslError::TooManyPoints { .. })));
    assert!(Usl::new(0.0, 0.1, 0.1).is_err());
    assert!(Usl::new(1.0, -0.1, 0.1).is_err());
    assert!(Usl::new(1.0, 0.1, f64::NAN).is_err());
    assert!(
        Costs::new(
            MAX_COST + Duration::from_micros(1),
            Duration::ZERO,
            Duration::ZERO
        )
        .is_err()
    );
    let free = Costs::new(Duration::from_millis(1), Duration::ZERO, Duration::ZERO).expect("valid");
    assert!(simulated_throughput(&free, 4).is_err(), "no bottleneck");
    assert!(simulated_throughput(&free, 0).is_err());
}

/// Episode 27. The real service: every call sees how many are in flight
/// and holds the lock for serial + crosstalk × (in flight − 1).
#[tokio::test]
async fn usl_contended_service_holds_the_lock_per_calls_in_flight() {
    let costs = Costs::new(
        Duration::from_millis(30),
        Duration::from_micros(200),
        Duration::from_micros(100),
    )
    .expect("valid");
    let service = Contended::new(costs);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let service = service.clone();
        calls.spawn(async move { service.work().await });
    }
    let mut seen = Vec::new();
    while let Some(reply) = calls.join_next().await {
        let reply = reply.expect("no panic").expect("served");
        let expected = costs.hold(reply.in_flight as usize);
        assert_eq!(u128::from(reply.hold_us), expected.as_micros());
        seen.push(reply.in_flight);
    }
    seen.sort_unstable();
    // All four were inside when the first took the lock; each leaves as
    // it releases it, so the next sees one fewer.
    assert_eq!(seen, vec![1, 2, 3, 4]);
}

/// The service bounds the calls it holds: one past [`MAX_WORKERS`] is
/// refused with `ResourceExhausted`, and the count recovers afterwards.
#[tokio::test(start_paused = true)]
async fn usl_contended_service_refuses_calls_beyond_its_bound() {
    let costs =
        Costs::new(Duration::from_secs(1) / 10, Duration::ZERO, Duration::ZERO).expect("valid");
    let service = Contended::new(costs);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..=MAX_WORKERS {
        let service = service.clone();
        calls.spawn(async move { service.work().await });
    }
    let mut refused = 0;
    while let Some(reply) = calls.join_next().await {
        if let Err(status) = reply.expect("no panic") {
            assert_eq!(status.code(), Code::ResourceExhausted);
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    let after = service.work().await.expect("served once the flood is over");
    assert_eq!(after.in_flight, 1);
}

/// The hostile client against `Contended` on loopback: every request gets
/// a precise status, and the service still works afterwards.
#[tokio::test]
async fn fuzz_contended_answers_precisely() {
    use observability::rpc::{ClientBuilder, Net, RpcServer};

    use super::service::proto::contended_client::ContendedClient;
    use super::service::proto::{FILE_DESCRIPTOR_SET, WorkRequest};
    use crate::test_support::fuzz_on_loopback;

    let costs =
        Costs::new(Duration::ZERO, Duration::from_micros(10), Duration::ZERO).expect("valid");
    let (server, _report) = fuzz_on_loopback(
        RpcServer::new().add_service(Contended::new(costs).into_service(), FILE_DESCRIPTOR_SET),
        FILE_DESCRIPTOR_SET,
        "patterns.scalability.v1.Contended",
    )
    .await;
    let mut client = ContendedClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let reply = client.work(WorkRequest {}).await.expect("still working");
    assert_eq!(reply.into_inner().in_flight, 1);
}
