//! `dslab demo quorum-tradeoffs`: PACELC in numbers — what R and W buy
//! and cost under a partition and a slow replica.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::{LinkCuts, LocalCluster, QuorumSession, Resolution};
use crate::clock::ReplicaId;
use crate::consistency::recorder::{KvClient, Recorder};
use crate::consistency::session::{Guarantee, check_sessions};
use crate::consistency::{Model, Verdict, check};

/// How late the slow replica (node 3) answers its peers.
const SLOW: Duration = Duration::from_millis(100);
/// How long a coordinator waits for a peer (the partitioned one never answers).
const PEER_TIMEOUT: Duration = Duration::from_millis(200);
/// Append-then-read rounds per setting.
const ROUNDS: usize = 8;

/// What one (R, W) setting did.
struct Outcome {
    r: u32,
    w: u32,
    writes: Vec<Duration>,
    reads: Vec<Duration>,
    failed: usize,
    stale: usize,
    linearizable: Option<bool>,
    read_your_writes: bool,
}

fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied()
}

fn show(latency: Option<Duration>) -> String {
    latency.map_or_else(|| "—".to_owned(), |latency| format!("{:.0?}", latency))
}

/// Three nodes, N = 3: node 2 cut off from the others, node 3 slow. One
/// client appends a token through node 1, then reads through node 3.
async fn run(r: u32, w: u32) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let cuts = LinkCuts::default();
    let members: Vec<ReplicaId> = (1..=3).map(ReplicaId).collect();
    cuts.partition(&[ReplicaId(2)], &members);
    let cluster = LocalCluster::start(3, |i, config| {
        config.anti_entropy_interval = None;
        config.peer_timeout = PEER_TIMEOUT;
        config.cuts = cuts.clone();
        if i == 2 {
            config.peer_delay = SLOW;
        }
    })
    .await?;
    let recorder = Recorder::new();
    let session =
        |i| QuorumSession::new(cluster.client(i), r, w, false, Resolution::LastWriterWins);
    // Both halves are one client's session: one program order.
    let mut writer = recorder.client(1, session(0));
    let mut reader = recorder.client(1, session(2));
    let mut outcome = Outcome {
        r,
        w,
        writes: Vec::new(),
        reads: Vec::new(),
        failed: 0,
        stale: 0,
        linearizable: None,
        read_your_writes: true,
    };
    let mut written = String::new();
    for round in 0..ROUNDS {
        let token = format!("[{round}]");
        let started = Instant::now();
        if writer.append("cart", &token).await.is_ok() {
            outcome.writes.push(started.elapsed());
            written.push_str(&token);
        } else {
            outcome.failed += 1;
        }
        let started = Instant::now();
        match reader.get("cart").await {
            Ok(seen) => {
                outcome.reads.push(started.elapsed());
                if seen != written {
                    outcome.stale += 1;
                }
            }
            Err(_) => outcome.failed += 1,
        }
    }
    cluster.shutdown().await;
    let history = recorder.history();
    outcome.linearizable = match check(&history, Model::Kv, Some(Duration::from_secs(10)))?.verdict
    {
        Verdict::Linearizable { .. } => Some(true),
        Verdict::NotLinearizable(_) => Some(false),
        Verdict::Unknown { .. } => None,
    };
    outcome.read_your_writes = !check_sessions(&history)?
        .iter()
        .any(|violation| violation.guarantee == Guarantee::ReadYourWrites);
    Ok(outcome)
}

/// Episodes 14, 19: the same client, the same faults, three (R, W)
/// settings; latency, staleness and the checkers' verdicts side by side.
pub async fn quorum_tradeoffs_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 14: tunable consistency, and what it costs");
    out.say("Three quorum-KV nodes on 127.0.0.1, N = 3. Node 2 is cut off from the other nodes (a");
    out.say(&format!(
        "partition), node 3 answers its peers {SLOW:?} late (a slow replica). One client appends a token"
    ));
    out.say(
        "to a cart through node 1, then reads the cart through node 3, eight times per setting.",
    );
    out.say("Every call is recorded and judged by the linearizability and session checkers.");

    let mut outcomes = Vec::new();
    for (r, w) in [(1, 1), (2, 2), (3, 1)] {
        outcomes.push(run(r, w).await?);
    }
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                format!("R={} W={}", o.r, o.w),
                if o.r + o.w > 3 { "R+W>N" } else { "R+W≤N" }.to_owned(),
                show(median(&o.writes)),
                show(median(&o.reads)),
                format!("{}/{}", o.stale, o.reads.len()),
                o.failed.to_string(),
                match o.linearizable {
                    Some(true) => "linearizable",
                    Some(false) => "NOT linearizable",
                    None => "unknown",
                }
                .to_owned(),
                if o.read_your_writes { "kept" } else { "BROKEN" }.to_owned(),
            ]
        })
        .collect();
    out.table(
        &[
            "setting",
            "",
            "append p50",
            "read p50",
            "stale reads",
            "failed calls",
            "linearizability",
            "read-your-writes",
        ],
        &rows,
    );
    out.say(
        "R=W=1 answers from whichever copy is nearest: fast, and stale — node 3 has not applied",
    );
    out.say("the append when the read arrives. R=W=2 waits for a second copy: the write waits for the slow");
    out.say("node 3 (node 2 is unreachable), and every read meets every write. R=3 asks all three");
    out.say("copies and cannot have them during the partition: consistent, and unavailable (CAP).");

    let [weak, majority, all] = &outcomes[..] else {
        return Err("three settings ran".into());
    };
    out.check(
        "with R+W≤N the checkers catch stale reads",
        weak.stale > 0 && weak.linearizable == Some(false) && !weak.read_your_writes,
        format!(
            "{} of {} reads stale; linearizability: {:?}",
            weak.stale,
            weak.reads.len(),
            weak.linearizable
        ),
    );
    out.check(
        "with R+W>N (R=W=2) no read is stale and the history is linearizable",
        majority.stale == 0
            && majority.failed == 0
            && majority.linearizable == Some(true)
            && majority.read_your_writes,
        format!("{} reads, {} stale", majority.reads.len(), majority.stale),
    );
    let (weak_write, majority_write) = (median(&weak.writes), median(&majority.writes));
    out.check(
        "and pays for it in latency: its appends wait for the slow replica",
        matches!((weak_write, majority_write), (Some(fast), Some(slow)) if slow >= SLOW && fast < SLOW),
        format!(
            "append p50 {} (R=W=1) vs {} (R=W=2)",
            show(weak_write),
            show(majority_write)
        ),
    );
    out.check(
        "R=3 cannot read during the partition: consistency chosen over availability",
        all.reads.is_empty() && all.failed >= ROUNDS,
        format!(
            "{} reads answered; {} calls failed",
            all.reads.len(),
            all.failed
        ),
    );
    Ok(())
}
