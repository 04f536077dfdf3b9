//! The queue simulator: c servers, one waiting line, on `resilience::des`.
//!
//! Customers arrive with random gaps, wait in a [`QueueDiscipline`], are
//! served for a random time, and leave. Everything the formulas predict
//! is measured directly — per-customer waits, the time-average number in
//! the system, busy time — so the formulas can be checked, and so can
//! the disciplines the formulas know nothing about.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use resilience::des::Simulation;

use super::discipline::{AdaptiveLifo, BoundedFifo, Codel, NaiveUnboundedFifo, QueueDiscipline};
use crate::error::{Error, Result};

/// The most customers one run may generate: every served customer's
/// response time is kept for the percentiles, so this bounds memory.
pub const MAX_CUSTOMERS: u64 = 5_000_000;
/// The most servers one run may have.
pub const MAX_SERVERS: u32 = 10_000;

/// A random duration: inter-arrival gaps or service times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Memoryless (the "M" in M/M/1): squared coefficient of variation 1.
    Exponential { mean: Duration },
    /// Always the same (the "D" in M/D/1): variation 0.
    Constant(Duration),
    /// The sum of `phases` exponential phases: variation 1/phases, between
    /// the two above.
    Erlang { phases: u32, mean: Duration },
}

impl Distribution {
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Exponential { mean } | Self::Erlang { mean, .. } | Self::Constant(mean) => mean,
        }
    }

    /// The squared coefficient of variation, variance / mean²: what
    /// Kingman's formula takes.
    pub fn scv(&self) -> f64 {
        match *self {
            Self::Exponential { .. } => 1.0,
            Self::Constant(_) => 0.0,
            Self::Erlang { phases, .. } => 1.0 / f64::from(phases.max(1)),
        }
    }

    /// The rate, 1 / mean, per second.
    pub fn rate(&self) -> f64 {
        1.0 / self.mean().as_secs_f64()
    }

    fn validate(&self, what: &'static str) -> Result<()> {
        let mean = self.mean();
        if mean.is_zero() {
            return Err(Error::InvalidRate {
                name: what,
                value: f64::INFINITY,
            });
        }
        if let Self::Erlang { phases, .. } = *self
            && !(1..=1_000).contains(&phases)
        {
            return Err(Error::InvalidQueueConfig {
                reason: format!("{what}: Erlang phases {phases} is outside 1..=1000"),
            });
        }
        Ok(())
    }

    fn sample(&self, rng: &mut SmallRng) -> Duration {
        // Inverse transform: −mean · ln(U) with U in (0, 1] is exponential.
        let mut exponential = |mean: f64| -mean * (1.0 - rng.random::<f64>()).ln();
        let seconds = match *self {
            Self::Constant(mean) => return mean,
            Self::Exponential { mean } => exponential(mean.as_secs_f64()),
            Self::Erlang { phases, mean } => {
                let phase = mean.as_secs_f64() / f64::from(phases);
                (0..phases).map(|_| exponential(phase)).sum()
            }
        };
        Duration::from_secs_f64(seconds)
    }
}

/// Which queue discipline the servers take work from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// The broken twin: FIFO with no bound.
    NaiveUnboundedFifo,
    BoundedFifo {
        capacity: usize,
    },
    Codel {
        target: Duration,
        interval: Duration,
        capacity: usize,
    },
    AdaptiveLifo {
        congested_after: Duration,
        capacity: usize,
    },
}

impl Policy {
    /// The four disciplines Episode 7 compares, configured for
    /// [`QueueConfig::episode_7`]: the bounded FIFO holds 40 (about 100 ms
    /// of work for four 10 ms workers, half the clients' deadline); CoDel
    /// and adaptive LIFO use Facebook's 5 ms / 100 ms and 1000 slots.
    pub fn episode_7() -> [Policy; 4] {
        [
            Policy::NaiveUnboundedFifo,
            Policy::BoundedFifo { capacity: 40 },
            Policy::Codel {
                target: Duration::from_millis(5),
                interval: Duration::from_millis(100),
                capacity: 1_000,
            },
            Policy::AdaptiveLifo {
                congested_after: Duration::from_millis(5),
                capacity: 1_000,
            },
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::NaiveUnboundedFifo => "unbounded FIFO (naive)",
            Self::BoundedFifo { .. } => "bounded FIFO",
            Self::Codel { .. } => "CoDel",
            Self::AdaptiveLifo { .. } => "adaptive LIFO",
        }
    }

    fn build(&self) -> Box<dyn QueueDiscipline<Customer>> {
        match *self {
            Self::NaiveUnboundedFifo => Box::new(NaiveUnboundedFifo::new()),
            Self::BoundedFifo { capacity } => Box::new(BoundedFifo::new(capacity)),
            Self::Codel {
                target,
                interval,
                capacity,
            } => Box::new(Codel::new(target, interval, capacity)),
            Self::AdaptiveLifo {
                congested_after,
                capacity,
            } => Box::new(AdaptiveLifo::new(congested_after, capacity)),
        }
    }
}

/// One run's setting.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Gaps between arrivals.
    pub arrivals: Distribution,
    /// Each customer's service time.
    pub service: Distribution,
    pub servers: u32,
    pub policy: Policy,
    /// How long a client waits for its answer. A later answer still costs
    /// the server its full service time — the server cannot know — but
    /// does not count as goodput. `None`: clients wait forever.
    pub deadline: Option<Duration>,
    /// Customers to generate; then arrivals stop and the queue drains.
    pub customers: u64,
    /// The first customers, excluded from the wait and goodput statistics
    /// while the queue fills from empty.
    pub warmup: u64,
    pub seed: u64,
}

impl QueueConfig {
    /// M/M/c: Poisson arrivals at `arrival_rate`, exponential service at
    /// `service_rate` per server, FIFO, no deadline.
    pub fn markovian(arrival_rate: f64, service_rate: f64, servers: u32, seed: u64) -> Self {
        let mean = |rate: f64| Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::ZERO);
        Self {
            arrivals: Distribution::Exponential {
                mean: mean(arrival_rate),
            },
            service: Distribution::Exponential {
                mean: mean(service_rate),
            },
            servers,
            policy: Policy::NaiveUnboundedFifo,
            deadline: None,
            customers: 100_000,
            warmup: 5_000,
            seed,
        }
    }

    /// Episode 7's overload: four workers serving 10 ms requests on
    /// average (400/s between them) offered 480/s, 120% of capacity, by
    /// clients that give up after 200 ms; 50 simulated seconds.
    pub fn episode_7(policy: Policy, seed: u64) -> Self {
        Self {
            arrivals: Distribution::Exponential {
                mean: Duration::from_secs(1) / 480,
            },
            service: Distribution::Exponential {
                mean: Duration::from_millis(10),
            },
            servers: 4,
            policy,
            deadline: Some(Duration::from_millis(200)),
            customers: 24_000,
            warmup: 2_400,
            seed,
        }
    }

    /// The offered load ρ = λ / (c μ); above 1 is overload.
    pub fn offered_load(&self) -> f64 {
        self.arrivals.mean().as_secs_f64().recip() * self.service.mean().as_secs_f64()
            / f64::from(self.servers.max(1))
    }

    fn validate(&self) -> Result<()> {
        self.arrivals.validate("arrival rate")?;
        self.service.validate("service rate")?;
        if self.servers == 0 {
            return Err(Error::NoServers);
        }
        if self.servers > MAX_SERVERS {
            return Err(Error::InvalidQueueConfig {
                reason: format!("{} servers exceeds {MAX_SERVERS}", self.servers),
            });
        }
        if self.customers == 0 || self.customers > MAX_CUSTOMERS || self.warmup >= self.customers {
            return Err(Error::InvalidQueueConfig {
                reason: format!(
                    "{} customers with {} warm-up: need 0 ≤ warm-up < customers ≤ {MAX_CUSTOMERS}",
                    self.customers, self.warmup
                ),
            });
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueReport {
    pub arrived: u64,
    pub served: u64,
    /// Turned away at the door (queue full, or evicted).
    pub rejected: u64,
    /// Dropped from the queue by the discipline (CoDel).
    pub dropped: u64,
    /// Mean wait before service, served customers after warm-up.
    pub mean_wait: Duration,
    /// Mean wait plus service, served customers after warm-up.
    pub mean_response: Duration,
    pub p99_response: Duration,
    /// Served customers after warm-up.
    pub served_measured: u64,
    /// Of those, how many were answered within the deadline.
    pub on_time: u64,
    /// On-time answers per second of arrivals after warm-up.
    pub goodput: f64,
    /// Arrivals per second after warm-up.
    pub offered_rate: f64,
    /// Fraction of server time spent serving, over the arrival period.
    pub busy_fraction: f64,
    /// Little's law, measured three ways over the whole run (until the
    /// queue drained): the time-average number in the system …
    pub time_average_in_system: f64,
    /// … the rate at which customers left it (served or dropped) …
    pub throughput: f64,
    /// … and the mean time they spent in it.
    pub mean_time_in_system: Duration,
    /// Simulated time until the last customer left.
    pub elapsed: Duration,
}

impl QueueReport {
    /// The share of served customers (after warm-up) answered after their
    /// client's deadline: server time spent on nobody.
    pub fn late_share(&self) -> f64 {
        let measured = self.served_measured.max(1);
        (measured - self.on_time.min(measured)) as f64 / measured as f64
    }

    /// L − λW relative to L: zero when Little's law holds.
    pub fn littles_law_error(&self) -> f64 {
        let predicted = self.throughput * self.mean_time_in_system.as_secs_f64();
        (self.time_average_in_system - predicted).abs() / self.time_average_in_system.max(1e-12)
    }
}

/// A customer in the system.
#[derive(Clone, Copy, Debug)]
struct Customer {
    index: u64,
    arrived: Duration,
}

#[derive(Debug)]
enum Event {
    Arrival,
    Departure {
        customer: Customer,
        started: Duration,
    },
}

/// Running integrals of "how many" over time: the numerators of every
/// time average.
#[derive(Debug, Default)]
struct Area {
    level: u64,
    since: Duration,
    integral: f64,
}

impl Area {
    fn change(&mut self, now: Duration, delta: i64) {
        self.integral += self.level as f64 * (now - self.since).as_secs_f64();
        self.since = now;
        self.level = self.level.saturating_add_signed(delta);
    }
}

/// Runs one simulation.
pub fn simulate(config: &QueueConfig) -> Result<QueueReport> {
    config.validate()?;
    let mut sim: Simulation<Event> = Simulation::new(config.seed);
    let mut queue = config.policy.build();
    let mut stats = Stats::default();
    let mut in_system = Area::default();
    let mut busy = Area::default();
    let mut dropped = Vec::new();
    let (mut generated, mut last_arrival, mut warm_at) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut busy_at_last_arrival = 0.0;

    let first = config.arrivals.sample(sim.rng());
    sim.schedule_in(first, Event::Arrival);
    while let Some((now, event)) = sim.next_event() {
        match event {
            Event::Arrival => {
                let customer = Customer {
                    index: generated,
                    arrived: now,
                };
                generated += 1;
                if customer.index == config.warmup {
                    warm_at = now;
                }
                last_arrival = now;
                if generated < config.customers {
                    let gap = config.arrivals.sample(sim.rng());
                    sim.schedule_in(gap, Event::Arrival);
                }
                if busy.level < u64::from(config.servers) && queue.is_empty() {
                    in_system.change(now, 1);
                    start(&mut sim, &mut busy, config, customer);
                } else if let Some(turned_away) = queue.push(customer, now) {
                    stats.rejected += 1;
                    // The newcomer never entered; an evicted customer
                    // leaves after its time in the queue.
                    if turned_away.index != customer.index {
                        in_system.change(now, 1);
                        in_system.change(now, -1);
                        stats.left(now - turned_away.arrived);
                    }
                } else {
                    in_system.change(now, 1);
                }
                if generated == config.customers {
                    busy.change(now, 0);
                    busy_at_last_arrival = busy.integral;
                }
            }
            Event::Departure { customer, started } => {
                busy.change(now, -1);
                in_system.change(now, -1);
                stats.served(config, customer, started, now);
                let next = queue.pop(now, &mut dropped);
                for gone in dropped.drain(..) {
                    stats.dropped += 1;
                    in_system.change(now, -1);
                    stats.left(now - gone.arrived);
                }
                if let Some(next) = next {
                    start(&mut sim, &mut busy, config, next);
                }
            }
        }
    }
    in_system.change(sim.now(), 0);
    Ok(stats.report(
        config,
        &in_system,
        busy_at_last_arrival,
        last_arrival,
        warm_at,
        sim.now(),
    ))
}

fn start(sim: &mut Simulation<Event>, busy: &mut Area, config: &QueueConfig, customer: Customer) {
    busy.change(sim.now(), 1);
    let started = sim.now();
    let took = config.service.sample(sim.rng());
    sim.schedule_in(took, Event::Departure { customer, started });
}

#[derive(Debug, Default)]
struct Stats {
    served: u64,
    rejected: u64,
    dropped: u64,
    on_time: u64,
    /// Everyone who left the system (served or dropped): count and time.
    left: u64,
    time_in_system: f64,
    waits: f64,
    responses: Vec<f64>,
}

impl Stats {
    fn left(&mut self, time_in_system: Duration) {
        self.left += 1;
        self.time_in_system += time_in_system.as_secs_f64();
    }

    fn served(
        &mut self,
        config: &QueueConfig,
        customer: Customer,
        started: Duration,
        now: Duration,
    ) {
        self.served += 1;
        let response = now - customer.arrived;
        self.left(response);
        if customer.index < config.warmup {
            return;
        }
        self.waits += (started - customer.arrived).as_secs_f64();
        self.responses.push(response.as_secs_f64());
        if config.deadline.is_none_or(|deadline| response <= deadline) {
            self.on_time += 1;
        }
    }

    fn report(
        mut self,
        config: &QueueConfig,
        in_system: &Area,
        busy_integral: f64,
        last_arrival: Duration,
        warm_at: Duration,
        end: Duration,
    ) -> QueueReport {
        let measured = self.responses.len().max(1) as f64;
        let mean = |total: f64| Duration::from_secs_f64(total / measured);
        self.responses.sort_by(f64::total_cmp);
        let p99 = self
            .responses
            .get((self.responses.len() * 99 / 100).min(self.responses.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let window = (last_arrival - warm_at)
            .as_secs_f64()
            .max(f64::MIN_POSITIVE);
        let elapsed = end.as_secs_f64().max(f64::MIN_POSITIVE);
        QueueReport {
            arrived: config.customers,
            served: self.served,
            rejected: self.rejected,
            dropped: self.dropped,
            mean_wait: mean(self.waits),
            mean_response: mean(self.responses.iter().sum()),
            p99_response: Duration::from_secs_f64(p99),
            served_measured: self.responses.len() as u64,
            on_time: self.on_time,
            goodput: self.on_time as f64 / window,
            offered_rate: (config.customers - config.warmup) as f64 / window,
            busy_fraction: busy_integral
                / (f64::from(config.servers) * last_arrival.as_secs_f64().max(f64::MIN_POSITIVE)),
            time_average_in_system: in_system.integral / elapsed,
            throughput: self.left as f64 / elapsed,
            mean_time_in_system: Duration::from_secs_f64(
                self.time_in_system / self.left.max(1) as f64,
            ),
            elapsed: end,
        }
    }
}
