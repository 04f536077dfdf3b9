//! The hot-key experiment behind `dslab demo caching`: one key read
//! 1000 times a second across its expiry, through each variant.
//!
//! Time is a [`ManualClock`] stepped in 10 ms ticks, and every request is
//! a future this driver polls itself, oldest first, until none can move:
//! each run replays exactly, with no test tooling and no sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::{Cache, CacheConfig, Clock, ManualClock, NaiveCacheAside};

pub(super) const TICK: Duration = Duration::from_millis(10);
/// Requests for the hot key per tick: 1000 per second.
pub(super) const PER_TICK: u64 = 10;
/// What one backend load takes.
pub(super) const LOAD_TICKS: u64 = 20;
pub(super) const TTL: Duration = Duration::from_secs(5);
/// Ticks measured after the warm-up: 7 s, across the expiry at 5 s.
const RUN_TICKS: u64 = 700;
/// Figure buckets: backend calls per 100 ms.
pub(super) const BUCKET_TICKS: u64 = 10;

type Request<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Polls requests by hand on a manual clock.
pub(super) struct Stepper<'a> {
    clock: ManualClock,
    tick: u64,
    pub(super) pending: Vec<(u64, Request<'a>)>,
    /// Requests answered in a later tick than they arrived: they waited.
    pub(super) waited: u64,
}

impl<'a> Stepper<'a> {
    pub(super) fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            tick: 0,
            pending: Vec::new(),
            waited: 0,
        }
    }

    pub(super) fn submit(&mut self, request: impl Future<Output = ()> + 'a) {
        // Unconstrained: tokio's cooperative budget belongs to the task
        // running the demo, and must not make a ready future look stuck.
        let request = tokio::task::unconstrained(request);
        self.pending.push((self.tick, Box::pin(request)));
    }

    /// Polls until a whole pass completes nothing.
    pub(super) fn settle(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        let (tick, mut waited) = (self.tick, 0);
        loop {
            let before = self.pending.len();
            self.pending.retain_mut(|(arrived, request)| {
                let done = request.as_mut().poll(&mut cx).is_ready();
                if done && *arrived < tick {
                    waited += 1;
                }
                !done
            });
            if self.pending.len() == before {
                break;
            }
        }
        self.waited += waited;
    }

    pub(super) fn step(&mut self) {
        self.tick += 1;
        self.clock.advance(TICK);
    }
}

/// A backend call: counted when it starts, answered `LOAD_TICKS` later.
fn backend(
    clock: &ManualClock,
    calls: &AtomicU64,
    value: u64,
) -> impl Future<Output = Result<u64, String>> + use<> {
    calls.fetch_add(1, Ordering::Relaxed);
    let (clock, until) = (clock.clone(), clock.now() + TICK * LOAD_TICKS as u32);
    std::future::poll_fn(move |_| {
        if clock.now() >= until {
            Poll::Ready(Ok(value))
        } else {
            Poll::Pending
        }
    })
}

/// One variant under the hot-key load: backend calls per tick, and how
/// many requests had to wait.
pub(super) struct Run {
    pub(super) calls_per_tick: Vec<u64>,
    pub(super) waited: u64,
    /// Misses that waited for another reader's load (single-flight).
    pub(super) coalesced: u64,
}

pub(super) enum Variant {
    Naive,
    SingleFlight,
    XFetch,
}

pub(super) fn run_hot_key(variant: &Variant) -> Result<Run, crate::Error> {
    let clock = ManualClock::new(Instant::now());
    let config = CacheConfig {
        early_expiration: matches!(variant, Variant::XFetch).then_some(1.0),
        seed: 29,
        ..CacheConfig::new(16, TTL)
    };
    let calls = Arc::new(AtomicU64::new(0));
    let naive = Arc::new(NaiveCacheAside::with_clock(
        config,
        Arc::new(clock.clone()),
    )?);
    let cache: Cache<&str, u64, String> = Cache::with_clock(config, Arc::new(clock.clone()))?;
    let mut stepper = Stepper::new(clock.clone());
    let request = |stepper: &mut Stepper<'static>| {
        let (clock, calls) = (clock.clone(), calls.clone());
        let load = move || backend(&clock, &calls, 42);
        match variant {
            Variant::Naive => {
                let naive = naive.clone();
                stepper.submit(async move {
                    let _ = naive.get_or_load("hot", load).await;
                })
            }
            _ => {
                let cache = cache.clone();
                stepper.submit(async move {
                    let _ = cache.get_or_load("hot", load).await;
                })
            }
        }
    };
    // Warm-up: one reader fills the key, then the clock starts.
    request(&mut stepper);
    while !stepper.pending.is_empty() {
        stepper.step();
        stepper.settle();
    }
    let (warm_calls, mut calls_per_tick) = (calls.load(Ordering::Relaxed), Vec::new());
    stepper.waited = 0;
    let mut seen = warm_calls;
    for _ in 0..RUN_TICKS {
        stepper.step();
        for _ in 0..PER_TICK {
            request(&mut stepper);
        }
        stepper.settle();
        let now = calls.load(Ordering::Relaxed);
        calls_per_tick.push(now - seen);
        seen = now;
    }
    Ok(Run {
        calls_per_tick,
        waited: stepper.waited,
        coalesced: cache.stats().coalesced,
    })
}

pub(super) fn around_expiry(run: &Run) -> u64 {
    // The warm fill landed at tick 0 of the run; the key expires 5 s later.
    let expiry = (TTL.as_millis() / TICK.as_millis()) as usize;
    run.calls_per_tick[expiry - 50..expiry + 50].iter().sum()
}
