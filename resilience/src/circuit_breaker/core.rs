//! The breaker's state machine: pure, single-threaded, time passed in.
//!
//! Every method takes the current time from its caller, so a test can
//! walk the breaker through minutes of outage in microseconds, and the
//! shared [`super::CircuitBreaker`] decides when reading the clock is
//! worth its cost.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{BreakerConfig, SlidingWindow};
use super::window::{CountWindow, TimeWindow, Totals};
use crate::classify::Outcome;
use crate::error::Result;

/// The breaker's states, as Resilience4j names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are counted in the sliding window.
    Closed,
    /// Calls are refused until the wait is over.
    Open,
    /// A fixed number of probe calls decide between Closed and Open.
    HalfOpen,
    /// Calls always flow; nothing is counted.
    Disabled,
    /// Calls are always refused, until an operator says otherwise.
    ForcedOpen,
}

impl State {
    /// Every state, in declaration order (`State as usize` indexes it).
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::Disabled,
        State::ForcedOpen,
    ];
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
            State::Disabled => "DISABLED",
            State::ForcedOpen => "FORCED_OPEN",
        })
    }
}

/// A transition that happened, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub from: State,
    pub to: State,
    pub at: Instant,
}

/// Calls counted since the breaker was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub successful: u64,
    pub failed: u64,
    pub slow: u64,
    pub ignored: u64,
    /// Calls refused without reaching the backend.
    pub not_permitted: u64,
}

#[derive(Clone, Debug)]
enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

#[derive(Clone, Debug)]
enum Phase {
    Closed(Window),
    Open {
        until: Instant,
    },
    HalfOpen {
        since: Instant,
        permits_left: u32,
        window: CountWindow,
    },
    Disabled,
    ForcedOpen,
}

/// The state machine.
#[derive(Clone, Debug)]
pub struct BreakerCore {
    config: BreakerConfig,
    phase: Phase,
    /// Bumped by every transition. A permit carries the generation it was
    /// issued in, so a result that arrives after a transition is not
    /// counted against the new state's window.
    generation: u64,
    /// Consecutive openings without closing in between; grows the wait.
    openings: u32,
    counters: Counters,
}

impl BreakerCore {
    pub fn new(config: BreakerConfig, now: Instant) -> Result<Self> {
        config.validate()?;
        let window = Self::fresh_window(&config, now);
        Ok(Self {
            config,
            phase: Phase::Closed(window),
            generation: 0,
            openings: 0,
            counters: Counters::default(),
        })
    }

    fn fresh_window(config: &BreakerConfig, now: Instant) -> Window {
        match config.sliding_window {
            SlidingWindow::Count(n) => Window::Count(CountWindow::new(n)),
            SlidingWindow::Time(seconds) => Window::Time(TimeWindow::new(seconds, now)),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Closed(_) => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
            Phase::Disabled => State::Disabled,
            Phase::ForcedOpen => State::ForcedOpen,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Probe permits left while HALF_OPEN.
    pub fn probes_left(&self) -> Option<u32> {
        match self.phase {
            Phase::HalfOpen { permits_left, .. } => Some(permits_left),
            _ => None,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The current window's totals (closed or half-open; empty otherwise).
    pub fn totals(&mut self, now: Instant) -> Totals {
        match &mut self.phase {
            Phase::Closed(Window::Count(window)) => window.totals(),
            Phase::Closed(Window::Time(window)) => window.totals(now),
            Phase::HalfOpen { window, .. } => window.totals(),
            _ => Totals::default(),
        }
    }

    /// How long the next opening will last: the wait, grown by the
    /// multiplier once per consecutive re-opening.
    fn open_wait(&self) -> Duration {
        let base = self.config.wait_duration_in_open_state.as_secs_f64();
        let grown = base
            * self
                .config
                .wait_multiplier
                .powi(self.openings.min(64) as i32);
        Duration::from_secs_f64(
            grown.min(self.config.max_wait_duration_in_open_state.as_secs_f64()),
        )
    }

    fn enter(&mut self, to: State, now: Instant) -> StateChange {
        let from = self.state();
        self.phase = match to {
            State::Closed => {
                self.openings = 0;
                Phase::Closed(Self::fresh_window(&self.config, now))
            }
            State::Open => {
                let until = now + self.open_wait();
                self.openings = self.openings.saturating_add(1);
                Phase::Open { until }
            }
            State::HalfOpen => Phase::HalfOpen {
                since: now,
                permits_left: self.config.permitted_calls_in_half_open_state,
                window: CountWindow::new(self.config.permitted_calls_in_half_open_state),
            },
            State::Disabled => Phase::Disabled,
            State::ForcedOpen => Phase::ForcedOpen,
        };
        self.generation += 1;
        StateChange { from, to, at: now }
    }

    /// Asks to make a call now. `Ok` carries the generation to hand back
    /// with the result; `Err` the state that refused it.
    pub fn try_acquire(&mut self, now: Instant) -> (Result<u64, State>, Option<StateChange>) {
        let mut change = None;
        if let Phase::Open { until } = self.phase {
            if now < until {
                self.counters.not_permitted += 1;
                return (Err(State::Open), None);
            }
            // The wait is over: the first caller after it becomes a probe.
            change = Some(self.enter(State::HalfOpen, now));
        }
        if let Phase::HalfOpen { since, .. } = self.phase {
            let stuck = self
                .config
                .max_wait_duration_in_half_open_state
                .is_some_and(|max| now.duration_since(since) >= max);
            if stuck {
                // Probes that never finish must not hold the breaker half
                // open forever.
                let reopened = self.enter(State::Open, now);
                self.counters.not_permitted += 1;
                return (Err(State::Open), Some(reopened));
            }
        }
        let verdict = match &mut self.phase {
            Phase::Closed(_) | Phase::Disabled => Ok(self.generation),
            Phase::HalfOpen { permits_left, .. } if *permits_left > 0 => {
                *permits_left -= 1;
                Ok(self.generation)
            }
            Phase::HalfOpen { .. } => Err(State::HalfOpen),
            Phase::Open { .. } => Err(State::Open),
            Phase::ForcedOpen => Err(State::ForcedOpen),
        };
        if verdict.is_err() {
            self.counters.not_permitted += 1;
        }
        (verdict, change)
    }

    /// Records how a permitted call ended. `elapsed` is its duration when
    /// slow calls are tracked; `now` is read only if a transition needs it.
    pub fn on_result(
        &mut self,
        generation: u64,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: impl Fn() -> Instant,
    ) -> Option<StateChange> {
        // Resilience4j: a DISABLED breaker records no metrics at all.
        if matches!(self.phase, Phase::Disabled) {
            return None;
        }
        let slow = self.config.slow_call_rate_threshold.is_some()
            && elapsed.is_some_and(|e| e > self.config.slow_call_duration_threshold);
        match outcome {
            Outcome::Success => self.counters.successful += 1,
            Outcome::Failure => self.counters.failed += 1,
            Outcome::Ignored => self.counters.ignored += 1,
        }
        if slow {
            self.counters.slow += 1;
        }
        if generation != self.generation {
            return None;
        }
        let failed = outcome == Outcome::Failure;
        match &mut self.phase {
            Phase::HalfOpen { permits_left, .. } if outcome == Outcome::Ignored => {
                // An ignored probe says nothing: give its slot to another.
                *permits_left += 1;
                None
            }
            _ if outcome == Outcome::Ignored => None,
            Phase::Closed(window) => {
                let (totals, minimum, at) = match window {
                    Window::Count(w) => (
                        w.record(failed, slow),
                        self.config.minimum_number_of_calls.min(w.capacity()),
                        None,
                    ),
                    Window::Time(w) => {
                        let at = now();
                        (
                            w.record(failed, slow, at),
                            self.config.minimum_number_of_calls,
                            Some(at),
                        )
                    }
                };
                if totals.calls >= minimum && self.over_threshold(totals) {
                    return Some(self.enter(State::Open, at.unwrap_or_else(&now)));
                }
                None
            }
            Phase::HalfOpen { window, .. } => {
                let totals = window.record(failed, slow);
                if totals.calls < self.config.permitted_calls_in_half_open_state {
                    return None;
                }
                let to = if self.over_threshold(totals) {
                    State::Open
                } else {
                    State::Closed
                };
                Some(self.enter(to, now()))
            }
            Phase::Open { .. } | Phase::Disabled | Phase::ForcedOpen => None,
        }
    }

    /// Thresholds trip at equality: 50 % failures trips a 50 % threshold.
    fn over_threshold(&self, totals: Totals) -> bool {
        totals.failure_rate() >= self.config.failure_rate_threshold
            || self
                .config
                .slow_call_rate_threshold
                .is_some_and(|t| totals.slow_rate() >= t)
    }

    /// A manual transition. Every state may be entered from every other,
    /// except HALF_OPEN from CLOSED: probing a backend nobody saw fail
    /// makes no sense (Resilience4j refuses it too).
    pub fn transition(&mut self, to: State, now: Instant) -> Result<StateChange, (State, State)> {
        let from = self.state();
        if from == State::Closed && to == State::HalfOpen {
            return Err((from, to));
        }
        Ok(self.enter(to, now))
    }
}
