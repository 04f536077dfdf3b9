//! The trade-off experiment: its maths, its fairness, its findings.

use std::time::Duration;

use crate::Error;
use crate::failure_detector::PhiConfig;
use crate::failure_detector::experiment::{DetectorSpec, Experiment};
use crate::failure_detector::network::{Latency, Scenario, run};
use crate::failure_detector::normal;
use crate::sim::seeds;

/// Seeds for a statistical test: 20 in a row from `DSLAB_SEED` (default 1).
fn twenty_seeds() -> std::ops::Range<u64> {
    let first = seeds()[0];
    first..first.saturating_add(20)
}

/// Episode 13. Phi's promise, checked: with a fixed latency distribution,
/// a phi threshold Φ is crossed in a heartbeat interval with probability
/// 10^-Φ.
///
/// The maths. Heartbeats leave every I = 1 s and each takes a latency
/// L ~ N(100 ms, 20 ms), so an inter-arrival time X = I + L' - L is normal
/// with mean I and σ = 20 ms · √2. Phi is monotone in the silence, so
/// within one interval it crosses Φ at most once, exactly when
/// X > μ̂ + σ̂ y_Φ, where Q(y_Φ) = 10^-Φ (Q the standard normal upper
/// tail). With μ̂ = μ and σ̂ = σ that has probability Q(y_Φ) = 10^-Φ per
/// interval — per *heartbeat interval*, not per evaluation: a monitor
/// checking ten times a second sees the same crossing ten times.
///
/// Consecutive intervals share a latency, so they are negatively
/// correlated; that changes the variance of the count, not its mean
/// (linearity of expectation over the intervals' identical marginals).
/// μ̂ and σ̂ come from a window of W = 1000 intervals, which adds a
/// Student-t-like correction to the tail of order φ(y)(y³ + y) / (4W):
/// +0.2% of the rate at Φ = 1, +1% at Φ = 2, +3% at Φ = 3. So the test
/// expects n · 10^-Φ false suspicions in n intervals, within four Poisson
/// standard deviations plus that 3%. 20 seeds × 50,000 intervals: a
/// million intervals, about 1,000 crossings even at Φ = 3.
#[test]
fn failure_detector_phi_false_positive_rate_matches_tail_probability() {
    let scenario = Scenario {
        interval: 1.0,
        latency: Latency {
            base: 0.1,
            jitter: 0.02,
            spike_probability: 0.0,
            spike_min: 1.0,
            congestion: None,
        },
        pauses: None,
        healthy: 51_100.0,
        // Past the 1000 intervals it takes to flush the bootstrap samples.
        warm_up: 1_100.0,
    };
    let experiment = Experiment::new(scenario, twenty_seeds()).expect("valid world");
    let intervals = experiment.healthy_hours() * 3_600.0 / scenario.interval;
    for threshold in [1.0, 2.0, 3.0] {
        let outcome = experiment
            .judge(DetectorSpec::Phi(PhiConfig {
                threshold,
                max_sample_size: 1_000,
                // Both far below σ = 28 ms and zero: the fit alone decides.
                min_std_deviation: Duration::from_micros(100),
                acceptable_heartbeat_pause: Duration::ZERO,
                first_heartbeat_estimate: Duration::from_secs(1),
            }))
            .expect("valid detector");
        let expected = intervals * 10f64.powf(-threshold);
        let observed = outcome.false_positives as f64;
        let tolerance = 4.0 * expected.sqrt() + 0.03 * expected;
        assert!(
            (observed - expected).abs() <= tolerance,
            "phi {threshold}: {observed} false suspicions in {intervals:.0} intervals, \
             expected {expected:.0} ± {tolerance:.0}"
        );
        // The same number in the unit the trade-off table uses.
        let per_hour = 3_600.0 / scenario.interval * 10f64.powf(-threshold);
        let ratio = outcome.false_positives_per_hour() / per_hour;
        assert!((ratio - 1.0).abs() < 0.2, "phi {threshold}: ratio {ratio}");
    }
    // And the phi the check used is the tail the maths used.
    assert!((normal::upper_tail(normal::y_at_phi(3.0)) - 1e-3).abs() < 1e-9);
}

fn allowed_phi(threshold: f64) -> DetectorSpec {
    DetectorSpec::Phi(PhiConfig {
        threshold,
        max_sample_size: 200,
        min_std_deviation: Duration::from_millis(20),
        acceptable_heartbeat_pause: Duration::from_secs(1),
        first_heartbeat_estimate: Duration::from_secs(1),
    })
}

/// Seconds phi detects sooner than the timeout that errs as often, averaged
/// over thresholds 1 and 3.
fn edge_over_matching_timeout(experiment: &Experiment) -> f64 {
    let edges: Vec<f64> = [1.0, 3.0]
        .into_iter()
        .map(|threshold| {
            let phi = experiment.judge(allowed_phi(threshold)).expect("valid");
            let timeout = experiment
                .matching_timeout(phi.false_positives)
                .expect("valid");
            assert!(timeout.false_positives <= phi.false_positives);
            timeout.mean_detection() - phi.mean_detection()
        })
        .collect();
    edges.iter().sum::<f64>() / edges.len() as f64
}

/// Episodes 13 and 11. The real finding of the experiment: at equal false
/// positives, phi detects a crash sooner than a fixed timeout only when
/// the network changes character (calm and congested phases), because its
/// deadline follows the phase while one timeout must fit both. On a steady
/// network the timeout tuned on the same heartbeats is as fast or faster.
#[test]
fn failure_detector_phi_beats_an_equally_wrong_timeout_only_when_the_network_shifts() {
    let seeds = || seeds()[0]..seeds()[0].saturating_add(40);
    let shifting = Experiment::new(Scenario::shifting().without_pauses(), seeds()).expect("valid");
    let steady = Experiment::new(Scenario::steady().without_pauses(), seeds()).expect("valid");
    let (shifting_edge, steady_edge) = (
        edge_over_matching_timeout(&shifting),
        edge_over_matching_timeout(&steady),
    );
    assert!(
        shifting_edge > 0.05,
        "shifting network: phi's edge {shifting_edge:+.3} s"
    );
    // Possibly negative: the timeout may even win where nothing changes.
    assert!(
        steady_edge < 0.05,
        "steady network: phi's edge {steady_edge:+.3} s"
    );
    eprintln!("phi's edge: {shifting_edge:+.3} s shifting, {steady_edge:+.3} s steady");
}

/// The settings trade as they must — a higher threshold never suspects
/// more often and never detects sooner — and GC pauses are what phi's
/// normal fit cannot absorb without an allowance.
#[test]
fn failure_detector_experiment_thresholds_trade_detection_for_false_positives() {
    let experiment = Experiment::new(Scenario::steady(), 1..=20).expect("valid");
    let pure: Vec<DetectorSpec> = [1.0, 4.0, 16.0]
        .into_iter()
        .map(|threshold| {
            DetectorSpec::Phi(PhiConfig {
                acceptable_heartbeat_pause: Duration::ZERO,
                ..PhiConfig::with_threshold(threshold)
            })
        })
        .collect();
    let timeouts: Vec<DetectorSpec> = [1.5, 3.0, 6.0]
        .map(|intervals| DetectorSpec::Timeout { intervals })
        .to_vec();
    for family in [&pure, &timeouts] {
        let outcomes = experiment.sweep(family).expect("valid");
        for pair in outcomes.windows(2) {
            assert!(
                pair[1].false_positives <= pair[0].false_positives,
                "{pair:?}"
            );
            assert!(
                pair[1].mean_detection() >= pair[0].mean_detection(),
                "{pair:?}"
            );
        }
    }
    let phi16 = experiment.judge(pure[2]).expect("valid");
    let timeout3 = experiment.judge(timeouts[1]).expect("valid");
    assert!(
        phi16.false_positives > 5 * timeout3.false_positives.max(1),
        "phi 16 without allowance: {} false suspicions; timeout 3×: {}",
        phi16.false_positives,
        timeout3.false_positives
    );
}

/// The matching timeout is exactly as strict as asked: it errs at most n
/// times, and a millisecond shorter it would err more.
#[test]
fn failure_detector_experiment_matching_timeout_is_the_tightest() {
    let experiment = Experiment::new(Scenario::shifting(), 1..=10).expect("valid");
    for allowed in [0, 1, 5, 20] {
        let matched = experiment.matching_timeout(allowed).expect("valid");
        assert!(matched.false_positives <= allowed, "{matched:?}");
        let DetectorSpec::Timeout { intervals } = matched.spec else {
            panic!("a timeout");
        };
        let tighter = experiment
            .judge(DetectorSpec::Timeout {
                intervals: intervals - 0.001,
            })
            .expect("valid");
        assert!(tighter.false_positives > allowed, "{allowed}: {tighter:?}");
    }
}

/// Runs replay by seed, and differ across seeds.
#[test]
fn failure_detector_experiment_runs_replay_by_seed() {
    let scenario = Scenario::shifting();
    assert_eq!(run(&scenario, 7), run(&scenario, 7));
    assert_ne!(run(&scenario, 7), run(&scenario, 8));
    let heartbeats = run(&scenario, 7).arrivals;
    assert!(
        heartbeats.windows(2).all(|w| w[0] <= w[1]),
        "in arrival order"
    );
    assert!(
        heartbeats.len() > 3_000,
        "an hour of 1 s heartbeats, less pauses"
    );
}

/// Bad input: worlds that cannot be simulated are refused, not looped on.
#[test]
fn failure_detector_experiment_refuses_absurd_worlds() {
    let base = Scenario::steady();
    let mut broken = vec![];
    for interval in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-9] {
        broken.push(Scenario { interval, ..base });
    }
    broken.push(Scenario {
        healthy: f64::INFINITY,
        ..base
    });
    broken.push(Scenario {
        warm_up: base.healthy,
        ..base
    });
    let mut latency = base.latency;
    latency.spike_probability = 1.5;
    broken.push(Scenario { latency, ..base });
    for scenario in broken {
        let refused = Experiment::new(scenario, 1..=1);
        assert!(
            matches!(refused, Err(Error::InvalidDetectorSetting { .. })),
            "{scenario:?}"
        );
    }
    let refused = Experiment::new(base, 1..=1)
        .expect("valid")
        .judge(DetectorSpec::Timeout {
            intervals: f64::NAN,
        });
    assert!(matches!(refused, Err(Error::InvalidDetectorSetting { .. })));
}
