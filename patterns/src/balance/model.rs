//! The experiment as a queueing model: the same policies, the same
//! scripts and arrivals, with no runtime at all — what the demo runs, so
//! that `dslab demo load-balancing` is instant and deterministic without
//! any test tooling.
//!
//! Each backend is a FIFO queue in front of `capacity` servers (Flaky's
//! semaphore is first come, first served). For FIFO the fate of a call is
//! settled when it arrives — Lindley's recursion: it starts when the
//! earliest server frees up (or at once), and ends `delay` later, where
//! `delay` is drawn from the backend's own [`Behaviour`]. So the model
//! walks the arrivals in order, and before each pick retires the calls
//! that ended by then: completed ones report their round trip to the
//! endpoint's [`Load`], as a response would; calls past their deadline
//! just end, as a cancelled call does. The policy then sees exactly what
//! the live balancer would have seen at that instant.
//!
//! Simplified: a call cancelled while queued takes no server time, and a
//! call cancelled in service frees its server at the deadline — as Flaky
//! does when the client gives up. No network delay is modelled.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use resilience::flaky::Behaviour;
use tokio::time::Instant;

use super::experiment::{Outcome, Scenario};
use super::{InFlight, Load, LoadConfig, Pick, Policy};
use crate::{Error, Result};

struct Backend {
    behaviour: Behaviour,
    rng: SmallRng,
    calls: u64,
    /// When each server is next free.
    servers: BinaryHeap<Reverse<Duration>>,
    /// Calls not yet ended, by (end, arrival number): whether each will
    /// have been answered, and its outstanding-request guard.
    in_flight: BTreeMap<(Duration, usize), (bool, InFlight)>,
}

impl Backend {
    /// Ends every call that ended by `now`, oldest first.
    fn retire(&mut self, now: Duration, t0: Instant) {
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((end, _), (answered, guard)) = entry.remove_entry();
            if answered {
                guard.complete(t0 + end);
            }
        }
    }

    /// Admits a call arriving at `at`: returns its latency and whether it
    /// was answered before `deadline`.
    fn admit(&mut self, at: Duration, deadline: Duration) -> (Duration, bool) {
        let decision = self.behaviour.decide(self.calls, at, &mut self.rng);
        self.calls += 1;
        let Some(Reverse(free)) = self.servers.pop() else {
            return (deadline, false);
        };
        let start = at.max(free);
        let give_up = at + deadline;
        let (end, answered, busy_until) = if start >= give_up {
            (give_up, false, free)
        } else if start + decision.delay <= give_up {
            let end = start + decision.delay;
            (end, decision.outcome.is_ok(), end)
        } else {
            (give_up, false, give_up)
        };
        self.servers.push(Reverse(busy_until));
        (end - at, answered)
    }
}

/// Runs `scenario` through `policy` in the model; weights as
/// [`Scenario::weights`].
pub fn simulate(scenario: &Scenario, mut policy: Policy) -> Result<Outcome> {
    scenario.validate()?;
    let t0 = Instant::now();
    let config = LoadConfig::default();
    let loads: Vec<Load> = scenario
        .weights()
        .into_iter()
        .map(|weight| Load::new(weight, config, t0))
        .collect();
    let mut backends: Vec<Backend> = (0..scenario.backends)
        .map(|i| {
            let behaviour = scenario.behaviour(i)?;
            Ok(Backend {
                rng: SmallRng::seed_from_u64(behaviour.seed),
                behaviour,
                calls: 0,
                servers: (0..scenario.capacity)
                    .map(|_| Reverse(Duration::ZERO))
                    .collect(),
                in_flight: BTreeMap::new(),
            })
        })
        .collect::<Result<_>>()?;
    let ready: Vec<usize> = (0..backends.len()).collect();
    let mut latencies = Vec::with_capacity(scenario.requests);
    let mut failed = 0;
    for (n, at) in scenario.arrivals().into_iter().enumerate() {
        for backend in &mut backends {
            backend.retire(at, t0);
        }
        let chosen = policy
            .pick(&loads, &ready, t0 + at)
            .ok_or(Error::NoEndpoints)?;
        let backend = &mut backends[chosen];
        let guard = loads[chosen].start(t0 + at);
        let (latency, answered) = backend.admit(at, scenario.deadline);
        backend
            .in_flight
            .insert((at + latency, n), (answered, guard));
        latencies.push(latency);
        failed += u64::from(!answered);
    }
    latencies.sort_unstable();
    Ok(Outcome {
        balancer: policy.name(),
        latencies,
        failed,
        calls: backends.iter().map(|b| b.calls).collect(),
        slow_node: scenario.slow_node(),
    })
}
