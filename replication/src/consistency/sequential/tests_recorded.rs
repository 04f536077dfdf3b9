//! Real runs: the stale register, recorded, judged by both checkers.
//!
//! Time is tokio's paused clock, so every run is the same run: the
//! replica applies each write exactly `lag` after the primary took it.

use std::time::Duration;

use tonic::Request;

use super::*;
use crate::consistency::history::Reply;
use crate::consistency::recorder::{ClientError, KvClient, Recorder};
use crate::consistency::{Verdict, check as check_linearizable};
use crate::proto::register_server::Register as RegisterService;
use crate::proto::{AppendRequest, GetRequest, PutRequest};
use crate::register::stale::StaleRegister;

/// The stale register called in-process: the recorder sees the same
/// replies a gRPC client would, without a network in the way.
pub(super) struct Direct(pub(super) StaleRegister);

impl KvClient for Direct {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        let request = Request::new(GetRequest {
            key: key.to_owned(),
        });
        let reply = RegisterService::get(&self.0, request).await;
        reply
            .map(|r| r.into_inner().value)
            .map_err(|s| ClientError::from_status(&s))
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let request = Request::new(PutRequest {
            key: key.to_owned(),
            value: value.to_owned(),
        });
        let reply = RegisterService::put(&self.0, request).await;
        reply.map(drop).map_err(|s| ClientError::from_status(&s))
    }

    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let request = Request::new(AppendRequest {
            key: key.to_owned(),
            value: value.to_owned(),
        });
        let reply = RegisterService::append(&self.0, request).await;
        reply.map(drop).map_err(|s| ClientError::from_status(&s))
    }
}

const LAGS_MS: [u64; 3] = [5, 30, 200];

/// One client writes three values and reads each back right away, from
/// the lagging replica: it misses its own write. With one client program
/// order is the whole order, so no story explains it — read-your-writes
/// is part of sequential consistency.
#[tokio::test(start_paused = true)]
async fn sequential_recorded_stale_register_misses_your_own_write() {
    for lag in LAGS_MS.map(Duration::from_millis) {
        let recorder = Recorder::new();
        let mut client = recorder.client(1, Direct(StaleRegister::new(lag)));
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
        let mut writer = recorder.client(1, Direct(store.clone()));
        let mut reader = recorder.client(2, Direct(store));
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
