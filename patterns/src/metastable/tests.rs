use std::time::Duration;

use super::*;

const SEEDS: std::ops::Range<u64> = 1..6;

fn run(intervention: Intervention, seed: u64) -> MetastableReport {
    simulate(&MetastableConfig::episode_9(intervention, seed))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

/// Episode 9. Setup: 60 % load, 1 s timeouts, 4 attempts, a 3 s spike to
/// 180 %. Break: nothing — the twin has no mitigation. Must hold: the
/// system is healthy before the spike and stays down for the 47 s after
/// it, although the load is back to 60 %.
#[test]
fn metastable_naive_stays_degraded_after_trigger_ends() {
    for seed in SEEDS {
        let report = run(Intervention::Naive, seed);
        let before: u64 = report.buckets[2..10].iter().map(|b| b.goodput).sum();
        assert!(
            before as f64 > 0.9 * 240.0 * 8.0,
            "seed {seed}: healthy before, got {before}"
        );
        assert_eq!(
            report.recovered_at, None,
            "seed {seed}: the twin must not recover"
        );
        let last = report.final_goodput(Duration::from_secs(20));
        assert!(
            last < 0.05 * 240.0,
            "seed {seed}: goodput {last}/s in the last 20 s"
        );
        assert!(
            report.amplification() > 2.0,
            "seed {seed}: retries amplify the load"
        );
        let queue = report.buckets.last().map_or(0, |b| b.queue);
        assert!(
            queue > 5_000,
            "seed {seed}: the backlog keeps growing, got {queue}"
        );
    }
}

/// Episode 9. Same spike; each intervention alone. Must hold: each one
/// brings goodput back within its stated time after the trigger ends and
/// keeps it there to the end of the run.
#[test]
fn metastable_each_mitigation_restores_within_its_bound() {
    let bounds = [
        (Intervention::episode_9()[1], Duration::from_secs(10)),
        (Intervention::episode_9()[2], Duration::from_secs(2)),
        (Intervention::episode_9()[3], Duration::from_secs(2)),
        (Intervention::episode_9()[4], Duration::from_secs(15)),
    ];
    for seed in SEEDS {
        for (intervention, bound) in bounds {
            let report = run(intervention, seed);
            let recovery = report.recovery_time();
            assert!(
                recovery.is_some_and(|r| r <= bound),
                "seed {seed}: {} recovered after {recovery:?}, bound {bound:?}",
                intervention.name()
            );
        }
    }
}

/// Episode 9. Capacity must exceed the amplified load, not the normal one:
/// doubling the workers (800/s against 960/s of attempts) leaves the
/// system down.
#[test]
fn metastable_doubling_capacity_is_not_enough() {
    for seed in SEEDS {
        let report = run(
            Intervention::Capacity {
                extra_workers: 4,
                hold: Duration::from_secs(15),
            },
            seed,
        );
        assert_eq!(report.recovered_at, None, "seed {seed}");
    }
}

/// Episode 9. A slowdown is a trigger too: service times ×4 for 3 s.
#[test]
fn metastable_slowdown_trigger_also_sticks() {
    let mut config = MetastableConfig::episode_9(Intervention::Naive, 7);
    config.trigger.kind = TriggerKind::Slowdown { factor: 4.0 };
    let naive = simulate(&config).expect("valid");
    assert_eq!(naive.recovered_at, None);
    config.intervention = Intervention::LoadShedding { queue_limit: 200 };
    let shed = simulate(&config).expect("valid");
    assert!(
        shed.recovery_time()
            .is_some_and(|r| r <= Duration::from_secs(2))
    );
}

/// A run replays exactly from its seed.
#[test]
fn metastable_same_seed_same_timeline() {
    assert_eq!(run(Intervention::Naive, 3), run(Intervention::Naive, 3));
}

/// Bad configurations are named, not run.
#[test]
fn metastable_rejects_bad_configurations() {
    let mut config = MetastableConfig::episode_9(Intervention::Naive, 1);
    config.workers = 0;
    assert!(matches!(
        simulate(&config),
        Err(Error::InvalidExperiment { .. })
    ));
    let mut config = MetastableConfig::episode_9(Intervention::Naive, 1);
    config.duration = MAX_DURATION * 2;
    assert!(simulate(&config).is_err());
    let mut config = MetastableConfig::episode_9(Intervention::Naive, 1);
    config.arrival_rate = MAX_ARRIVAL_RATE / 3.0;
    config.duration = MAX_DURATION;
    assert!(
        matches!(simulate(&config), Err(Error::InvalidExperiment { reason }) if reason.contains("attempts")),
        "a run that would generate too many attempts is refused"
    );
    let mut config = MetastableConfig::episode_9(
        Intervention::RetryBudget {
            max_tokens: 0.0,
            token_ratio: 0.1,
        },
        1,
    );
    assert!(simulate(&config).is_err());
    config.intervention = Intervention::Naive;
    config.trigger.kind = TriggerKind::LoadSpike { factor: f64::NAN };
    assert!(simulate(&config).is_err());
    // Every field a library caller sets is bounded, with a typed error:
    // these used to allocate 6e11 buckets or panic in Duration arithmetic.
    type Break = fn(&mut MetastableConfig);
    let breaks: [(&str, Break); 7] = [
        ("buckets", |c| c.bucket = Duration::from_nanos(1)),
        ("trigger factor", |c| {
            c.trigger.kind = TriggerKind::Slowdown { factor: 1e300 };
        }),
        ("trigger", |c| c.trigger.start = Duration::MAX),
        ("trigger", |c| c.trigger.length = Duration::MAX),
        ("retry backoff", |c| c.retry_backoff = Duration::MAX),
        ("service time", |c| {
            c.service_time = Duration::from_secs(3_600)
        }),
        ("capacity hold", |c| {
            c.intervention = Intervention::Capacity {
                extra_workers: 8,
                hold: Duration::MAX,
            };
        }),
    ];
    for (expected, break_it) in breaks {
        let mut config = MetastableConfig::episode_9(Intervention::Naive, 1);
        break_it(&mut config);
        assert!(
            matches!(simulate(&config), Err(Error::InvalidExperiment { ref reason }) if reason.contains(expected)),
            "{expected}: {:?}",
            simulate(&config).err()
        );
    }
}

/// Episode 9. Setup: the twin's spike, but clients that never retry
/// (`max_attempts` 1). Must hold: the system recovers soon after the
/// spike — the retry loop, not the spike, is what keeps it down (an
/// independent reimplementation recovers by about 19 s, 6 s after the
/// spike ends).
#[test]
fn metastable_naive_twin_without_retries_recovers() {
    for seed in SEEDS {
        let mut config = MetastableConfig::episode_9(Intervention::Naive, seed);
        config.max_attempts = 1;
        let report = simulate(&config).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let recovery = report.recovery_time();
        assert!(
            recovery.is_some_and(|r| r <= Duration::from_secs(10)),
            "seed {seed}: recovered after {recovery:?}"
        );
        assert!(report.amplification() < 1.0 + f64::EPSILON);
    }
}
