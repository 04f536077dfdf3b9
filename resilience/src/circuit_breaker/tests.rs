//! Resilience4j's breaker scenarios, on a clock the test controls.

use std::time::Duration;

use tokio::time::Instant;

use super::core::{BreakerCore, Counters, State};
use super::naive::NaiveCircuitBreaker;
use super::{BreakerConfig, CircuitBreaker, SlidingWindow};
use crate::classify::Outcome;
use crate::error::Error;

fn config(window: u32, minimum: u32) -> BreakerConfig {
    BreakerConfig {
        sliding_window: SlidingWindow::Count(window),
        minimum_number_of_calls: minimum,
        wait_duration_in_open_state: Duration::from_secs(5),
        max_wait_duration_in_open_state: Duration::from_secs(5),
        permitted_calls_in_half_open_state: 3,
        ..BreakerConfig::new("test")
    }
}

/// Runs one call through the core at `now` with `outcome`.
fn call(core: &mut BreakerCore, now: Instant, outcome: Outcome) -> Result<(), State> {
    let (verdict, _) = core.try_acquire(now);
    let generation = verdict?;
    core.on_result(generation, outcome, None, || now);
    Ok(())
}

fn calls(core: &mut BreakerCore, now: Instant, failures: u32, successes: u32) {
    for _ in 0..failures {
        let _ = call(core, now, Outcome::Failure);
    }
    for _ in 0..successes {
        let _ = call(core, now, Outcome::Success);
    }
}

/// Opens `core` at `now` with ten failures.
fn opened(now: Instant, config: BreakerConfig) -> BreakerCore {
    let mut core = BreakerCore::new(config, now).expect("valid");
    calls(&mut core, now, 10, 0);
    assert_eq!(core.state(), State::Open);
    core
}

#[test]
fn circuit_breaker_below_minimum_calls_nothing_trips() {
    let t0 = Instant::now();
    let mut core = BreakerCore::new(config(20, 10), t0).expect("valid");
    calls(&mut core, t0, 9, 0);
    assert_eq!(
        core.state(),
        State::Closed,
        "nine failures are below the minimum of ten"
    );
    calls(&mut core, t0, 1, 0);
    assert_eq!(core.state(), State::Open, "the tenth call brings a verdict");
}

#[test]
fn circuit_breaker_exactly_fifty_percent_trips_a_fifty_percent_threshold() {
    let t0 = Instant::now();
    let mut core = BreakerCore::new(config(10, 10), t0).expect("valid");
    calls(&mut core, t0, 0, 5);
    calls(&mut core, t0, 4, 0);
    assert_eq!(core.state(), State::Closed, "4 of 9 is below the minimum");
    calls(&mut core, t0, 1, 0);
    assert_eq!(core.state(), State::Open, "5 of 10 = 50 % trips at ≥ 50 %");

    let mut below = BreakerCore::new(config(10, 10), t0).expect("valid");
    calls(&mut below, t0, 4, 6);
    assert_eq!(below.state(), State::Closed, "40 % does not trip");
}

#[test]
fn circuit_breaker_slow_call_rate_trips_even_when_calls_succeed() {
    let t0 = Instant::now();
    let slow = BreakerConfig {
        slow_call_rate_threshold: Some(60.0),
        slow_call_duration_threshold: Duration::from_secs(1),
        ..config(10, 10)
    };
    let mut core = BreakerCore::new(slow, t0).expect("valid");
    for i in 0..10 {
        let (verdict, _) = core.try_acquire(t0);
        let elapsed = if i < 6 {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(10)
        };
        core.on_result(
            verdict.expect("closed"),
            Outcome::Success,
            Some(elapsed),
            || t0,
        );
    }
    assert_eq!(core.state(), State::Open, "6 of 10 succeeded, slowly");
    assert_eq!(core.counters().failed, 0);
    assert_eq!(core.counters().slow, 6);
}

#[test]
fn circuit_breaker_open_rejects_and_counts_rejections() {
    let t0 = Instant::now();
    let mut core = opened(t0, config(10, 10));
    for _ in 0..7 {
        assert_eq!(
            core.try_acquire(t0 + Duration::from_secs(1)).0,
            Err(State::Open)
        );
    }
    assert_eq!(core.counters().not_permitted, 7);
}

#[test]
fn circuit_breaker_after_the_wait_the_next_call_is_a_half_open_probe() {
    let t0 = Instant::now();
    let mut core = opened(t0, config(10, 10));
    assert_eq!(
        core.try_acquire(t0 + Duration::from_millis(4_999)).0,
        Err(State::Open)
    );
    let (verdict, change) = core.try_acquire(t0 + Duration::from_secs(5));
    assert!(verdict.is_ok(), "the first call after the wait is admitted");
    let change = change.expect("a transition");
    assert_eq!((change.from, change.to), (State::Open, State::HalfOpen));
    assert_eq!(core.state(), State::HalfOpen);
}

#[test]
fn circuit_breaker_admits_exactly_n_concurrent_half_open_calls() {
    let t0 = Instant::now();
    let mut core = opened(t0, config(10, 10));
    let t = t0 + Duration::from_secs(5);
    let admitted: Vec<_> = (0..10).map(|_| core.try_acquire(t).0).collect();
    assert_eq!(
        admitted.iter().filter(|v| v.is_ok()).count(),
        3,
        "{admitted:?}"
    );
    assert!(admitted[3..].iter().all(|v| *v == Err(State::HalfOpen)));
}

#[test]
fn circuit_breaker_half_open_failures_reopen_successes_close_with_a_fresh_window() {
    let t0 = Instant::now();
    let t = t0 + Duration::from_secs(5);
    let mut failing = opened(t0, config(10, 10));
    calls(&mut failing, t, 2, 1);
    assert_eq!(failing.state(), State::Open, "2 of 3 probes failed");

    let mut recovering = opened(t0, config(10, 10));
    calls(&mut recovering, t, 1, 2);
    assert_eq!(recovering.state(), State::Closed, "1 of 3 is below 50 %");
    assert_eq!(
        recovering.totals(t).calls,
        0,
        "closed again with an empty window"
    );
    calls(&mut recovering, t, 9, 0);
    assert_eq!(
        recovering.state(),
        State::Closed,
        "the old failures were forgotten"
    );
}

#[test]
fn circuit_breaker_ignored_outcomes_release_permits_without_counting() {
    let t0 = Instant::now();
    let mut core = opened(t0, config(10, 10));
    let t = t0 + Duration::from_secs(5);
    let generations: Vec<u64> = (0..3)
        .map(|_| core.try_acquire(t).0.expect("probe"))
        .collect();
    assert_eq!(core.try_acquire(t).0, Err(State::HalfOpen));
    core.on_result(generations[0], Outcome::Ignored, None, || t);
    assert!(
        core.try_acquire(t).0.is_ok(),
        "the ignored probe's slot came back"
    );
    assert_eq!(core.totals(t).calls, 0, "and it was not counted");
}

#[test]
fn circuit_breaker_forced_open_never_recovers_by_itself() {
    let t0 = Instant::now();
    let mut core = BreakerCore::new(config(10, 10), t0).expect("valid");
    core.transition(State::ForcedOpen, t0).expect("allowed");
    for hours in [0, 1, 24, 24 * 365] {
        assert_eq!(
            core.try_acquire(t0 + Duration::from_secs(hours * 3600)).0,
            Err(State::ForcedOpen)
        );
    }
    core.transition(State::Closed, t0)
        .expect("an operator may close it");
    assert!(core.try_acquire(t0).0.is_ok());
}

#[test]
fn circuit_breaker_illegal_transitions_are_errors() {
    let breaker = CircuitBreaker::new(config(10, 10)).expect("valid");
    let err = breaker
        .transition_to(State::HalfOpen)
        .expect_err("closed → half-open is illegal");
    assert!(matches!(
        err,
        Error::IllegalTransition {
            from: State::Closed,
            to: State::HalfOpen,
            ..
        }
    ));
    assert_eq!(breaker.state(), State::Closed, "nothing changed");
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );
    breaker.transition_to(State::Disabled).expect("allowed");
    breaker
        .transition_to(State::HalfOpen)
        .expect("disabled → half-open is allowed");
}

#[test]
fn circuit_breaker_disabled_admits_everything_and_counts_nothing() {
    let t0 = Instant::now();
    let mut core = BreakerCore::new(config(10, 10), t0).expect("valid");
    core.transition(State::Disabled, t0).expect("allowed");
    calls(&mut core, t0, 100, 50);
    assert_eq!(core.state(), State::Disabled);
    assert_eq!(
        core.counters(),
        Counters::default(),
        "no call is counted while disabled"
    );
    core.transition(State::Closed, t0).expect("allowed");
    assert_eq!(core.totals(t0).calls, 0, "the window starts empty");
}

/// Episode 37. Many threads take and drop permits while another moves the
/// breaker CLOSED → OPEN → HALF_OPEN over and over. However the fast path
/// interleaves with a transition, a HALF_OPEN breaker never has more probe
/// slots than configured: a permit from the CLOSED fast path can never
/// pose as a probe and hand back a slot it did not take.
#[test]
fn circuit_breaker_half_open_never_exceeds_its_probes_under_contention() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const PROBES: u32 = 2;
    let breaker = CircuitBreaker::new(BreakerConfig {
        permitted_calls_in_half_open_state: PROBES,
        ..config(10, 10)
    })
    .expect("valid");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (breaker, stop) = (breaker.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Dropped unreported: an abandoned call, which hands
                    // a half-open slot back if it held one.
                    drop(breaker.try_acquire());
                }
            })
        })
        .collect();
    let mut worst = 0;
    for _ in 0..50_000 {
        breaker.transition_to(State::Open).expect("allowed");
        breaker.transition_to(State::HalfOpen).expect("allowed");
        // Stay half-open a moment, so permits taken around the
        // transition are released while it lasts.
        for _ in 0..20 {
            worst = worst.max(breaker.probes_left().unwrap_or(0));
        }
        breaker.transition_to(State::Closed).expect("allowed");
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    assert!(
        worst <= PROBES,
        "a half-open breaker offered {worst} probe slots, configured {PROBES}"
    );
}

#[test]
fn circuit_breaker_wait_grows_on_repeated_openings() {
    let t0 = Instant::now();
    let growing = BreakerConfig {
        wait_multiplier: 2.0,
        max_wait_duration_in_open_state: Duration::from_secs(15),
        ..config(10, 10)
    };
    let mut core = opened(t0, growing);
    let mut t = t0;
    for expected in [5, 10, 15, 15] {
        assert_eq!(
            core.try_acquire(t + Duration::from_secs(expected) - Duration::from_millis(1))
                .0,
            Err(State::Open)
        );
        t += Duration::from_secs(expected);
        calls(&mut core, t, 3, 0);
        assert_eq!(
            core.state(),
            State::Open,
            "failed probes re-open, waiting {expected} s before"
        );
    }
}

#[test]
fn circuit_breaker_results_from_before_a_transition_do_not_count() {
    let t0 = Instant::now();
    let mut core = BreakerCore::new(config(10, 10), t0).expect("valid");
    let old = core.try_acquire(t0).0.expect("closed");
    calls(&mut core, t0, 10, 0);
    let t = t0 + Duration::from_secs(5);
    let probe = core.try_acquire(t).0.expect("half-open probe");
    core.on_result(old, Outcome::Failure, None, || t);
    assert_eq!(
        core.totals(t).calls,
        0,
        "the slow closed-state call did not count as a probe"
    );
    core.on_result(probe, Outcome::Success, None, || t);
    assert_eq!(core.totals(t).calls, 1);
}

#[test]
fn circuit_breaker_time_window_trips_on_recent_failures_only() {
    let t0 = Instant::now();
    let timed = BreakerConfig {
        sliding_window: SlidingWindow::Time(10),
        ..config(10, 5)
    };
    let mut core = BreakerCore::new(timed, t0).expect("valid");
    calls(&mut core, t0, 4, 0);
    calls(&mut core, t0 + Duration::from_secs(11), 0, 5);
    assert_eq!(core.state(), State::Closed, "the failures are 11 s old");
    calls(&mut core, t0 + Duration::from_secs(12), 5, 0);
    assert_eq!(core.state(), State::Open, "5 of 10 recent calls failed");
}

#[test]
fn circuit_breaker_invalid_configuration_is_refused_at_build_time() {
    let base = config(10, 10);
    let bad = [
        BreakerConfig {
            failure_rate_threshold: 0.0,
            ..base.clone()
        },
        BreakerConfig {
            failure_rate_threshold: 100.5,
            ..base.clone()
        },
        BreakerConfig {
            failure_rate_threshold: f64::NAN,
            ..base.clone()
        },
        BreakerConfig {
            slow_call_rate_threshold: Some(-1.0),
            ..base.clone()
        },
        BreakerConfig {
            slow_call_rate_threshold: Some(50.0),
            slow_call_duration_threshold: Duration::ZERO,
            ..base.clone()
        },
        BreakerConfig {
            sliding_window: SlidingWindow::Count(0),
            ..base.clone()
        },
        BreakerConfig {
            sliding_window: SlidingWindow::Time(0),
            ..base.clone()
        },
        BreakerConfig {
            minimum_number_of_calls: 0,
            ..base.clone()
        },
        BreakerConfig {
            permitted_calls_in_half_open_state: 0,
            ..base.clone()
        },
        BreakerConfig {
            wait_duration_in_open_state: Duration::ZERO,
            ..base.clone()
        },
        BreakerConfig {
            wait_multiplier: 0.5,
            ..base.clone()
        },
        BreakerConfig {
            max_wait_duration_in_open_state: Duration::from_secs(1),
            ..base.clone()
        },
        BreakerConfig {
            max_wait_duration_in_half_open_state: Some(Duration::ZERO),
            ..base.clone()
        },
    ];
    for config in bad {
        let err = CircuitBreaker::new(config.clone()).expect_err("invalid");
        assert!(matches!(err, Error::InvalidConfig { .. }), "{config:?}");
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
    }
}

/// Clones share one breaker; permits report through the shared state, and
/// an abandoned permit counts as nothing.
#[test]
fn circuit_breaker_clones_share_state_and_drop_is_ignored() {
    let breaker = CircuitBreaker::new(config(10, 10)).expect("valid");
    let clone = breaker.clone();
    for _ in 0..5 {
        clone.try_acquire().expect("closed").failure();
    }
    drop(breaker.try_acquire().expect("closed"));
    for _ in 0..5 {
        breaker.try_acquire().expect("closed").failure();
    }
    assert_eq!(clone.state(), State::Open);
    let metrics = breaker.metrics();
    assert_eq!((metrics.counters.failed, metrics.counters.ignored), (10, 1));
    assert!(matches!(
        clone.try_acquire(),
        Err(Error::CallNotPermitted {
            state: State::Open,
            ..
        })
    ));
    let changes = breaker.state_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].from, changes[0].to),
        (State::Closed, State::Open)
    );
}

/// The broken twin: when the wait ends, the naive breaker lets the whole
/// backlog through at once; the real one lets exactly three probes.
#[test]
fn circuit_breaker_naive_twin_floods_a_recovering_backend() {
    let t0 = Instant::now();
    let mut naive = NaiveCircuitBreaker::new(5, Duration::from_secs(5));
    for _ in 0..5 {
        naive.record(false, t0);
    }
    let t = t0 + Duration::from_secs(5);
    let naive_admitted = (0..50).filter(|_| naive.allows(t)).count();
    let mut real = opened(t0, config(10, 10));
    let real_admitted = (0..50).filter(|_| real.try_acquire(t).0.is_ok()).count();
    assert_eq!(naive_admitted, 50, "the backlog stampedes");
    assert_eq!(real_admitted, 3, "three probes, no more");
}
