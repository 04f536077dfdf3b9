//! Every formula against the simulator, over many seeds; the disciplines
//! under overload.

use std::time::Duration;

use super::discipline::{AdaptiveLifo, BoundedFifo, Codel, QueueDiscipline};
use super::*;
use crate::error::Error;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=16;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs `config` for each seed; returns the simulated mean waits.
fn mean_waits(config: impl Fn(u64) -> QueueConfig) -> Vec<f64> {
    SEEDS
        .map(|seed| secs(simulate(&config(seed)).expect("valid config").mean_wait))
        .collect()
}

/// Asserts the seeds' average within `average_tolerance` of `model` and
/// every single seed within `seed_tolerance` (both relative).
fn assert_agrees(
    name: &str,
    model: f64,
    waits: &[f64],
    average_tolerance: f64,
    seed_tolerance: f64,
) {
    let average = waits.iter().sum::<f64>() / waits.len() as f64;
    let error = (average - model).abs() / model;
    assert!(
        error < average_tolerance,
        "{name}: model {model:.5}s, simulated average {average:.5}s ({:.1}% off)",
        error * 100.0
    );
    for (seed, wait) in SEEDS.zip(waits) {
        let error = (wait - model).abs() / model;
        assert!(
            error < seed_tolerance,
            "{name}, seed {seed}: model {model:.5}s, simulated {wait:.5}s ({:.1}% off)",
            error * 100.0
        );
    }
}

fn short(mut config: QueueConfig) -> QueueConfig {
    config.customers = 15_000;
    config.warmup = 1_000;
    config
}

/// Episode 25. M/M/1 at ρ = 0.5 and 0.8: the simulated mean wait in queue
/// agrees with ρ/(μ − λ) — within 5% averaged over 16 seeds, and within
/// 25% (ρ = 0.5) or 40% (ρ = 0.8) for every single seed of 15 000
/// customers (near saturation successive waits are strongly correlated,
/// so one run is a noisy estimate).
#[test]
fn queueing_mm1_mean_wait_matches_simulation() {
    for (arrival_rate, seed_tolerance) in [(50.0, 0.25), (80.0, 0.4)] {
        let model = mm1(arrival_rate, 100.0).expect("stable");
        let waits = mean_waits(|seed| short(QueueConfig::markovian(arrival_rate, 100.0, 1, seed)));
        assert_agrees(
            &format!("M/M/1 λ={arrival_rate}"),
            secs(model.mean_wait),
            &waits,
            0.05,
            seed_tolerance,
        );
    }
}

/// Episode 25. M/M/4 at ρ = 0.8: the simulated mean wait agrees with
/// Erlang C — within 5% over 16 seeds, 40% per seed.
#[test]
fn queueing_mmc_mean_wait_matches_erlang_c() {
    let model = mmc(320.0, 100.0, 4).expect("stable");
    let waits = mean_waits(|seed| short(QueueConfig::markovian(320.0, 100.0, 4, seed)));
    assert_agrees("M/M/4", secs(model.mean_wait), &waits, 0.05, 0.4);
}

/// Episode 25. Kingman with Poisson arrivals is Pollaczek–Khinchine,
/// exact for M/D/1: constant service halves the M/M/1 wait, and the
/// simulator agrees within 5% over 16 seeds. For Erlang-2 arrivals
/// (c²ₐ = 0.5) it is an approximation, tightest near saturation: at
/// ρ = 0.9 the 16-seed average stays within 10% (per seed 40%).
#[test]
fn queueing_gg1_kingman_matches_simulation() {
    let md1 = |seed| QueueConfig {
        service: Distribution::Constant(Duration::from_millis(10)),
        ..short(QueueConfig::markovian(80.0, 100.0, 1, seed))
    };
    let model = gg1_kingman(80.0, 100.0, 1.0, 0.0).expect("stable");
    assert_eq!(
        model.mean_wait,
        mm1(80.0, 100.0).expect("stable").mean_wait / 2
    );
    assert_agrees("M/D/1", secs(model.mean_wait), &mean_waits(md1), 0.05, 0.4);

    let e2m1 = |seed| QueueConfig {
        arrivals: Distribution::Erlang {
            phases: 2,
            mean: Duration::from_secs(1) / 90,
        },
        ..short(QueueConfig::markovian(90.0, 100.0, 1, seed))
    };
    let model = gg1_kingman(90.0, 100.0, 0.5, 1.0).expect("stable");
    assert_agrees("E2/M/1", secs(model.mean_wait), &mean_waits(e2m1), 0.1, 0.4);
}

/// Episode 26. Little's law L = λW holds in every run — stable or
/// overloaded, any discipline — measured as the time-average number in
/// the system against throughput × mean time in the system.
#[test]
fn queueing_littles_law_holds_in_every_run() {
    for seed in 1..=5 {
        let mut configs = vec![QueueConfig::markovian(90.0, 100.0, 1, seed)];
        configs.extend(Policy::episode_7().map(|policy| QueueConfig::episode_7(policy, seed)));
        for config in configs {
            let report = simulate(&config).expect("valid");
            assert!(
                report.littles_law_error() < 1e-6,
                "seed {seed}, {:?}: L = {:.4}, λW = {:.4}",
                config.policy,
                report.time_average_in_system,
                report.throughput * secs(report.mean_time_in_system)
            );
        }
    }
}

/// Episode 7. At 120% offered load the unbounded FIFO — the broken twin —
/// keeps the servers 100% busy yet answers almost nothing within the
/// 200 ms deadline, while bounded FIFO, CoDel and adaptive LIFO turn the
/// excess away and keep goodput near capacity.
#[test]
fn queueing_unbounded_fifo_goodput_collapses_under_overload() {
    for seed in 1..=5 {
        let run = |policy| simulate(&QueueConfig::episode_7(policy, seed)).expect("valid");
        let [naive, bounded, codel, lifo] = Policy::episode_7().map(run);
        assert!(
            naive.busy_fraction > 0.99,
            "seed {seed}: {}",
            naive.busy_fraction
        );
        assert!(naive.p99_response > Duration::from_millis(200));
        assert!(
            naive.goodput < 0.02 * 400.0,
            "seed {seed}: {}",
            naive.goodput
        );
        assert!(
            naive.late_share() > 0.95,
            "nearly all its work is for nobody"
        );
        for (name, good) in [("bounded", &bounded), ("CoDel", &codel), ("LIFO", &lifo)] {
            assert!(
                good.goodput > 0.9 * 400.0 && good.goodput > 10.0 * naive.goodput,
                "seed {seed}: {name} goodput {:.1}/s vs naive {:.1}/s",
                good.goodput,
                naive.goodput
            );
        }
        assert!(bounded.p99_response <= Duration::from_millis(200));
        assert!(codel.dropped > 0, "CoDel dropped from the standing queue");
    }
}

/// Same seed, same run, to the customer.
#[test]
fn queueing_simulation_is_deterministic_per_seed() {
    for policy in Policy::episode_7() {
        let config = QueueConfig::episode_7(policy, 3);
        assert_eq!(simulate(&config), simulate(&config));
    }
}

/// Erlang C against a hand computation, and the M/M/c family's edges.
#[test]
fn queueing_models_agree_with_hand_computation() {
    // c = 2, a = 1 Erlang: C = 1/3, Wq = C / (cμ − λ) = 1/3 s.
    let two = mmc(1.0, 1.0, 2).expect("stable");
    assert!((two.wait_probability - 1.0 / 3.0).abs() < 1e-12);
    assert!((secs(two.mean_wait) - 1.0 / 3.0).abs() < 1e-9);
    // One server is M/M/1: W = 1/(μ − λ) = 50 ms at λ = 80, μ = 100.
    let one = mmc(80.0, 100.0, 1).expect("stable");
    assert_eq!(one, mm1(80.0, 100.0).expect("stable"));
    assert!((secs(one.mean_response) - 0.05).abs() < 1e-9);
    assert!((one.mean_in_system - 4.0).abs() < 1e-9);
    // Kingman with exponential both sides is M/M/1 exactly.
    let kingman = gg1_kingman(80.0, 100.0, 1.0, 1.0).expect("stable");
    assert!((secs(kingman.mean_wait) - secs(one.mean_wait)).abs() < 1e-9);
    // Erlang B's recursion stays finite where factorials overflow.
    let huge = mmc(45_000.0, 100.0, 500).expect("stable");
    assert!(huge.wait_probability.is_finite() && (0.0..=1.0).contains(&huge.wait_probability));
    // Little's law both ways.
    assert_eq!(
        littles_law_in_system(200.0, Duration::from_millis(50)),
        Ok(10.0)
    );
    assert_eq!(littles_law_time(10.0, 200.0), Ok(Duration::from_millis(50)));
}

/// Bad input is a typed error, never a NaN or a negative wait.
#[test]
fn queueing_models_reject_bad_input() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(mm1(rate, 1.0), Err(Error::InvalidRate { .. })),
            "{rate}"
        );
        assert!(
            matches!(mm1(1.0, rate), Err(Error::InvalidRate { .. })),
            "{rate}"
        );
        assert!(matches!(
            littles_law_in_system(rate, Duration::ZERO),
            Err(Error::InvalidRate { .. })
        ));
    }
    assert!(matches!(mm1(100.0, 100.0), Err(Error::Unstable { .. })));
    assert!(matches!(mm1(120.0, 100.0), Err(Error::Unstable { .. })));
    assert!(matches!(mmc(400.0, 100.0, 4), Err(Error::Unstable { .. })));
    assert!(matches!(mmc(1.0, 100.0, 0), Err(Error::NoServers)));
    assert!(matches!(
        gg1_kingman(1.0, 2.0, -0.1, 1.0),
        Err(Error::InvalidVariability { .. })
    ));
    assert!(matches!(
        gg1_kingman(1.0, 2.0, 1.0, f64::NAN),
        Err(Error::InvalidVariability { .. })
    ));
    assert!(matches!(
        littles_law_time(-1.0, 1.0),
        Err(Error::InvalidCount { .. })
    ));
    let config = QueueConfig::markovian(80.0, 100.0, 1, 1);
    assert!(matches!(
        simulate(&QueueConfig {
            servers: 0,
            ..config.clone()
        }),
        Err(Error::NoServers)
    ));
    assert!(matches!(
        simulate(&QueueConfig {
            customers: 0,
            ..config.clone()
        }),
        Err(Error::InvalidQueueConfig { .. })
    ));
    assert!(matches!(
        simulate(&QueueConfig {
            service: Distribution::Constant(Duration::ZERO),
            ..config
        }),
        Err(Error::InvalidRate { .. })
    ));
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bounded FIFO refuses the newcomer when full and serves in order.
#[test]
fn queueing_bounded_fifo_refuses_when_full() {
    let mut queue = BoundedFifo::new(2);
    assert_eq!(queue.push(1, ms(0)), None);
    assert_eq!(queue.push(2, ms(0)), None);
    assert_eq!(queue.push(3, ms(0)), Some(3));
    let mut dropped = Vec::new();
    assert_eq!(queue.pop(ms(1), &mut dropped), Some(1));
    assert_eq!(queue.pop(ms(1), &mut dropped), Some(2));
    assert_eq!(queue.pop(ms(1), &mut dropped), None);
}

/// CoDel tolerates a burst that drains within an interval, and drops
/// from a standing queue once sojourn has stayed above target that long.
#[test]
fn queueing_codel_drops_only_a_standing_queue() {
    let mut codel = Codel::new(ms(5), ms(100), 1_000);
    let mut dropped = Vec::new();
    for i in 0..10 {
        assert_eq!(codel.push(i, ms(0)), None);
    }
    // Above target, but not yet for an interval: served, not dropped.
    assert_eq!(codel.pop(ms(20), &mut dropped), Some(0));
    assert_eq!(codel.pop(ms(50), &mut dropped), Some(1));
    assert!(dropped.is_empty());
    // Still above target an interval later: CoDel drops the head and
    // serves the next.
    assert_eq!(codel.pop(ms(130), &mut dropped), Some(3));
    assert_eq!(dropped, [2]);
    // A fresh queue below target is never dropped from.
    let mut fresh = Codel::new(ms(5), ms(100), 1_000);
    for t in 0..50 {
        assert_eq!(fresh.push(t, ms(t * 10)), None);
        assert_eq!(fresh.pop(ms(t * 10 + 2), &mut dropped), Some(t));
    }
    assert_eq!(dropped, [2]);
}

/// Adaptive LIFO: FIFO while the head is fresh, newest first once it has
/// waited past the threshold; when full it evicts the oldest.
#[test]
fn queueing_adaptive_lifo_serves_newest_when_congested() {
    let mut queue = AdaptiveLifo::new(ms(5), 3);
    let mut dropped = Vec::new();
    assert_eq!(queue.push("a", ms(0)), None);
    assert_eq!(queue.push("b", ms(1)), None);
    assert_eq!(queue.pop(ms(2), &mut dropped), Some("a"), "fresh: FIFO");
    assert_eq!(queue.push("c", ms(3)), None);
    assert_eq!(queue.push("d", ms(4)), None);
    assert!(queue.congested(ms(10)));
    assert_eq!(
        queue.pop(ms(10), &mut dropped),
        Some("d"),
        "congested: LIFO"
    );
    assert_eq!(queue.push("e", ms(11)), None);
    assert_eq!(queue.push("f", ms(12)), Some("b"), "full: the oldest goes");
    assert_eq!(queue.len(), 3);
}
