//! The storm, measured: who does how much work, and who recovers.

use super::*;
use crate::retry::{BudgetConfig, Jitter};

fn with_jitter(jitter: Jitter, budget: Option<BudgetConfig>) -> RetryPolicy {
    storm_policy(jitter, budget)
}

const BUDGET: BudgetConfig = STORM_BUDGET;

/// Episode 8. Full jitter does less total work than retries in lockstep,
/// across seeds (the ordering, not the exact numbers, is the claim).
#[test]
fn retry_storm_full_jitter_does_less_work_than_no_jitter() {
    for seed in 1..=5 {
        let scenario = StormScenario::episode_8(seed);
        let lockstep = simulate(&scenario, &with_jitter(Jitter::None, None)).expect("valid");
        let jittered = simulate(&scenario, &with_jitter(Jitter::Full, None)).expect("valid");
        assert!(
            jittered.attempts < lockstep.attempts,
            "seed {seed}: full jitter {} attempts, no jitter {}",
            jittered.attempts,
            lockstep.attempts
        );
        assert!(
            lockstep.refused_full > jittered.refused_full,
            "seed {seed}: lockstep waves overflow the queue"
        );
    }
}

/// Episode 8. With a budget, retries are bounded by it: each client may
/// retry about max_tokens/2 times on credit, then one retry per
/// 1/token_ratio successes.
#[test]
fn retry_storm_budget_bounds_work_amplification() {
    let scenario = StormScenario::episode_8(1);
    let budgeted = simulate(&scenario, &with_jitter(Jitter::Full, Some(BUDGET))).expect("valid");
    let unbounded = simulate(&scenario, &with_jitter(Jitter::Full, None)).expect("valid");
    let retries = budgeted.attempts - budgeted.requests;
    let allowed = scenario.clients as f64 * (BUDGET.max_tokens / 2.0 + 1.0)
        + BUDGET.token_ratio * budgeted.succeeded as f64;
    assert!(
        retries as f64 <= allowed,
        "{retries} retries > budget bound {allowed}"
    );
    assert!(budgeted.budget_denied > 0, "the budget did refuse retries");
    assert!(budgeted.amplification() < unbounded.amplification());
}

/// Retries are worth having: they recover requests that failed during
/// the outage, which no retry at all cannot.
#[test]
fn retry_storm_retries_recover_what_no_retry_loses() {
    let scenario = StormScenario::episode_8(2);
    let none = simulate(
        &scenario,
        &RetryPolicy {
            max_attempts: 1,
            ..with_jitter(Jitter::Full, None)
        },
    )
    .expect("valid");
    let retried = simulate(&scenario, &with_jitter(Jitter::Full, Some(BUDGET))).expect("valid");
    assert_eq!(none.amplification(), 1.0);
    assert!(
        none.success_rate() < 0.75,
        "the outage fails a third of requests: {}",
        none.success_rate()
    );
    assert!(retried.success_rate() > none.success_rate());
}

/// Same seed, same storm, to the call.
#[test]
fn retry_storm_is_deterministic_per_seed() {
    let scenario = StormScenario::episode_8(9);
    let policy = with_jitter(Jitter::Decorrelated, Some(BUDGET));
    assert_eq!(
        simulate(&scenario, &policy).expect("valid"),
        simulate(&scenario, &policy).expect("valid")
    );
}
