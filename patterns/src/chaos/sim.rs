//! The simulated target: a client calling `replicas` copies of a service
//! over a network that the experiment can break, on the discrete-event
//! engine ([`resilience::des`]).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rand::Rng;
use resilience::des::Simulation;
use serde::Deserialize;

use super::core::{Action, ChaosReport, Decision, Runner, WindowMetrics};
use super::definition::{Experiment, Fault, check_rate, check_target};
use super::network::Network;
use crate::error::Result;

/// The most replicas the simulated service may have.
pub const MAX_REPLICAS: usize = 9;
/// The highest request rate accepted, per second.
pub const MAX_RATE: f64 = 5_000.0;
/// Mean service time of a replica (exponential).
const SERVICE_MEAN: f64 = 0.002;

/// The simulated system under test.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSystem {
    /// Copies of the service: hosts `n1` … `nR`.
    pub replicas: usize,
    /// Requests per second from `client` (Poisson).
    pub rate: f64,
    /// Whether the client retries a failed attempt on the next replica.
    /// Without it (the broken twin) a request lives and dies with one host.
    pub failover: bool,
    /// The client abandons an attempt after this long.
    pub attempt_timeout_ms: u64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Send,
    Arrive {
        request: u64,
        attempt: u32,
        replica: usize,
    },
    Reply {
        request: u64,
        attempt: u32,
        ok: bool,
    },
    AttemptFailed {
        request: u64,
        attempt: u32,
    },
}

#[derive(Debug)]
struct Request {
    started: Duration,
    first_replica: usize,
    attempt: u32,
}

/// The running simulation and the faults applied to it.
#[derive(Debug)]
pub struct SimulatedService {
    system: SimulatedSystem,
    sim: Simulation<Event>,
    requests: HashMap<u64, Request>,
    next_request: u64,
    window_end: Duration,
    finished: WindowMetrics,
    network: Network,
}

impl SimulatedService {
    pub fn new(system: &SimulatedSystem) -> Result<Self> {
        check_target(
            "simulation",
            (system.replicas, MAX_REPLICAS),
            (system.rate, MAX_RATE),
            system.attempt_timeout_ms,
        )?;
        let mut sim = Simulation::new(system.seed);
        sim.schedule_at(Duration::ZERO, Event::Send);
        Ok(Self {
            system: system.clone(),
            sim,
            requests: HashMap::new(),
            next_request: 0,
            window_end: Duration::ZERO,
            finished: WindowMetrics::default(),
            network: Network::default(),
        })
    }

    /// The hosts faults may name: `client`, `n1` … `nR`.
    pub fn hosts(&self) -> BTreeSet<String> {
        std::iter::once("client".to_string())
            .chain((1..=self.system.replicas).map(|i| format!("n{i}")))
            .collect()
    }

    /// Faults in force, as descriptions.
    pub fn active_faults(&self) -> Vec<String> {
        self.network.active_faults()
    }

    /// Starts (`on`) or ends a fault.
    pub fn apply(&mut self, fault: &Fault, on: bool) {
        self.network.apply(fault, on);
    }

    fn replica(&self, index: usize) -> String {
        format!("n{}", index + 1)
    }

    fn start_attempt(&mut self, id: u64, now: Duration) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.attempt += 1;
        let attempt = request.attempt;
        let replica = (request.first_replica + attempt as usize - 1) % self.system.replicas;
        let host = self.replica(replica);
        let timeout = Duration::from_millis(self.system.attempt_timeout_ms);
        self.sim.schedule_at(
            now + timeout,
            Event::AttemptFailed {
                request: id,
                attempt,
            },
        );
        if let Some(delay) = self.network.deliver("client", &host, self.sim.rng()) {
            if self.network.is_crashed(&host) {
                // Nobody listens: the host's kernel (or the missing route)
                // answers with a reset, so the client learns within a round trip.
                self.sim.schedule_at(
                    now + 2 * delay,
                    Event::AttemptFailed {
                        request: id,
                        attempt,
                    },
                );
            } else {
                self.sim.schedule_at(
                    now + delay,
                    Event::Arrive {
                        request: id,
                        attempt,
                        replica,
                    },
                );
            }
        }
    }

    fn finish(&mut self, id: u64, now: Duration, ok: bool) {
        if let Some(request) = self.requests.remove(&id) {
            self.finished.finished += 1;
            self.finished.succeeded += u64::from(ok);
            self.finished
                .latencies
                .push(now.saturating_sub(request.started));
        }
    }

    /// Runs the system for one window and returns what finished in it.
    pub fn run_window(&mut self, length: Duration) -> WindowMetrics {
        self.window_end += length;
        while let Some((now, event)) = self.sim.next_event_until(self.window_end) {
            match event {
                Event::Send => {
                    let gap =
                        -self.sim.rng().random_range(f64::EPSILON..1.0).ln() / self.system.rate;
                    self.sim
                        .schedule_in(Duration::from_secs_f64(gap), Event::Send);
                    let id = self.next_request;
                    self.next_request += 1;
                    self.requests.insert(
                        id,
                        Request {
                            started: now,
                            first_replica: (id % self.system.replicas as u64) as usize,
                            attempt: 0,
                        },
                    );
                    self.start_attempt(id, now);
                }
                Event::Arrive {
                    request,
                    attempt,
                    replica,
                } => {
                    let host = self.replica(replica);
                    // A host that crashed while the request was in flight
                    // never answers; the client's timeout notices.
                    if self.network.is_crashed(&host) {
                        continue;
                    }
                    let service =
                        -self.sim.rng().random_range(f64::EPSILON..1.0).ln() * SERVICE_MEAN;
                    let error_rate = self.network.error_rate(&host);
                    let ok = !(error_rate > 0.0 && self.sim.rng().random_bool(error_rate));
                    if let Some(delay) = self.network.deliver(&host, "client", self.sim.rng()) {
                        let at = now + Duration::from_secs_f64(service) + delay;
                        self.sim.schedule_at(
                            at,
                            Event::Reply {
                                request,
                                attempt,
                                ok,
                            },
                        );
                    }
                }
                Event::Reply {
                    request,
                    attempt,
                    ok: true,
                } => {
                    if self
                        .requests
                        .get(&request)
                        .is_some_and(|r| r.attempt == attempt)
                    {
                        self.finish(request, now, true);
                    }
                }
                // An error answer fails the attempt at once, like a reset.
                Event::Reply {
                    request,
                    attempt,
                    ok: false,
                }
                | Event::AttemptFailed { request, attempt } => {
                    let Some(state) = self.requests.get(&request) else {
                        continue;
                    };
                    if state.attempt != attempt {
                        continue;
                    }
                    if self.system.failover && (attempt as usize) < self.system.replicas {
                        self.start_attempt(request, now);
                    } else {
                        self.finish(request, now, false);
                    }
                }
            }
        }
        std::mem::take(&mut self.finished)
    }

    fn act(&mut self, experiment: &Experiment, actions: &[Action]) {
        for action in actions {
            match *action {
                Action::Inject(i) => self.apply(&experiment.faults[i].fault, true),
                Action::Heal(i) => self.apply(&experiment.faults[i].fault, false),
            }
        }
    }

    /// Runs `experiment` against this system: validate, measure, inject,
    /// verify, abort if the blast radius is exceeded.
    pub fn run(&mut self, experiment: &Experiment) -> Result<ChaosReport> {
        experiment.validate(&self.hosts())?;
        check_rate("simulation.rate", self.system.rate, experiment.window())?;
        let mut runner = Runner::new(experiment.clone());
        loop {
            let metrics = self.run_window(experiment.window());
            match runner.end_window(&metrics) {
                Decision::Continue(actions) => self.act(experiment, &actions),
                Decision::Stop(actions, report) => {
                    self.act(experiment, &actions);
                    return Ok(report);
                }
            }
        }
    }
}

/// Runs `experiment` against a fresh simulated `system`.
pub fn run_simulated(experiment: &Experiment, system: &SimulatedSystem) -> Result<ChaosReport> {
    SimulatedService::new(system)?.run(experiment)
}
