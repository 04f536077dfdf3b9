//! The embedded store against a model: random appends (right, stale and
//! future expected versions), snapshots and crashes with reopen; every
//! outcome must be the model's, and every acknowledged event must be
//! read back after every crash.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{deposit, name};
use super::*;
use crate::log::MemDisk;

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` events to stream `stream`, expecting the stream's
    /// version plus `skew` (`None`: any version).
    Append {
        stream: usize,
        skew: Option<i64>,
        count: usize,
    },
    Snapshot {
        stream: usize,
    },
    CrashAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, prop::option::of(-2i64..=2), 1usize..4)
            .prop_map(|(stream, skew, count)| Op::Append { stream, skew, count }),
        1 => (0usize..3).prop_map(|stream| Op::Snapshot { stream }),
        1 => Just(Op::CrashAndReopen),
    ]
}

/// What the model says an append should do.
fn expected_outcome(current: u64, skew: Option<i64>) -> std::result::Result<(), &'static str> {
    match skew {
        None | Some(0) => Ok(()),
        Some(skew) if current as i64 + skew < 0 => Err("impossible"),
        Some(_) if current == 0 => Err("not found"),
        Some(skew) if skew > 0 => Err("ahead"),
        Some(_) => Err("wrong version"),
    }
}

fn kind(err: &StoreError) -> &'static str {
    match err {
        StoreError::StreamNotFound { .. } => "not found",
        StoreError::VersionAhead { .. } => "ahead",
        StoreError::WrongExpectedVersion { .. } => "wrong version",
        _ => "other",
    }
}

async fn run(ops: Vec<Op>) -> std::result::Result<(), TestCaseError> {
    let disk = MemDisk::new();
    let mut store = EmbeddedStore::open(disk.clone()).expect("opens");
    let names = [name("m-0"), name("m-1"), name("m-2")];
    // The model: each stream's payloads, and the global order.
    let mut streams: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
    let mut global: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut snapshots: BTreeMap<usize, Snapshot> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                stream,
                skew,
                count,
            } => {
                let current = streams.get(&stream).map_or(0, Vec::len) as u64;
                let predicted = expected_outcome(current, skew);
                if predicted == Err("impossible") {
                    continue;
                }
                let expected = match skew {
                    None => ExpectedVersion::Any,
                    Some(skew) => ExpectedVersion::Exact(Version((current as i64 + skew) as u64)),
                };
                let events: Vec<NewEvent> = (0..count)
                    .map(|i| deposit((step * 10 + i) as u64))
                    .collect();
                let result = store.append(&names[stream], expected, events.clone()).await;
                match (&result, predicted) {
                    (Ok(appended), Ok(())) => {
                        prop_assert_eq!(appended.first_version, Version(current + 1));
                        prop_assert_eq!(appended.first_position, Position(global.len() as u64 + 1));
                        for event in events {
                            streams
                                .entry(stream)
                                .or_default()
                                .push(event.payload.clone());
                            global.push((stream, event.payload));
                        }
                    }
                    (Err(err), Err(predicted)) => prop_assert_eq!(kind(err), predicted),
                    (result, predicted) => {
                        prop_assert!(
                            false,
                            "step {step}: got {result:?}, the model says {predicted:?}"
                        )
                    }
                }
            }
            Op::Snapshot { stream } => {
                let current = streams.get(&stream).map_or(0, Vec::len) as u64;
                let snapshot = Snapshot {
                    version: Version(current),
                    schema_version: 1,
                    state: format!("{step}").into_bytes(),
                };
                let saved = store.save_snapshot(&names[stream], snapshot.clone()).await;
                if current == 0 {
                    let refused = matches!(saved, Err(StoreError::StreamNotFound { .. }));
                    prop_assert!(refused, "{:?}", saved);
                } else {
                    prop_assert!(saved.is_ok(), "{saved:?}");
                    snapshots.insert(stream, snapshot);
                }
            }
            Op::CrashAndReopen => {
                drop(store);
                disk.crash();
                store = EmbeddedStore::open(disk.clone()).expect("reopens");
            }
        }
        // After every step, the store is the model.
        let all = store
            .read_all(Position::START, MAX_READ_EVENTS)
            .await
            .expect("reads");
        let seen: Vec<(String, Vec<u8>)> = all
            .iter()
            .map(|e| (e.stream.to_string(), e.payload.clone()))
            .collect();
        let model: Vec<(String, Vec<u8>)> = global
            .iter()
            .map(|(s, p)| (names[*s].to_string(), p.clone()))
            .collect();
        prop_assert_eq!(seen, model, "step {}", step);
        for (index, stream) in names.iter().enumerate() {
            let version = store.stream_version(stream).await.expect("reads");
            prop_assert_eq!(version.0, streams.get(&index).map_or(0, Vec::len) as u64);
            let snapshot = store.load_snapshot(stream).await.expect("loads");
            prop_assert_eq!(snapshot.as_ref(), snapshots.get(&index));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Episode 23. Any sequence of appends, snapshots and crashes: the
    /// embedded store's answers and contents are the model's.
    #[test]
    fn event_sourcing_embedded_matches_model_across_crashes(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run(ops))?;
    }
}
