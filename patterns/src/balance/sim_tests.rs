//! The slow-node experiment in tokio's paused time: real balancers over
//! real `Flaky` services, counted in simulated time. `DSLAB_SEED` picks
//! the first seed and `DSLAB_SEEDS` how many (3 by default).

use super::Policy;
use super::experiment::{Balancer, Outcome, Scenario, run_in_process};

fn show(outcome: &Outcome) -> String {
    format!(
        "{}: slow share {:.3}, p50 {:?}, p99 {:?}, failed {}, calls {:?}",
        outcome.balancer,
        outcome.slow_share(),
        outcome.quantile(0.5),
        outcome.quantile(0.99),
        outcome.failed,
        outcome.calls
    )
}

fn seeded(seed: u64) -> Scenario {
    Scenario {
        seed,
        ..Scenario::default()
    }
}

async fn run_policy(scenario: &Scenario, name: &str) -> Outcome {
    let policy = Policy::by_name(name, scenario.seed).expect("a known policy");
    run_in_process(scenario, Balancer::Ours(policy))
        .await
        .expect("the scenario runs")
}

fn seeds() -> Vec<u64> {
    let first = std::env::var("DSLAB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count = std::env::var("DSLAB_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    (first..first + count).collect()
}

/// Episode 28, the broken twin. Five backends, one ten times slower, 400
/// calls/s in simulated time. Round robin keeps feeding the slow node its
/// full fifth — twice what it can serve — so its queue fills to the
/// deadline and the p99 is the deadline itself.
#[tokio::test(start_paused = true)]
async fn balance_naive_round_robin_keeps_feeding_the_slow_node() {
    for seed in seeds() {
        let scenario = seeded(seed);
        let rr = run_policy(&scenario, "round-robin").await;
        let fifth = scenario.requests as u64 / 5;
        let slow = rr.calls[scenario.slow_node()];
        let evidence = format!("seed {seed}: {}", show(&rr));
        assert!(slow.abs_diff(fifth) <= 1, "{evidence}");
        assert_eq!(rr.quantile(0.99), scenario.deadline, "{evidence}");
        assert!(rr.failed as usize > scenario.requests / 20, "{evidence}");
    }
}

/// Episode 28. Same backends, same arrivals: p2c, least-outstanding,
/// peak-EWMA and tower's p2c+PeakEwma send the slow node under 8% of the
/// calls (round robin: 20%) and beat round robin's p99 by far. Counted in
/// simulated time, not measured on a wall clock.
#[tokio::test(start_paused = true)]
async fn balance_load_aware_policies_shun_the_slow_node_and_beat_round_robin() {
    for seed in seeds() {
        let scenario = seeded(seed);
        let rr = run_policy(&scenario, "round-robin").await;
        let aware = ["least-outstanding", "p2c", "peak-ewma"]
            .iter()
            .map(|name| Balancer::Ours(Policy::by_name(name, seed).expect("known")))
            .chain([Balancer::TowerPeakEwma]);
        for balancer in aware {
            let outcome = run_in_process(&scenario, balancer).await.expect("runs");
            let evidence = format!("seed {seed}: {} vs {}", show(&outcome), show(&rr));
            assert!(outcome.slow_share() < 0.08, "{evidence}");
            assert!(outcome.quantile(0.99) * 4 < rr.quantile(0.99), "{evidence}");
            assert_eq!(outcome.failed, 0, "{evidence}");
        }
    }
}

/// The experiment replays: the same seed gives the same counts and the
/// same latencies, call for call — tower's balancer included, whose
/// random draws are seeded too.
#[tokio::test(start_paused = true)]
async fn balance_experiment_replays_with_the_same_seed() {
    let scenario = Scenario {
        requests: 1_000,
        ..Scenario::default()
    };
    let ours = Policy::by_name("peak-ewma", 5).expect("known");
    for balancer in [Balancer::Ours(ours), Balancer::TowerPeakEwma] {
        let a = run_in_process(&scenario, balancer.clone())
            .await
            .expect("runs");
        let b = run_in_process(&scenario, balancer).await.expect("runs");
        assert_eq!(
            (&a.calls, &a.latencies),
            (&b.calls, &b.latencies),
            "{}",
            a.balancer
        );
    }
}

/// Bad experiments are refused with a reason, not run.
#[test]
fn balance_experiment_rejects_bad_scenarios() {
    for bad in [
        Scenario {
            backends: 1,
            ..Scenario::default()
        },
        Scenario {
            rate_per_second: 0.0,
            ..Scenario::default()
        },
        Scenario {
            rate_per_second: f64::NAN,
            ..Scenario::default()
        },
        Scenario {
            requests: 0,
            ..Scenario::default()
        },
        Scenario {
            capacity: 0,
            ..Scenario::default()
        },
    ] {
        assert!(
            matches!(bad.backends(), Err(crate::Error::InvalidExperiment { .. })),
            "{bad:?}"
        );
    }
}

/// The demo's queueing model and the real balancer over real `Flaky`
/// services (paused time) tell the same story: round robin's share is the
/// same exact fifth, and the load-aware policies' shares of the slow node
/// agree within three percentage points.
#[tokio::test(start_paused = true)]
async fn balance_model_agrees_with_the_simulated_services() {
    let scenario = Scenario::default();
    for name in ["round-robin", "least-outstanding", "p2c", "peak-ewma"] {
        let policy = || Policy::by_name(name, scenario.seed).expect("known");
        let modelled = super::model::simulate(&scenario, policy()).expect("runs");
        let served = run_in_process(&scenario, Balancer::Ours(policy()))
            .await
            .expect("runs");
        let evidence = format!("model {} vs service {}", show(&modelled), show(&served));
        assert!(
            (modelled.slow_share() - served.slow_share()).abs() < 0.03,
            "{evidence}"
        );
        assert_eq!(modelled.failed == 0, served.failed == 0, "{evidence}");
    }
}
