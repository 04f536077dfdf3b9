//! `dslab demo caching`: the stampede on a hot key's expiry, and the
//! invalidation race, each beside its fix.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::stampede::{
    BUCKET_TICKS, LOAD_TICKS, PER_TICK, Run, Stepper, TICK, TTL, Variant, around_expiry,
    run_hot_key,
};
use super::{Cache, CacheConfig, Clock, ManualClock, NaiveCacheAside};

/// A database row with a version, as the race needs it.
#[derive(Debug, Default)]
struct Database {
    rows: Mutex<BTreeMap<&'static str, String>>,
}

impl Database {
    fn read(&self, key: &'static str) -> String {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.get(key).cloned().unwrap_or_default()
    }

    fn write(&self, key: &'static str, value: &str) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.insert(key, value.to_owned());
    }
}

/// The race, scripted: the reader reads the row, the writer writes and
/// invalidates, then the reader fills. Returns what the cache serves
/// afterwards, for the naive twin and for the leased cache.
fn run_race() -> Result<(Option<String>, Option<String>), crate::Error> {
    let clock = ManualClock::new(Instant::now());
    let config = CacheConfig::new(16, Duration::from_secs(3600));
    let naive = NaiveCacheAside::with_clock(config, Arc::new(clock.clone()))?;
    let leased: Cache<&str, String, String> = Cache::with_clock(config, Arc::new(clock.clone()))?;
    let db = Database::default();
    db.write("user:1", "old address");
    let slow_read = |db: &Database| {
        // The row is read now; the answer travels back one load later.
        let row = db.read("user:1");
        let (clock, until) = (clock.clone(), clock.now() + TICK * LOAD_TICKS as u32);
        std::future::poll_fn(move |_| {
            if clock.now() >= until {
                Poll::Ready(Ok::<_, String>(row.clone()))
            } else {
                Poll::Pending
            }
        })
    };
    let mut stepper = Stepper::new(clock.clone());
    stepper.submit(async {
        let _ = naive.get_or_load("user:1", || slow_read(&db)).await;
    });
    stepper.submit(async {
        let _ = leased.get_or_load("user:1", || slow_read(&db)).await;
    });
    stepper.settle();
    // Both readers hold the old row. Now the writer, in the right order:
    // database first, then the invalidation.
    db.write("user:1", "new address");
    naive.invalidate(&"user:1");
    leased.invalidate(&"user:1");
    while !stepper.pending.is_empty() {
        stepper.step();
        stepper.settle();
    }
    Ok((naive.get(&"user:1"), leased.get(&"user:1")))
}

/// Episode 29: the stampede and the invalidation race, each beside its fix.
pub async fn caching_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("A hot key expires under 1000 requests per second");
    out.say(&format!(
        "One key, TTL {} s, read {PER_TICK} times every 10 ms; a backend load takes {} ms.",
        TTL.as_secs(),
        LOAD_TICKS * 10
    ));
    let naive = run_hot_key(&Variant::Naive)?;
    let single = run_hot_key(&Variant::SingleFlight)?;
    let xfetch = run_hot_key(&Variant::XFetch)?;
    let rows: Vec<Vec<String>> = [
        ("naive cache-aside", &naive),
        ("single-flight", &single),
        ("single-flight + XFetch", &xfetch),
    ]
    .iter()
    .map(|(name, run)| {
        vec![
            name.to_string(),
            around_expiry(run).to_string(),
            run.calls_per_tick
                .iter()
                .max()
                .copied()
                .unwrap_or(0)
                .to_string(),
            run.waited.to_string(),
        ]
    })
    .collect();
    out.table(
        &[
            "variant",
            "backend calls ±0.5 s of expiry",
            "peak per 10 ms",
            "requests that waited",
        ],
        &rows,
    );
    let window = PER_TICK * LOAD_TICKS;
    out.check(
        "the naive twin stampedes: every request during the refill goes to the backend",
        around_expiry(&naive) == window,
        format!(
            "{} calls for one expiry (= {PER_TICK} per tick × {LOAD_TICKS} ticks)",
            around_expiry(&naive)
        ),
    );
    out.check(
        "single-flight makes one backend call for the same expiry; the rest wait for it",
        around_expiry(&single) == 1 && single.coalesced == window - 1,
        format!(
            "{} call, {} readers waited for it",
            around_expiry(&single),
            single.coalesced
        ),
    );
    out.say("Single-flight saves the backend, but every reader still waits out the refill. XFetch");
    out.say("lets one reader volunteer before the expiry, with a chance e^-(gap/(δβ)) per read:");
    let refreshes: u64 = xfetch.calls_per_tick.iter().sum();
    out.check(
        "with XFetch the key never goes missing: one call per refresh, and only the volunteer waits",
        around_expiry(&xfetch) <= 1 && xfetch.coalesced == 0 && xfetch.waited == refreshes,
        format!(
            "{refreshes} refresh(es), the first {:.2} s before the old expiry; {} reader(s) waited",
            xfetch
                .calls_per_tick
                .iter()
                .position(|&calls| calls > 0)
                .map_or(0.0, |tick| TTL.as_secs_f64() - (tick + 1) as f64 * TICK.as_secs_f64()),
            xfetch.waited
        ),
    );
    let buckets = |run: &Run, name: &str| {
        let points = run
            .calls_per_tick
            .chunks(BUCKET_TICKS as usize)
            .enumerate()
            .map(|(i, c)| {
                (
                    (i as u64 * BUCKET_TICKS) as f64 * 0.01,
                    c.iter().sum::<u64>() as f64,
                )
            })
            .collect();
        Series::line(name, points)
    };
    out.figure(
        "caching-stampede",
        &LineChart::new(
            "Backend calls around a hot key's expiry",
            "time (s)",
            "backend calls per 100 ms",
        )
        .series(buckets(&naive, "naive cache-aside"))
        .series(buckets(&single, "single-flight"))
        .series(buckets(&xfetch, "single-flight + XFetch")),
    );

    out.section("The invalidation race");
    out.say(
        "A reader misses and reads the row (old address). A writer updates the row and deletes",
    );
    out.say("the cache entry. Then the reader's answer arrives and fills the cache.");
    let (naive_after, leased_after) = run_race()?;
    out.check(
        "the naive twin serves the old address after the write, until the TTL (1 h) ends",
        naive_after.as_deref() == Some("old address"),
        format!("cache holds {naive_after:?}"),
    );
    out.check(
        "the leased cache refuses the fill: the next read loads the new address",
        leased_after.is_none(),
        format!("cache holds {leased_after:?}"),
    );
    Ok(())
}
