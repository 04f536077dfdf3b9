//! `dslab demo consistency-models`: one stale register, two workloads,
//! two checkers — linearizable, sequential, or neither.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;
use tonic::Request;

use super::{SequentialVerdict, check};
use crate::consistency::checker::{Verdict, check as check_linearizable};
use crate::consistency::recorder::{ClientError, KvClient, Recorder};
use crate::consistency::{History, Model};
use crate::proto::register_server::Register as RegisterService;
use crate::proto::{AppendRequest, GetRequest, PutRequest};
use crate::register::stale::StaleRegister;

/// The stale register called in-process: the recorder sees the replies
/// a gRPC client would, with no network to add timing noise.
pub(crate) struct InProcess(pub(crate) StaleRegister);

impl KvClient for InProcess {
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

/// Far longer than an in-process call: every read right after a write
/// is served by a replica that has not seen it.
const LAG: Duration = Duration::from_millis(300);

/// Client 1 only appends, client 2 only reads, at the same time.
async fn writer_and_reader() -> Result<History, ClientError> {
    let recorder = Recorder::new();
    let store = StaleRegister::new(LAG);
    let mut writer = recorder.client(1, InProcess(store.clone()));
    let mut reader = recorder.client(2, InProcess(store));
    let writes = async {
        for token in ["a", "b", "c", "d"] {
            writer.append("k", token).await?;
            tokio::time::sleep(LAG / 4).await;
        }
        Ok::<_, ClientError>(())
    };
    let reads = async {
        for _ in 0..8 {
            reader.get("k").await?;
            tokio::time::sleep(LAG / 4).await;
        }
        Ok(())
    };
    let (written, read) = tokio::join!(writes, reads);
    written.and(read)?;
    Ok(recorder.history())
}

/// One client writes and reads its write straight back.
async fn read_your_write() -> Result<History, ClientError> {
    let recorder = Recorder::new();
    let mut client = recorder.client(1, InProcess(StaleRegister::new(LAG)));
    client.put("k", "mine").await?;
    client.get("k").await?;
    Ok(recorder.history())
}

/// Episode 19: the stale register is never linearizable, sequential for
/// a reader that only reads, and not even that for a client that misses
/// its own write.
pub async fn consistency_models_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 19: linearizable, sequential, or neither?");
    out.say(
        "A register that acknowledges writes from a primary and serves reads from a replica 300 ms",
    );
    out.say(
        "behind. Two workloads are recorded: a writer and a reader at once, and one client reading",
    );
    out.say("its own write back. Each history goes to both checkers.");
    let pair = writer_and_reader().await.map_err(|e| format!("{e:?}"))?;
    let own = read_your_write().await.map_err(|e| format!("{e:?}"))?;
    let budget = Some(Duration::from_secs(10));
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for (name, history) in [("writer + reader", &pair), ("read your own write", &own)] {
        let linearizable = check_linearizable(history, Model::Kv, budget)?;
        let sequential = check(history, Model::Kv, budget)?;
        rows.push(vec![
            name.to_owned(),
            history.operations.len().to_string(),
            format!(
                "{:?}",
                matches!(linearizable.verdict, Verdict::Linearizable { .. })
            ),
            sequential.verdict_name().to_owned(),
        ]);
        verdicts.push((linearizable.verdict, sequential));
    }
    out.table(
        &[
            "workload",
            "operations",
            "linearizable",
            "sequential checker",
        ],
        &rows,
    );
    let [(pair_lin, pair_seq), (own_lin, own_seq)] =
        <[_; 2]>::try_from(verdicts).map_err(|_| "two workloads")?;
    out.section("Why the reader's history is sequential");
    out.say("Its stale reads come in write order, so one story fits: each read goes before the writes it missed.");
    out.section("Why the read-your-write history is not");
    out.block(&own_seq.explain(&own));
    out.check(
        "stale reads make the writer + reader history not linearizable",
        matches!(pair_lin, Verdict::NotLinearizable(_)),
        "a read missed a write that had completed",
    );
    out.check(
        "yet it is sequentially consistent: one order keeps both clients' program order",
        matches!(pair_seq.verdict, SequentialVerdict::Sequential { .. }),
        format!("witness of {} operations", pair.operations.len()),
    );
    out.check(
        "a client that misses its own write is neither linearizable nor sequential",
        matches!(own_lin, Verdict::NotLinearizable(_))
            && matches!(own_seq.verdict, SequentialVerdict::NotSequential(_)),
        "program order puts the write before the read",
    );
    Ok(())
}
