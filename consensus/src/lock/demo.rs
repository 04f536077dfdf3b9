//! `dslab demo distributed-lock`: a lock holder pauses past its lease,
//! another takes the lock, the first wakes and writes — once to a store
//! that checks fencing tokens, once to one that does not.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::client::{EtcdClient, Session};
use super::fencing::{FencedStore, Fencing};
use crate::raft::demo::loopback_cluster;

const NODES: u64 = 3;
const LOCK: &[u8] = b"/locks/report";
const FILE: &str = "report.txt";

/// One line of the timeline.
struct Moment {
    at: Duration,
    a: String,
    b: String,
    fenced: String,
    unfenced: String,
}

fn verdict(result: &Result<i64, tonic::Status>) -> String {
    match result {
        Ok(_) => "accepted".into(),
        Err(status) => format!("REFUSED ({})", status.message()),
    }
}

/// Episode 16: Kleppmann's scenario, on the Raft KV's leases and locks.
pub async fn distributed_lock_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 16: a lock is not enough — the paused holder and the fencing token");
    out.say("Three Raft members on 127.0.0.1. Two clients, A and B, want the same lock to edit");
    out.say("one file. Each holds a lease kept alive in the background; the lock key is attached");
    out.say("to it. The file is written to two stores: one checks fencing tokens, one does not.");
    // Elections after 200–400 ms, so the shortest lease is one second.
    let (nodes, servers): (Vec<_>, Vec<_>) = loopback_cluster(NODES, Duration::from_millis(20))
        .await?
        .into_iter()
        .map(|(_, node, server)| (node, server))
        .unzip();
    nodes[0]
        .wait_for_leader(Duration::from_secs(10))
        .await
        .ok_or("no leader was elected")?;
    let uri = servers[0].uri();
    let endpoint = || {
        EtcdClient::new(
            ClientBuilder::new(Net::Tcp)
                .default_deadline(Duration::from_secs(30))
                .connect_lazy(uri.clone()),
        )
    };
    let fenced = FencedStore::new(Fencing::Enforced);
    let unfenced = FencedStore::new(Fencing::Off);
    let write = |value: &str, token: i64| {
        (
            fenced.write(FILE, value.as_bytes(), token),
            unfenced.write(FILE, value.as_bytes(), token),
        )
    };
    let started = Instant::now();
    let mut timeline = Vec::new();
    let mut moment = |a: &str, b: &str, fenced: String, unfenced: String| {
        timeline.push(Moment {
            at: started.elapsed(),
            a: a.into(),
            b: b.into(),
            fenced,
            unfenced,
        });
    };

    let a = endpoint();
    // A's lease starts no earlier than this; A pauses before its first
    // keep-alive, so the lease can run out no earlier than a TTL later.
    let granting = Instant::now();
    let session_a = Session::start(a.channel(), 1).await?;
    let ttl = session_a.ttl();
    let held_a = a.lock(LOCK, &session_a).await?;
    moment(
        &format!("locks; token {}", held_a.revision),
        "",
        String::new(),
        String::new(),
    );
    let (f, u) = write("A: first draft", held_a.revision);
    moment("writes draft 1", "", verdict(&f), verdict(&u));

    // B queues behind A, in its own task.
    let b = endpoint();
    let session_b = Session::start(b.channel(), ttl).await?;
    let waiting_b = {
        let b = b.clone();
        let lease = session_b.lease();
        tokio::spawn(async move {
            let held = super::recipe::acquire(&b, LOCK, lease, &[]).await;
            (held, Instant::now())
        })
    };
    moment("", "asks for the lock; waits", String::new(), String::new());

    // A stops the world: no keep-alives, no progress, for three TTLs.
    session_a.freeze();
    let paused = Instant::now();
    moment("GC pause begins", "", String::new(), String::new());
    let pause = Duration::from_secs(3 * ttl as u64);
    let (held_b, acquired_b) = waiting_b.await?;
    let held_b = held_b?;
    let waited = acquired_b.duration_since(granting);
    moment(
        "(paused)",
        &format!("locks after A's lease ran out; token {}", held_b.revision),
        String::new(),
        String::new(),
    );
    let (f, u) = write("B: the real report", held_b.revision);
    moment("(paused)", "writes its report", verdict(&f), verdict(&u));
    tokio::time::sleep(pause.saturating_sub(paused.elapsed())).await;
    moment(
        "wakes; still believes it holds the lock",
        "",
        String::new(),
        String::new(),
    );
    let (stale_fenced, stale_unfenced) = write("A: stale draft 2", held_a.revision);
    moment(
        &format!("writes draft 2 with token {}", held_a.revision),
        "",
        verdict(&stale_fenced),
        verdict(&stale_unfenced),
    );
    b.unlock(&held_b).await?;
    session_b.close().await?;

    out.table(
        &[
            "time",
            "client A",
            "client B",
            "fenced store",
            "unfenced store",
        ],
        &timeline
            .iter()
            .map(|m| {
                vec![
                    format!("{:>5} ms", m.at.as_millis()),
                    m.a.clone(),
                    m.b.clone(),
                    m.fenced.clone(),
                    m.unfenced.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let text = |store: &FencedStore| {
        store
            .read(FILE)
            .map(|(value, _)| String::from_utf8_lossy(&value).into_owned())
            .unwrap_or_default()
    };
    out.say(&format!(
        "The file now reads {:?} in the fenced store and {:?} in the unfenced one.",
        text(&fenced),
        text(&unfenced)
    ));

    out.check(
        "B got the lock only after A's lease ran out",
        waited >= Duration::from_secs(ttl as u64),
        format!(
            "{} ms after A's lease was granted, {} ms into A's pause (TTL {ttl} s)",
            waited.as_millis(),
            acquired_b.duration_since(paused).as_millis()
        ),
    );
    out.check(
        "B's fencing token is larger than A's",
        held_b.revision > held_a.revision,
        format!("{} > {}", held_b.revision, held_a.revision),
    );
    out.check(
        "the fenced store refused the paused holder's write",
        stale_fenced
            .as_ref()
            .is_err_and(|s| s.code() == tonic::Code::FailedPrecondition),
        verdict(&stale_fenced),
    );
    out.check(
        "the unfenced store let it overwrite B's report (a lost update)",
        stale_unfenced.is_ok() && text(&unfenced) == "A: stale draft 2",
        format!("it holds {:?}", text(&unfenced)),
    );
    out.check(
        "the fenced store kept B's report",
        text(&fenced) == "B: the real report",
        format!("it holds {:?}", text(&fenced)),
    );
    for node in &nodes {
        node.stop().await;
    }
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}
