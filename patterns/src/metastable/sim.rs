//! The metastable system on the discrete-event engine: Poisson clients
//! with timeouts and retries in front of a worker pool and its queue.

use std::time::Duration;

use rand::Rng;
use resilience::des::Simulation;
use resilience::retry::RetryBudget;

use super::{Intervention, MetastableConfig, TriggerKind};
use crate::error::{Error, Result};
use crate::queueing::{AdaptiveLifo, BoundedFifo, NaiveUnboundedFifo, QueueDiscipline};

/// What happened in one slice of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    pub start: Duration,
    /// Fresh requests the clients started.
    pub arrivals: u64,
    /// Attempts that reached the server (fresh and retries).
    pub attempts: u64,
    /// Requests answered within their client's timeout.
    pub goodput: u64,
    /// Attempts served after their client had given up on them.
    pub wasted: u64,
    /// Requests waiting at the end of the bucket.
    pub queue: usize,
}

/// A run's timeline and the verdict on it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetastableReport {
    pub config: MetastableConfig,
    pub buckets: Vec<Bucket>,
    /// Requests that gave up after their last attempt or a denied retry.
    pub gave_up: u64,
    /// When the system became healthy for good after the trigger ended:
    /// the start of the first bucket from which every bucket's goodput is
    /// at least [`MetastableReport::HEALTHY_SHARE`] of the normal offered
    /// load. `None`: it never did — the metastable state.
    pub recovered_at: Option<Duration>,
}

impl MetastableReport {
    /// A bucket is healthy when its goodput reaches this share of the
    /// normal offered load. Generous on purpose: Poisson noise on 240
    /// requests is ±16, while the metastable state delivers next to none.
    pub const HEALTHY_SHARE: f64 = 0.75;

    /// How long after the trigger ended the system recovered.
    pub fn recovery_time(&self) -> Option<Duration> {
        self.recovered_at
            .map(|at| at.saturating_sub(self.config.trigger.end()))
    }

    /// Goodput per second over the last `window` of the run.
    pub fn final_goodput(&self, window: Duration) -> f64 {
        let from = self.config.duration.saturating_sub(window);
        let served: u64 = self
            .buckets
            .iter()
            .filter(|b| b.start >= from)
            .map(|b| b.goodput)
            .sum();
        served as f64 / window.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Attempts per fresh request over the whole run (1.0: no retries).
    pub fn amplification(&self) -> f64 {
        let attempts: u64 = self.buckets.iter().map(|b| b.attempts).sum();
        let arrivals: u64 = self.buckets.iter().map(|b| b.arrivals).sum();
        attempts as f64 / arrivals.max(1) as f64
    }
}

#[derive(Clone, Copy, Debug)]
struct Job {
    request: usize,
    attempt: u32,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Arrival,
    Attempt { request: usize },
    Timeout { request: usize, attempt: u32 },
    Served { job: Job },
    Retry { request: usize },
    Workers { delta: i64 },
    Sample,
}

#[derive(Debug)]
struct Request {
    attempt: u32,
    /// The client is waiting for the answer to `attempt`.
    waiting: bool,
    done: bool,
}

fn queue_for(intervention: Intervention) -> Box<dyn QueueDiscipline<Job>> {
    match intervention {
        Intervention::LoadShedding { queue_limit } => Box::new(BoundedFifo::new(queue_limit)),
        // Simplified: LIFO's bound is set far above anything a run reaches,
        // so what fixes the loop here is the order, not a limit.
        Intervention::AdaptiveLifo { congested_after } => {
            Box::new(AdaptiveLifo::new(congested_after, usize::MAX))
        }
        _ => Box::new(NaiveUnboundedFifo::new()),
    }
}

fn exponential(rng: &mut impl Rng, mean: f64) -> Duration {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64(-u.ln() * mean)
}

/// Runs the configuration and returns its timeline.
pub fn simulate(config: &MetastableConfig) -> Result<MetastableReport> {
    config.validate()?;
    let budget = match config.intervention {
        Intervention::RetryBudget {
            max_tokens,
            token_ratio,
        } => Some(RetryBudget::new(max_tokens, token_ratio).map_err(|e| {
            Error::InvalidExperiment {
                reason: e.to_string(),
            }
        })?),
        _ => None,
    };
    let trigger = config.trigger;
    let mut sim: Simulation<Event> = Simulation::new(config.seed);
    let mut pool = Pool {
        queue: queue_for(config.intervention),
        dropped: Vec::new(),
        busy: 0,
        workers: i64::from(config.workers),
    };
    let mut requests: Vec<Request> = Vec::new();
    let bucket_count = config
        .duration
        .as_nanos()
        .div_ceil(config.bucket.as_nanos()) as usize;
    let mut buckets: Vec<Bucket> = (0..bucket_count)
        .map(|i| Bucket {
            start: config.bucket * i as u32,
            ..Bucket::default()
        })
        .collect();
    let bucket_of = |now: Duration| {
        ((now.as_nanos() / config.bucket.as_nanos()) as usize).min(bucket_count - 1)
    };
    let mut gave_up = 0u64;

    sim.schedule_at(Duration::ZERO, Event::Arrival);
    for i in 1..=bucket_count {
        sim.schedule_at(
            config.bucket * i as u32 - Duration::from_nanos(1),
            Event::Sample,
        );
    }
    if let Intervention::Capacity {
        extra_workers,
        hold,
    } = config.intervention
    {
        let delta = i64::from(extra_workers);
        sim.schedule_at(trigger.end(), Event::Workers { delta });
        sim.schedule_at(
            trigger.end().saturating_add(hold),
            Event::Workers { delta: -delta },
        );
    }

    while let Some((now, event)) = sim.next_event_until(config.duration) {
        let service_mean = match trigger.kind {
            TriggerKind::Slowdown { factor } if trigger.active(now) => {
                config.service_time.as_secs_f64() * factor
            }
            _ => config.service_time.as_secs_f64(),
        };
        // A failed attempt: retry after a jittered pause if attempts and
        // the budget allow, otherwise the request gives up.
        let mut failed = |sim: &mut Simulation<Event>, request: usize, attempt: u32| {
            if let Some(budget) = &budget {
                budget.on_failure();
            }
            let allowed = budget.as_ref().is_none_or(RetryBudget::allows_retry);
            if attempt < config.max_attempts && allowed {
                let jitter = config.retry_backoff.mul_f64(sim.rng().random::<f64>());
                sim.schedule_in(config.retry_backoff + jitter, Event::Retry { request });
                false
            } else {
                gave_up += 1;
                true
            }
        };
        match event {
            Event::Arrival => {
                let rate = match trigger.kind {
                    TriggerKind::LoadSpike { factor } if trigger.active(now) => {
                        config.arrival_rate * factor
                    }
                    _ => config.arrival_rate,
                };
                let gap = exponential(sim.rng(), 1.0 / rate);
                sim.schedule_in(gap, Event::Arrival);
                buckets[bucket_of(now)].arrivals += 1;
                requests.push(Request {
                    attempt: 0,
                    waiting: false,
                    done: false,
                });
                let request = requests.len() - 1;
                sim.schedule_at(now, Event::Attempt { request });
            }
            Event::Attempt { request } | Event::Retry { request } => {
                let state = &mut requests[request];
                state.attempt += 1;
                state.waiting = true;
                let job = Job {
                    request,
                    attempt: state.attempt,
                };
                buckets[bucket_of(now)].attempts += 1;
                sim.schedule_in(
                    config.client_timeout,
                    Event::Timeout {
                        request,
                        attempt: job.attempt,
                    },
                );
                // Free workers mean an empty queue: the job passes straight
                // through it to a worker.
                if let Some(refused) = pool.queue.push(job, now) {
                    // Refused at once (or, for LIFO, the oldest evicted):
                    // the client learns now instead of after its timeout.
                    let state = &mut requests[refused.request];
                    if state.waiting && state.attempt == refused.attempt {
                        state.waiting = false;
                        state.done = failed(&mut sim, refused.request, refused.attempt);
                    }
                }
                pool.fill(&mut sim, now, service_mean);
            }
            Event::Timeout { request, attempt } => {
                let state = &mut requests[request];
                if state.waiting && state.attempt == attempt {
                    state.waiting = false;
                    state.done = failed(&mut sim, request, attempt);
                }
            }
            Event::Served { job } => {
                pool.busy -= 1;
                let state = &mut requests[job.request];
                let bucket = &mut buckets[bucket_of(now)];
                if state.waiting && state.attempt == job.attempt && !state.done {
                    state.waiting = false;
                    state.done = true;
                    bucket.goodput += 1;
                    if let Some(budget) = &budget {
                        budget.on_success();
                    }
                } else {
                    // Pitfall: the server cannot see that nobody waits for
                    // this answer any more. Its work is the retry loop's fuel.
                    bucket.wasted += 1;
                }
                pool.fill(&mut sim, now, service_mean);
            }
            Event::Workers { delta } => {
                pool.workers += delta;
                pool.fill(&mut sim, now, service_mean);
            }
            Event::Sample => buckets[bucket_of(now)].queue = pool.queue.len(),
        }
    }
    let healthy =
        config.arrival_rate * config.bucket.as_secs_f64() * MetastableReport::HEALTHY_SHARE;
    let from = trigger.end();
    let mut recovered_at = None;
    for bucket in buckets.iter().rev() {
        if bucket.start < from || (bucket.goodput as f64) < healthy {
            break;
        }
        recovered_at = Some(bucket.start);
    }
    Ok(MetastableReport {
        config: config.clone(),
        buckets,
        gave_up,
        recovered_at,
    })
}

/// The server side: workers and the queue in front of them.
struct Pool {
    queue: Box<dyn QueueDiscipline<Job>>,
    dropped: Vec<Job>,
    busy: i64,
    workers: i64,
}

impl Pool {
    /// Fills free workers from the queue.
    fn fill(&mut self, sim: &mut Simulation<Event>, now: Duration, service_mean: f64) {
        while self.busy < self.workers {
            let Some(job) = self.queue.pop(now, &mut self.dropped) else {
                break;
            };
            self.busy += 1;
            let service = exponential(sim.rng(), service_mean);
            sim.schedule_in(service, Event::Served { job });
        }
        // No discipline used here drops on pop; were one to, its clients
        // would learn by their timeout, which is what this models.
        self.dropped.clear();
    }
}
