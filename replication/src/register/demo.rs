//! `dslab demo linearizability`: record two registers, judge both.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net, RpcServer, ServerHandle};
use observability::telemetry::SpanCapture;

use super::proto::FILE_DESCRIPTOR_SET;
use super::proto::register_server::RegisterServer;
use super::stale::StaleRegister;
use super::{Register, RegisterKv};
use crate::consistency::recorder::{KvClient, Recorder};
use crate::consistency::session::check_sessions;
use crate::consistency::{CheckResult, History, Model, Verdict, check, timeline};

/// Runs 4 clients × 12 append/get pairs on 2 keys against `server`.
async fn workload(server: &ServerHandle) -> History {
    let recorder = Recorder::new();
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let mut kv = recorder.client(
                client,
                RegisterKv::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri())),
            );
            tokio::spawn(async move {
                for i in 0..12 {
                    let key = if (client + i) % 2 == 0 { "x" } else { "y" };
                    // Unique tokens make versions visible to the checkers.
                    let _ = kv.append(key, &format!("[{client}.{i}]")).await;
                    let _ = kv.get(key).await;
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.await;
    }
    recorder.history()
}

async fn serve<S>(service: RegisterServer<S>) -> Result<ServerHandle, observability::Error>
where
    S: super::proto::register_server::Register,
{
    Ok(RpcServer::new()
        .add_service(service, FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?
        .spawn())
}

/// Episode 19: the same workload against a linearizable register and a
/// replica-reading one; the checker tells them apart.
pub async fn linearizability_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 19: is what the clients saw possible?");
    out.say("Four clients each append 12 tokens to keys x and y, reading the key back after every append,");
    out.say("against two registers on 127.0.0.1: one copy under one lock, and a primary whose reads are");
    out.say(
        "served by a replica 20 ms behind. Every call is recorded with its start, end and reply.",
    );

    let sound = serve(Register::new().into_service()).await?;
    let stale = serve(StaleRegister::new(Duration::from_millis(20)).into_service()).await?;
    let (sound_history, stale_history) = (workload(&sound).await, workload(&stale).await);
    sound.shutdown().await?;
    stale.shutdown().await?;

    let budget = Some(Duration::from_secs(10));
    let sound_result = check(&sound_history, Model::Kv, budget)?;
    let stale_result = check(&stale_history, Model::Kv, budget)?;
    let rows = [
        ("one copy, one lock", &sound_history, &sound_result),
        (
            "reads from a lagging replica",
            &stale_history,
            &stale_result,
        ),
    ]
    .iter()
    .map(|(name, history, result): &(&str, &History, &CheckResult)| {
        let verdict = match result.verdict {
            Verdict::Linearizable { .. } => "linearizable",
            Verdict::NotLinearizable(_) => "NOT linearizable",
            Verdict::Unknown { .. } => "unknown",
        };
        vec![
            (*name).to_owned(),
            history.operations.len().to_string(),
            verdict.to_owned(),
            format!("{:.1?}", result.elapsed),
        ]
    })
    .collect::<Vec<_>>();
    out.table(&["register", "operations", "verdict", "checked in"], &rows);

    out.section("The checker's explanation for the replica-reading register");
    out.block(&stale_result.explain(&stale_history));
    let session = check_sessions(&stale_history)?;
    if let Some(first) = session.first() {
        out.say(&format!(
            "Session checkers agree: {} broken promises, e.g. {}: {}.",
            session.len(),
            first.guarantee,
            first.explanation
        ));
    }
    let page = std::env::temp_dir().join("dslab-linearizability.html");
    if std::fs::write(
        &page,
        timeline::html(
            &stale_history,
            Some(&stale_result),
            "Reads from a lagging replica",
        ),
    )
    .is_ok()
    {
        out.say(&format!(
            "Timeline with the failing operations highlighted: {}",
            page.display()
        ));
    }

    out.check(
        "the one-copy register's history is linearizable",
        matches!(sound_result.verdict, Verdict::Linearizable { .. })
            && check_sessions(&sound_history)?.is_empty(),
        format!(
            "{} operations, witness order found",
            sound_history.operations.len()
        ),
    );
    out.check(
        "the replica-reading register is caught: not linearizable",
        matches!(stale_result.verdict, Verdict::NotLinearizable(_)),
        "a read returned a value no valid order explains",
    );
    out.check(
        "and it breaks read-your-writes for its clients",
        session
            .iter()
            .any(|v| v.guarantee == crate::consistency::session::Guarantee::ReadYourWrites),
        format!("{} session violations", session.len()),
    );
    Ok(())
}
