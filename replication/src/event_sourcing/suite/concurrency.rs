//! Concurrent appenders to one stream: the compare-and-set must pick
//! exactly one winner per version, with no gap and no duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Barrier;

use super::{Outcome, SuiteFailure, ensure, event, read_everything, step, stream};
use crate::event_sourcing::{EventStore, ExpectedVersion, StoreError, StreamName, Version};

/// Writers racing in [`concurrent_appenders_one_winner_per_version`].
pub const WRITERS: usize = 4;
/// Acknowledged appends each writer needs.
pub const APPENDS_PER_WRITER: usize = 5;
/// Attempts a writer may make before the case gives up on the backend
/// (conflicts and unavailability both cost attempts).
const MAX_ATTEMPTS: usize = 400;
/// Pause after an `Unavailable` before retrying (a leader election).
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(50);

/// What happened to one attempt, by its unique (writer, attempt) id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Acknowledged at this version.
    Won(Version),
    /// Refused by the version check: must not be in the stream.
    Lost,
    /// The backend could not say (`Unavailable`): may or may not be.
    Unknown,
}

/// [`WRITERS`] tasks each read the stream's version and append one event
/// "if still at v", retrying on conflict, until each has
/// [`APPENDS_PER_WRITER`] wins. Then: every acknowledged event is at the
/// version its ack named, every refused one is absent, none appears
/// twice, and versions are 1..n with no gap. `Unavailable` counts as
/// "outcome unknown", so the case also holds across a leader failover.
pub async fn concurrent_appenders_one_winner_per_version<S: EventStore + 'static>(
    store: Arc<S>,
) -> Outcome {
    const CASE: &str = "concurrent_appenders_one_winner_per_version";
    let name = stream(CASE, "contended")?;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        let name = name.clone();
        writers.push(tokio::spawn(async move {
            write(store.as_ref(), &name, writer).await
        }));
    }
    let mut fates = BTreeMap::new();
    for writer in writers {
        let joined = step(CASE, "joining a writer", writer.await)?;
        fates.extend(joined?);
    }

    let stored = step(
        CASE,
        "reading the stream",
        store.read_stream(&name, Version::NONE, 1000).await,
    )?;
    let mut seen = BTreeMap::new();
    for (offset, event) in stored.iter().enumerate() {
        ensure(CASE, event.version == Version(offset as u64 + 1), || {
            format!(
                "event #{offset} of the stream has {}: a gap or reordering",
                event.version
            )
        })?;
        let claim = step(CASE, "parsing an event", event.json::<Id>())?;
        // The heart of optimistic concurrency: an event lands only at the
        // version right after the one its writer read.
        ensure(CASE, event.version == Version(claim.read + 1), || {
            format!(
                "an append expecting v{} landed at {}: the version check did not hold",
                claim.read, event.version
            )
        })?;
        let id: (usize, usize) = claim.into();
        ensure(CASE, seen.insert(id, event.version).is_none(), || {
            format!("attempt {id:?} appears twice")
        })?;
        let fate = fates.get(&id).copied();
        ensure(
            CASE,
            fate == Some(Fate::Won(event.version)) || fate == Some(Fate::Unknown),
            || {
                format!(
                    "attempt {id:?} is stored at {} but its appender saw {fate:?}",
                    event.version
                )
            },
        )?;
    }
    for (id, fate) in &fates {
        if let Fate::Won(version) = fate {
            ensure(CASE, seen.get(id) == Some(version), || {
                format!(
                    "attempt {id:?} was acknowledged at {version} but is stored at {:?}",
                    seen.get(id)
                )
            })?;
        }
    }
    let wins = fates
        .values()
        .filter(|fate| matches!(fate, Fate::Won(_)))
        .count();
    ensure(CASE, wins == WRITERS * APPENDS_PER_WRITER, || {
        format!(
            "{wins} acknowledged appends, expected {}",
            WRITERS * APPENDS_PER_WRITER
        )
    })?;
    let log = read_everything(CASE, store.as_ref(), 7).await?;
    super::check_global_order(CASE, &log)
}

#[derive(serde::Deserialize)]
struct Id {
    writer: usize,
    attempt: usize,
    /// The version the writer read and expected.
    read: u64,
}

impl From<Id> for (usize, usize) {
    fn from(id: Id) -> Self {
        (id.writer, id.attempt)
    }
}

async fn write<S: EventStore>(
    store: &S,
    name: &StreamName,
    writer: usize,
) -> Result<Vec<((usize, usize), Fate)>, SuiteFailure> {
    const CASE: &str = "concurrent_appenders_one_winner_per_version";
    let mut fates = Vec::new();
    let mut wins = 0;
    for attempt in 0..MAX_ATTEMPTS {
        if wins == APPENDS_PER_WRITER {
            return Ok(fates);
        }
        let read = match store.stream_version(name).await {
            Ok(version) => version,
            Err(StoreError::Unavailable { .. }) => {
                tokio::time::sleep(UNAVAILABLE_BACKOFF).await;
                continue;
            }
            Err(err) => return step(CASE, "reading the version", Err(err)),
        };
        let events = vec![event(
            "Claimed",
            json!({ "writer": writer, "attempt": attempt, "read": read.0 }),
        )];
        let fate = match store
            .append(name, ExpectedVersion::Exact(read), events)
            .await
        {
            Ok(appended) => {
                wins += 1;
                Fate::Won(appended.first_version)
            }
            Err(StoreError::WrongExpectedVersion { .. }) => Fate::Lost,
            Err(StoreError::Unavailable { .. }) => {
                tokio::time::sleep(UNAVAILABLE_BACKOFF).await;
                Fate::Unknown
            }
            Err(err) => return step(CASE, "appending", Err(err)),
        };
        fates.push(((writer, attempt), fate));
        // Let the other writers run between attempts, even on a
        // single-threaded runtime where an append never yields.
        tokio::task::yield_now().await;
    }
    ensure(CASE, wins == APPENDS_PER_WRITER, || {
        format!(
            "writer {writer} won {wins} of {APPENDS_PER_WRITER} appends in {MAX_ATTEMPTS} attempts"
        )
    })?;
    Ok(fates)
}

/// [`WRITERS`] appenders wait at a barrier, then all append "if at v":
/// exactly one wins, every other gets `WrongExpectedVersion` naming the
/// winner's version, and the stream grew by exactly one event. Repeated
/// for several versions.
pub async fn racing_appenders_one_wins<S: EventStore + 'static>(store: Arc<S>) -> Outcome {
    const CASE: &str = "racing_appenders_one_wins";
    const ROUNDS: u64 = 5;
    let name = stream(CASE, "raced")?;
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let mut racers = Vec::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            let name = name.clone();
            let barrier = Arc::clone(&barrier);
            racers.push(tokio::spawn(async move {
                barrier.wait().await;
                let events = vec![event(
                    "Claimed",
                    json!({ "writer": writer, "round": round }),
                )];
                store
                    .append(&name, ExpectedVersion::Exact(Version(round)), events)
                    .await
            }));
        }
        let mut winners = 0;
        for racer in racers {
            match step(CASE, "joining a racer", racer.await)? {
                Ok(appended) => {
                    winners += 1;
                    ensure(CASE, appended.first_version == Version(round + 1), || {
                        format!("round {round}: the winner wrote {appended:?}")
                    })?;
                }
                Err(StoreError::WrongExpectedVersion {
                    expected, actual, ..
                }) => {
                    ensure(
                        CASE,
                        expected == Version(round) && actual == Version(round + 1),
                        || {
                            format!(
                                "round {round}: a loser was told expected {expected}, actual {actual}"
                            )
                        },
                    )?;
                }
                Err(err) => return step(CASE, "racing", Err(err)),
            }
        }
        ensure(CASE, winners == 1, || {
            format!("round {round}: {winners} appenders won")
        })?;
        let version = step(
            CASE,
            "reading the version",
            store.stream_version(&name).await,
        )?;
        ensure(CASE, version == Version(round + 1), || {
            format!(
                "round {round}: the stream is at {version}, expected v{}",
                round + 1
            )
        })?;
    }
    Ok(())
}
