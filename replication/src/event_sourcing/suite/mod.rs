//! The backend test suite: what every [`EventStore`] must do, as plain
//! `pub async fn`s any backend's tests can run — the embedded one here,
//! the etcd-API one in `consensus` — against a fresh store.
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_backend_passes_the_event_store_suite() {
//!     let result = suite::run_all(|| async { MyStore::connect(...).await }).await;
//!     if let Err(failure) = result { panic!("{failure}") }
//! }
//! ```
//!
//! Each case takes an empty store (behind an `Arc`, as the concurrent
//! cases share it between tasks) and returns a [`SuiteFailure`] naming
//! the case and what it saw, rather than panicking, so a caller can add
//! context (the seed, the cluster's state) before failing. The cases
//! only rely on the trait's contract: positions increasing but not
//! necessarily contiguous, and [`StoreError::Unavailable`](super::StoreError::Unavailable) meaning "outcome
//! unknown" (a leader lost mid-append), never "not applied".

mod bad_input;
mod basics;
mod concurrency;
mod projections;

use std::future::Future;
use std::sync::Arc;

pub use bad_input::bad_input_is_refused_and_nothing_appended;
pub use basics::{
    append_and_read_back, expected_version_rules, snapshots_round_trip,
    subscription_delivers_in_global_order,
};
pub use concurrency::{
    APPENDS_PER_WRITER, WRITERS, concurrent_appenders_one_winner_per_version,
    racing_appenders_one_wins,
};
pub use projections::{
    StreamTotal, Totals, TotalsProjection, projection_matches_fold_after_projector_crashes,
};

use super::{EventStore, NewEvent, Position, RecordedEvent, StreamName};

/// How long a case waits for a subscription's next event before calling
/// it lost (simulated time under turmoil or a paused clock).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A suite case that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteFailure {
    /// The case's function name.
    pub case: &'static str,
    /// What it expected and what it saw.
    pub detail: String,
}

impl std::fmt::Display for SuiteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event store suite, {}: {}", self.case, self.detail)
    }
}

impl std::error::Error for SuiteFailure {}

/// What a case returns.
pub type Outcome = Result<(), SuiteFailure>;

/// Runs every case, each on a fresh store from `factory`; the first
/// failure stops the run.
pub async fn run_all<S, F, Fut>(mut factory: F) -> Outcome
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    append_and_read_back(Arc::new(factory().await)).await?;
    expected_version_rules(Arc::new(factory().await)).await?;
    snapshots_round_trip(Arc::new(factory().await)).await?;
    subscription_delivers_in_global_order(Arc::new(factory().await)).await?;
    bad_input_is_refused_and_nothing_appended(Arc::new(factory().await)).await?;
    racing_appenders_one_wins(Arc::new(factory().await)).await?;
    concurrent_appenders_one_winner_per_version(Arc::new(factory().await)).await?;
    projection_matches_fold_after_projector_crashes(Arc::new(factory().await)).await?;
    Ok(())
}

/// `Err(SuiteFailure)` unless `held`.
fn ensure(case: &'static str, held: bool, detail: impl FnOnce() -> String) -> Outcome {
    if held {
        Ok(())
    } else {
        Err(SuiteFailure {
            case,
            detail: detail(),
        })
    }
}

/// Turns a store error into a failure of `case`, saying what was done.
fn step<T, E: std::fmt::Display>(
    case: &'static str,
    doing: &str,
    result: Result<T, E>,
) -> Result<T, SuiteFailure> {
    result.map_err(|err| SuiteFailure {
        case,
        detail: format!("{doing}: unexpected error: {err}"),
    })
}

fn stream(case: &'static str, name: &str) -> Result<StreamName, SuiteFailure> {
    step(case, "naming a stream", StreamName::new(name))
}

/// A small valid event carrying `body` as JSON.
fn event(event_type: &str, body: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: body.to_string().into_bytes(),
    }
}

/// The whole global log, read page by page (pages of `page` events).
async fn read_everything<S: EventStore>(
    case: &'static str,
    store: &S,
    page: usize,
) -> Result<Vec<RecordedEvent>, SuiteFailure> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = all.last().map_or(Position::START, |event| event.position);
        let batch = step(
            case,
            "reading the global log",
            store.read_all(after, page).await,
        )?;
        if batch.is_empty() {
            return Ok(all);
        }
        all.extend(batch);
    }
}

/// Positions strictly increasing; each stream's versions 1, 2, 3… in
/// global order (no gap, no duplicate, no reordering).
fn check_global_order(case: &'static str, log: &[RecordedEvent]) -> Outcome {
    for pair in log.windows(2) {
        ensure(case, pair[0].position < pair[1].position, || {
            format!(
                "positions not increasing: {} then {}",
                pair[0].position, pair[1].position
            )
        })?;
    }
    let mut versions = std::collections::BTreeMap::<&StreamName, u64>::new();
    for event in log {
        let last = versions.entry(&event.stream).or_default();
        ensure(case, event.version.0 == *last + 1, || {
            format!(
                "stream {} jumps from v{} to {} at {}",
                event.stream, last, event.version, event.position
            )
        })?;
        *last = event.version.0;
    }
    Ok(())
}
