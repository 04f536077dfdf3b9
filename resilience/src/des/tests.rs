//! The engine's contract: time order, ties in insertion order, a clock
//! that only moves forward, and a seed that replays.

use std::time::Duration;

use rand::Rng;

use super::Simulation;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Events come out by time, whatever order they went in.
#[test]
fn des_delivers_events_in_time_order() {
    let mut sim = Simulation::new(1);
    for at in [50, 10, 40, 20, 30] {
        sim.schedule_at(ms(at), at);
    }
    let order: Vec<u64> = std::iter::from_fn(|| sim.next_event().map(|(_, e)| e)).collect();
    assert_eq!(order, [10, 20, 30, 40, 50]);
    assert_eq!(sim.now(), ms(50));
    assert_eq!(sim.delivered(), 5);
}

/// Simultaneous events come out in the order they were scheduled, even
/// when the event values would sort the other way.
#[test]
fn des_breaks_ties_by_insertion_order() {
    let mut sim = Simulation::new(1);
    for label in ["c", "a", "b"] {
        sim.schedule_at(ms(5), label);
    }
    sim.schedule_at(ms(1), "first");
    let order: Vec<&str> = std::iter::from_fn(|| sim.next_event().map(|(_, e)| e)).collect();
    assert_eq!(order, ["first", "c", "a", "b"]);
}

/// An event scheduled in the past is delivered now, behind what is
/// already due: the clock never runs backwards.
#[test]
fn des_clock_never_runs_backwards() {
    let mut sim = Simulation::new(1);
    sim.schedule_at(ms(10), "due");
    sim.schedule_at(ms(10), "also due");
    assert_eq!(sim.next_event(), Some((ms(10), "due")));
    sim.schedule_at(ms(3), "late");
    sim.schedule_in(Duration::MAX, "never overflows");
    assert_eq!(sim.next_event(), Some((ms(10), "also due")));
    assert_eq!(sim.next_event(), Some((ms(10), "late")));
    assert_eq!(sim.next_event().map(|(_, e)| e), Some("never overflows"));
    assert_eq!(sim.next_event(), None);
}

/// A horizon stops the run without losing the events beyond it.
#[test]
fn des_horizon_leaves_later_events_pending() {
    let mut sim = Simulation::new(1);
    sim.schedule_at(ms(1), 1);
    sim.schedule_at(ms(2), 2);
    sim.schedule_at(ms(3), 3);
    assert_eq!(sim.next_event_until(ms(2)), Some((ms(1), 1)));
    assert_eq!(sim.next_event_until(ms(2)), Some((ms(2), 2)));
    assert_eq!(sim.next_event_until(ms(2)), None);
    assert_eq!(sim.pending(), 1);
    assert_eq!(sim.peek_time(), Some(ms(3)));
}

/// The same seed draws the same numbers; another seed does not.
#[test]
fn des_same_seed_replays_the_same_draws() {
    let draws = |seed| {
        let mut sim: Simulation<()> = Simulation::new(seed);
        (0..8)
            .map(|_| sim.rng().random::<u64>())
            .collect::<Vec<_>>()
    };
    assert_eq!(draws(42), draws(42));
    assert_ne!(draws(42), draws(43));
}
