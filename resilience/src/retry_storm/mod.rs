//! The retry storm: how retries turn a short outage into a long one.
//!
//! Episode: 8, "Cascade Failures & Retry Storms" (also 40)
//! Pattern: resilience / retry storm, work amplification
//! Try it:  cargo run -- demo retry-storm
//! Test it: cargo test -p resilience retry_storm
//!
//! Fifty clients send a request every 200 ms, all on the same beat, to a
//! backend that serves 10 calls at once (20 ms each) and queues 10 more.
//! For one second the backend is down. Every failed call is retried — and
//! the question is what the retries do to the recovery. Without jitter the
//! clients' retries stay in lockstep: every backoff is a multiple of the
//! same base, so retries from different rounds land on the same instants
//! as a wall of calls that overflows the queue; the overflow is refused,
//! and the refused calls retry together again. With jitter the same
//! retries spread out and fit. With a budget they also stop being a
//! multiple of the traffic.
//!
//! One honest caveat the simulation also shows: jitter is not free during
//! the outage itself. Full jitter halves the average wait, so while every
//! attempt fails fast, jittered clients spend their attempts sooner; with
//! a roomy backend and a long outage it can even do slightly more work in
//! total. Its win is the recovery — no waves — which is where storms are.
//!
//! This is a discrete-event simulation, not a network test: every
//! decision comes from the same pieces the tower layers use — the retry
//! policy's [`crate::retry::RetryPolicy::next_step`], its backoff and
//! budget, and the backend's [`crate::flaky::Behaviour`] — while the clock
//! jumps from event to event on the crate's engine, [`crate::des`]. A
//! minute of storm takes milliseconds, and a seed replays it exactly; the CLI demo runs it without any test tooling.
//! The layers themselves are tested against a real `Flaky` over the
//! simulated network (`cargo test -p resilience full_stack`).

mod demo;

pub use demo::retry_storm_demo;

use std::collections::VecDeque;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tonic::Code;

use crate::des::Simulation;
use crate::error::Result;
use crate::flaky::Behaviour;
use crate::flaky::proto::{Latency, Outage, Script};
use crate::retry::{
    Backoff, BudgetConfig, Idempotency, Jitter, NextStep, RetryBudget, RetryPolicy,
};

/// The retry policy the storm compares: exponential backoff from 100 ms,
/// doubling to 2 s, up to 10 attempts, retrying both UNAVAILABLE (down)
/// and RESOURCE_EXHAUSTED (full), with the given jitter and budget.
pub fn storm_policy(jitter: Jitter, budget: Option<BudgetConfig>) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(2),
            jitter,
        },
        retryable_codes: vec![Code::Unavailable, Code::ResourceExhausted],
        budget,
        ..RetryPolicy::new(Idempotency::AllMethods)
    }
}

/// gRPC's suggested budget: 10 tokens, ratio 0.1.
pub const STORM_BUDGET: BudgetConfig = BudgetConfig {
    max_tokens: 10.0,
    token_ratio: 0.1,
};

/// The storm's setting.
#[derive(Clone, Debug, PartialEq)]
pub struct StormScenario {
    pub clients: usize,
    /// Each client sends a new request this often, all clients in step.
    pub request_interval: Duration,
    /// Clients send new requests for this long.
    pub send_for: Duration,
    /// The backend: capacity, queue, service time, outage windows.
    pub backend: Behaviour,
    pub network_latency: Duration,
    /// Each request's overall deadline.
    pub deadline: Duration,
    pub seed: u64,
}

impl StormScenario {
    /// Episode 8's storm: 50 clients, 250 requests/s on average against a
    /// backend that serves 500/s, down from 1 s to 2 s.
    pub fn episode_8(seed: u64) -> Self {
        let backend = Behaviour::from_script(&Script {
            capacity: 10,
            queue: 10,
            latency: Some(Latency {
                base_micros: 18_000,
                jitter_micros: 4_000,
                distribution: 0,
            }),
            outages: vec![Outage {
                start_millis: 1_000,
                end_millis: 2_000,
                code: 0,
            }],
            seed,
            ..Script::default()
        })
        .expect("the episode's script is valid");
        Self {
            clients: 50,
            request_interval: Duration::from_millis(200),
            send_for: Duration::from_secs(6),
            backend,
            network_latency: Duration::from_millis(1),
            deadline: Duration::from_secs(30),
            seed,
        }
    }
}

/// What the storm did.
#[derive(Clone, Debug, PartialEq)]
pub struct StormReport {
    /// Requests the clients made.
    pub requests: u64,
    /// Calls that reached the backend (first attempts and retries).
    pub attempts: u64,
    pub succeeded: u64,
    /// Calls the backend refused because it was full.
    pub refused_full: u64,
    /// Retries a budget did not allow.
    pub budget_denied: u64,
    /// When the last request finished (succeeded or gave up).
    pub completion: Duration,
    /// Calls reaching the backend per 100 ms.
    pub arrivals: Vec<u32>,
}

impl StormReport {
    /// Calls per request: 1.0 is no retry at all.
    pub fn amplification(&self) -> f64 {
        self.attempts as f64 / self.requests.max(1) as f64
    }

    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.requests.max(1) as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A client starts a new request.
    Send { client: usize },
    /// An attempt of a request reaches the backend.
    Arrive { request: usize },
    /// The backend finishes serving a request's attempt.
    Served { request: usize, code: i32 },
    /// The backend's answer reaches the client.
    Answer { request: usize, code: i32 },
    /// A client's backoff timer fires.
    Retry { request: usize },
}

#[derive(Debug)]
struct Request {
    client: usize,
    attempt: u32,
    previous_delay: Duration,
    started: u64,
}

const BUCKET_NANOS: u64 = 100_000_000;

/// Runs the scenario with every client using `policy`.
pub fn simulate(scenario: &StormScenario, policy: &RetryPolicy) -> Result<StormReport> {
    policy.validate()?;
    let nanos = |d: Duration| d.as_nanos() as u64;
    let latency = nanos(scenario.network_latency);
    let mut budgets: Vec<Option<RetryBudget>> = (0..scenario.clients)
        .map(|_| {
            policy
                .budget
                .map(|b| RetryBudget::new(b.max_tokens, b.token_ratio))
                .transpose()
        })
        .collect::<Result<_>>()?;
    let mut rngs: Vec<SmallRng> = (0..scenario.clients)
        .map(|c| {
            SmallRng::seed_from_u64(scenario.seed.wrapping_mul(1_000_003).wrapping_add(c as u64))
        })
        .collect();
    // The engine's generator is the backend's: its seed is the script's,
    // so the backend draws the same latencies as a real `Flaky` would.
    let mut sim: Simulation<Event> = Simulation::new(scenario.backend.seed);
    let at = Duration::from_nanos;
    let rounds = (nanos(scenario.send_for) / nanos(scenario.request_interval).max(1)).max(1);
    for round in 0..rounds {
        for client in 0..scenario.clients {
            // Clients are in step; a microsecond apart keeps the order stable.
            let start = round * nanos(scenario.request_interval) + client as u64 * 1_000;
            sim.schedule_at(at(start), Event::Send { client });
        }
    }

    let mut requests: Vec<Request> = Vec::new();
    let mut report = StormReport {
        requests: 0,
        attempts: 0,
        succeeded: 0,
        refused_full: 0,
        budget_denied: 0,
        completion: Duration::ZERO,
        arrivals: Vec::new(),
    };
    let (capacity, queue_limit) = (
        scenario.backend.capacity as usize,
        scenario.backend.queue as usize,
    );
    let mut busy = 0usize;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut served_index = 0u64;
    let mut last_done = 0u64;

    while let Some((now, event)) = sim.next_event() {
        let now = nanos(now);
        // The backend takes a call into service: the script decides how
        // long it runs and how it ends.
        let start_service = |sim: &mut Simulation<Event>, served_index: &mut u64, request| {
            let decision =
                scenario
                    .backend
                    .decide(*served_index, Duration::from_nanos(now), sim.rng());
            *served_index += 1;
            let code = decision.outcome.err().unwrap_or(Code::Ok) as i32;
            sim.schedule_in(decision.delay, Event::Served { request, code });
        };
        match event {
            Event::Send { client } => {
                requests.push(Request {
                    client,
                    attempt: 1,
                    previous_delay: policy.backoff.initial,
                    started: now,
                });
                report.requests += 1;
                sim.schedule_at(
                    at(now + latency),
                    Event::Arrive {
                        request: requests.len() - 1,
                    },
                );
            }
            Event::Arrive { request } => {
                report.attempts += 1;
                let bucket = (now / BUCKET_NANOS) as usize;
                if report.arrivals.len() <= bucket {
                    report.arrivals.resize(bucket + 1, 0);
                }
                report.arrivals[bucket] += 1;
                if let Some(code) = scenario.backend.outage_at(Duration::from_nanos(now)) {
                    sim.schedule_at(
                        at(now + latency),
                        Event::Answer {
                            request,
                            code: code as i32,
                        },
                    );
                } else if capacity == 0 || busy < capacity {
                    busy += 1;
                    start_service(&mut sim, &mut served_index, request);
                } else if queue.len() < queue_limit {
                    queue.push_back(request);
                } else {
                    report.refused_full += 1;
                    sim.schedule_at(
                        at(now + latency),
                        Event::Answer {
                            request,
                            code: Code::ResourceExhausted as i32,
                        },
                    );
                }
            }
            Event::Served { request, code } => {
                busy -= 1;
                sim.schedule_at(at(now + latency), Event::Answer { request, code });
                if let Some(next) = queue.pop_front() {
                    busy += 1;
                    start_service(&mut sim, &mut served_index, next);
                }
            }
            Event::Answer { request, code } => {
                let code = Code::from_i32(code);
                let state = &mut requests[request];
                let deadline = state.started + nanos(scenario.deadline);
                let remaining = Duration::from_nanos(deadline.saturating_sub(now));
                let step = policy.next_step(
                    code,
                    state.attempt,
                    state.previous_delay,
                    budgets[state.client].as_ref(),
                    Some(remaining),
                    None,
                    &mut rngs[state.client],
                );
                match step {
                    NextStep::RetryAfter(delay) => {
                        state.previous_delay = delay;
                        sim.schedule_at(at(now + nanos(delay)), Event::Retry { request });
                    }
                    NextStep::Finish => {
                        if code == Code::Ok {
                            report.succeeded += 1;
                        }
                        last_done = last_done.max(now);
                    }
                    NextStep::GiveUp(reason) => {
                        if reason == crate::retry::GiveUpReason::BudgetDrained {
                            report.budget_denied += 1;
                        }
                        last_done = last_done.max(now);
                    }
                }
            }
            Event::Retry { request } => {
                requests[request].attempt += 1;
                sim.schedule_at(at(now + latency), Event::Arrive { request });
            }
        }
    }
    budgets.clear();
    report.completion = Duration::from_nanos(last_done);
    Ok(report)
}

#[cfg(test)]
mod tests;
