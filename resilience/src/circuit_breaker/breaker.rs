//! The breaker shared by every clone of a layer, and its permits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use observability::rpc::outcome::StatusSink;
use tokio::time::Instant;
use tonic::Code;

use super::config::BreakerConfig;
use super::core::{BreakerCore, Counters, State, StateChange};
use super::window::Totals;
use crate::classify::{GrpcClassifier, Outcome};
use crate::error::{Error, Result};

/// The most state changes kept for inspection.
const KEPT_CHANGES: usize = 256;

#[derive(Debug)]
struct Shared {
    name: String,
    needs_clock: bool,
    classifier: GrpcClassifier,
    /// The state machine's generation (shifted left by one) and, in the
    /// low bit, whether it is CLOSED or DISABLED: permits are then handed
    /// out without taking the lock — the path every call takes on a
    /// healthy day.
    ///
    /// Pitfall: kept as two atomics, a caller could read "admit freely"
    /// while CLOSED and then the generation of the HALF_OPEN state that
    /// followed, and walk off with a probe permit that never took a probe
    /// slot. Its release would then hand back a slot it never held, and
    /// more than N probes would pass. One word makes the pair consistent.
    fast_path: AtomicU64,
    core: Mutex<BreakerCore>,
    changes: Mutex<VecDeque<StateChange>>,
    /// Transitions since the breaker was built, by `[from][to]`: the
    /// counter dashboards rate (the deque above keeps only recent ones).
    transitions: [[AtomicU64; STATES]; STATES],
}

/// How many [`State`]s there are.
pub(crate) const STATES: usize = 5;

/// A circuit breaker. Clones share one state machine.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// A point-in-time view of the breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerMetrics {
    pub state: State,
    /// Percent of failed calls in the current window.
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    /// Calls in the current window.
    pub buffered_calls: u32,
    pub counters: Counters,
}

/// The low bit of the fast-path word: permits may be handed out freely.
const FREE: u64 = 1;

fn fast_path_word(generation: u64, free: bool) -> u64 {
    (generation << 1) | u64::from(free)
}

// A panic while holding a lock leaves the state machine in a valid state
// (each method completes its transition before returning), so keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CircuitBreaker {
    /// Builds a breaker, refusing an invalid configuration.
    pub fn new(config: BreakerConfig) -> Result<Self> {
        let core = BreakerCore::new(config.clone(), Instant::now())?;
        Ok(Self {
            shared: Arc::new(Shared {
                name: config.name.clone(),
                needs_clock: config.needs_clock(),
                classifier: config.classifier,
                fast_path: AtomicU64::new(fast_path_word(0, true)),
                core: Mutex::new(core),
                changes: Mutex::new(VecDeque::new()),
                transitions: Default::default(),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Asks to make a call. Keep the permit until the call ends, then
    /// report the outcome on it (dropping it unreported counts as ignored).
    pub fn try_acquire(&self) -> Result<Permit> {
        let shared = &self.shared;
        let word = shared.fast_path.load(Ordering::Acquire);
        if word & FREE != 0 {
            return Ok(Permit {
                breaker: self.clone(),
                generation: word >> 1,
                started: shared.needs_clock.then(Instant::now),
                settled: false,
            });
        }
        let now = Instant::now();
        let mut core = lock(&shared.core);
        let (verdict, change) = core.try_acquire(now);
        self.publish(&core, change);
        match verdict {
            Ok(generation) => Ok(Permit {
                breaker: self.clone(),
                generation,
                started: Some(now),
                settled: false,
            }),
            Err(state) => Err(Error::CallNotPermitted {
                breaker: shared.name.clone(),
                state,
            }),
        }
    }

    pub fn state(&self) -> State {
        lock(&self.shared.core).state()
    }

    pub fn metrics(&self) -> BreakerMetrics {
        let mut core = lock(&self.shared.core);
        let totals: Totals = core.totals(Instant::now());
        BreakerMetrics {
            state: core.state(),
            failure_rate: totals.failure_rate(),
            slow_call_rate: totals.slow_rate(),
            buffered_calls: totals.calls,
            counters: core.counters(),
        }
    }

    /// Moves the breaker by hand (an operator's FORCED_OPEN, a DISABLED for
    /// maintenance). Refuses transitions the state machine does not allow.
    pub fn transition_to(&self, to: State) -> Result<()> {
        let mut core = lock(&self.shared.core);
        match core.transition(to, Instant::now()) {
            Ok(change) => {
                self.publish(&core, Some(change));
                Ok(())
            }
            Err((from, to)) => Err(Error::IllegalTransition {
                breaker: self.shared.name.clone(),
                from,
                to,
            }),
        }
    }

    /// Probe permits a HALF_OPEN breaker may still hand out (`None` in
    /// any other state).
    pub fn probes_left(&self) -> Option<u32> {
        lock(&self.shared.core).probes_left()
    }

    /// Transitions since the breaker was built, as (from, to, count),
    /// for every pair that happened at least once.
    pub fn transition_counts(&self) -> Vec<(State, State, u64)> {
        let mut counts = Vec::new();
        for from in State::ALL {
            for to in State::ALL {
                let n = self.shared.transitions[from as usize][to as usize].load(Ordering::Relaxed);
                if n > 0 {
                    counts.push((from, to, n));
                }
            }
        }
        counts
    }

    /// The most recent state changes, oldest first.
    pub fn state_changes(&self) -> Vec<StateChange> {
        lock(&self.shared.changes).iter().copied().collect()
    }

    /// Makes a state change visible: to the lock-free fast path, to
    /// tracing, and to [`state_changes`](Self::state_changes).
    fn publish(&self, core: &BreakerCore, change: Option<StateChange>) {
        let Some(change) = change else { return };
        let shared = &self.shared;
        shared.fast_path.store(
            fast_path_word(
                core.generation(),
                matches!(core.state(), State::Closed | State::Disabled),
            ),
            Ordering::Release,
        );
        tracing::info!(
            breaker = %shared.name,
            from = %change.from,
            to = %change.to,
            counters = ?core.counters(),
            "circuit breaker state change"
        );
        shared.transitions[change.from as usize][change.to as usize]
            .fetch_add(1, Ordering::Relaxed);
        let mut changes = lock(&shared.changes);
        if changes.len() == KEPT_CHANGES {
            changes.pop_front();
        }
        changes.push_back(change);
    }

    fn settle(&self, generation: u64, outcome: Outcome, started: Option<Instant>) {
        let shared = &self.shared;
        let finished = started.map(|_| Instant::now());
        let elapsed: Option<Duration> = started.zip(finished).map(|(s, f)| f.duration_since(s));
        let mut core = lock(&shared.core);
        let change = core.on_result(generation, outcome, elapsed, || {
            finished.unwrap_or_else(Instant::now)
        });
        self.publish(&core, change);
    }
}

/// Permission to make one call. Report how it ended with
/// [`success`](Self::success), [`failure`](Self::failure),
/// [`record`](Self::record) or [`record_code`](Self::record_code).
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    generation: u64,
    started: Option<Instant>,
    settled: bool,
}

impl Permit {
    pub fn record(mut self, outcome: Outcome) {
        self.settled = true;
        self.breaker.settle(self.generation, outcome, self.started);
    }

    pub fn success(self) {
        self.record(Outcome::Success);
    }

    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// Classifies a gRPC status code with the breaker's classifier.
    pub fn record_code(self, code: Code) {
        let outcome = self.breaker.shared.classifier.classify(code);
        self.record(outcome);
    }
}

impl Drop for Permit {
    /// An abandoned call says nothing about the backend, but a half-open
    /// probe slot must come back.
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(self.generation, Outcome::Ignored, None);
        }
    }
}

impl StatusSink for Permit {
    fn finish(self, code: Code, _message: &str) {
        self.record_code(code);
    }
}
