//! Real runs: the stale register, recorded, judged by both checkers.
//!
//! Time is tokio's paused clock, so every run is the same run: the
//! replica applies each write exactly `lag` after the primary took it.

use std::time::Duration;

use super::demo::InProcess;
use super::*;
use crate::consistency::history::Reply;
use crate::consistency::recorder::{KvClient, Recorder};
use crate::consistency::{Verdict, check as check_linearizable};
use crate::register::stale::StaleRegister;

const LAGS_MS: [u64; 3] = [5, 30, 200];

/// One client writes three values and reads each back right away, from
/// the lagging replica: it misses its own write. With one client program
/// order is the whole order, so no story explains it — read-your-writes
/// is part of sequential consistency.
#[tokio::test(start_paused = true)]
async fn sequential_recorded_stale_register_misses_your_own_write() {
    for lag in LAGS_MS.map(Duration::from_millis) {
        let recorder = Recorder::new();
        let mut client = recorder.client(1, InProcess(StaleRegister::new(lag)));
        for value in ["a", "b", "c"] {
            client.put("k", value).await.expect("the primary takes it");
            client.get("k").await.expect("the replica answers");
            tokio::time::sleep(lag * 2).await;
        }
        let history = recorder.history();
        assert_eq!(history.operations.len(), 6);
        assert_eq!(
            history.operations[1].reply,
            Reply::Value(Datum::text("")),
            "stale"
        );
        let linearizable = check_linearizable(&history, Model::Kv, None).expect("valid");
        assert!(
            matches!(linearizable.verdict, Verdict::NotLinearizable(_)),
            "{lag:?}"
        );
        let result = check(&history, Model::Kv, Some(Duration::from_secs(10))).expect("valid");
        let SequentialVerdict::NotSequential(counterexample) = &result.verdict else {
            panic!("lag {lag:?}: {:?}", result.verdict)
        };
        assert_eq!(counterexample.longest_prefix, [0]);
        assert_eq!(
            counterexample.blocked[0].operation, 1,
            "the first read-back"
        );
    }
}

/// A writer that only writes and a reader that only reads: the reader
/// sees old values after newer writes completed (not linearizable), but
/// always in write order, so one story explains everything — the stale
/// register gives this pair sequential consistency.
#[tokio::test(start_paused = true)]
async fn sequential_recorded_stale_register_reader_and_writer_are_sequential() {
    for lag in LAGS_MS.map(Duration::from_millis) {
        let recorder = Recorder::new();
        let store = StaleRegister::new(lag);
        let mut writer = recorder.client(1, InProcess(store.clone()));
        let mut reader = recorder.client(2, InProcess(store));
        let writes = async {
            for value in ["a", "b", "c", "d"] {
                writer
                    .append("k", value)
                    .await
                    .expect("the primary takes it");
                tokio::time::sleep(lag / 2).await;
            }
        };
        let reads = async {
            for _ in 0..12 {
                reader.get("k").await.expect("the replica answers");
                tokio::time::sleep(lag / 3).await;
            }
        };
        tokio::join!(writes, reads);
        let history = recorder.history();
        assert_eq!(history.operations.len(), 16);
        let linearizable = check_linearizable(&history, Model::Kv, None).expect("valid");
        assert!(
            matches!(linearizable.verdict, Verdict::NotLinearizable(_)),
            "{lag:?}"
        );
        let result = check(&history, Model::Kv, Some(Duration::from_secs(10))).expect("valid");
        let SequentialVerdict::Sequential { order } = &result.verdict else {
            panic!("lag {lag:?}: {}", result.explain(&history))
        };
        super::tests::assert_witness(&history, Model::Kv, order);
    }
}
