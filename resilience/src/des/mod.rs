//! A discrete-event simulation engine: a seeded event queue whose clock jumps.
//!
//! Episode: 25, "Queue Theory in Practice" (also 8, 7)
//! Pattern: simulation / discrete-event engine
//! Try it:  cargo run -- demo retry-storm
//! Test it: cargo test -p resilience des
//!
//! A queue, a retry storm or a server farm changes state only at instants:
//! a request arrives, a service ends, a timer fires. Between two instants
//! nothing happens, so the simulation need not wait for it — it keeps the
//! pending events in time order, pops the earliest, jumps the clock to it,
//! and lets the model react by scheduling more. A minute of overload takes
//! milliseconds, and with one seed for every random draw a run replays to
//! the event.
//!
//! The one thing to watch for is ties. Two events at the same instant
//! (fifty clients on the same beat, a service that ends as the next call
//! arrives) must come out in a fixed order, or the run depends on the
//! heap's internals. Here ties break by insertion order: first scheduled,
//! first delivered. The event type needs no ordering of its own.
//!
//! Bounds: the queue holds what the model schedules and nothing else; a
//! model that schedules one event per event handled keeps it constant.
//! The clock never runs backwards: an event scheduled in the past is
//! delivered now, after those already due.
//!
//! Simplified: one thread, one queue, no cancellation (models mark a
//! stale timer and ignore it when it fires, which is also how production
//! timer wheels often do it). Real engines (SimPy, ns-3, OMNeT++) add
//! processes, cancellation and parallel logical processes.
//!
//! ```
//! use std::time::Duration;
//! use resilience::des::Simulation;
//!
//! #[derive(Debug, PartialEq)]
//! enum Event { Tick(u32) }
//!
//! let mut sim = Simulation::new(7);
//! sim.schedule_in(Duration::from_secs(2), Event::Tick(2));
//! sim.schedule_in(Duration::from_secs(1), Event::Tick(1));
//! let mut seen = Vec::new();
//! while let Some((now, Event::Tick(n))) = sim.next_event() {
//!     seen.push((now.as_secs(), n));
//!     if n < 3 {
//!         sim.schedule_in(Duration::from_secs(5), Event::Tick(n + 10));
//!     }
//! }
//! assert_eq!(seen, [(1, 1), (2, 2), (6, 11), (7, 12)]);
//! assert_eq!(sim.now(), Duration::from_secs(7));
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

/// A pending event: its instant, and the sequence number that breaks ties.
struct Scheduled<E> {
    at: Duration,
    sequence: u64,
    event: E,
}

impl<E> Scheduled<E> {
    fn key(&self) -> (Duration, u64) {
        (self.at, self.sequence)
    }
}

// Ordered by (time, sequence) only, so any event type works; sequence
// numbers are unique, so no two entries compare equal.
impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The engine: a clock, the pending events in (time, insertion) order,
/// and one seeded random generator for the model's draws.
pub struct Simulation<E> {
    now: Duration,
    sequence: u64,
    pending: BinaryHeap<Reverse<Scheduled<E>>>,
    rng: SmallRng,
    delivered: u64,
}

impl<E> Simulation<E> {
    /// An empty simulation at time zero whose generator is seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            now: Duration::ZERO,
            sequence: 0,
            pending: BinaryHeap::new(),
            rng: SmallRng::seed_from_u64(seed),
            delivered: 0,
        }
    }

    /// The simulated time: the instant of the last event delivered.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Schedules `event` at the absolute instant `at`. An instant already
    /// past is delivered now (after what is already due): the clock never
    /// runs backwards.
    pub fn schedule_at(&mut self, at: Duration, event: E) {
        self.sequence += 1;
        self.pending.push(Reverse(Scheduled {
            at: at.max(self.now),
            sequence: self.sequence,
            event,
        }));
    }

    /// Schedules `event` after `delay` from now.
    pub fn schedule_in(&mut self, delay: Duration, event: E) {
        self.schedule_at(self.now.saturating_add(delay), event);
    }

    /// Pops the earliest pending event, jumps the clock to its instant and
    /// returns both; `None` when nothing is pending.
    pub fn next_event(&mut self) -> Option<(Duration, E)> {
        let Reverse(next) = self.pending.pop()?;
        self.now = next.at;
        self.delivered += 1;
        Some((next.at, next.event))
    }

    /// Like [`Simulation::next_event`], but only for events due at or
    /// before `horizon`; later ones stay pending. How a model runs "for
    /// ten simulated minutes" when its arrivals never stop.
    pub fn next_event_until(&mut self, horizon: Duration) -> Option<(Duration, E)> {
        match self.peek_time() {
            Some(at) if at <= horizon => self.next_event(),
            _ => None,
        }
    }

    /// When the next event is due, if any.
    pub fn peek_time(&self) -> Option<Duration> {
        self.pending.peek().map(|Reverse(next)| next.at)
    }

    /// How many events are pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many events have been delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The run's seeded generator. Draw every random number of the model
    /// from here (or from generators seeded from here) and a seed replays
    /// the run exactly.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

impl<E> std::fmt::Debug for Simulation<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("now", &self.now)
            .field("pending", &self.pending.len())
            .field("delivered", &self.delivered)
            .finish()
    }
}

#[cfg(test)]
mod tests;
