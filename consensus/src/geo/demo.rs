//! `dslab demo speed-of-light`: the floor under every round trip, and the
//! Raft KV's commit latency for three placements across regions.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net};
use observability::telemetry::SpanCapture;
use patterns::physics::{
    FIBRE_KM_PER_SECOND, LatencyMatrix, LeaderLatency, commit_latency, find_city, great_circle_km,
    leaders_by_latency, one_way_floor, rtt_floor,
};

use super::{PLACEMENTS, WRITES};
use crate::proto::etcdserverpb::PutRequest;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::raft::RaftNode;
use crate::raft::demo::loopback_cluster;

/// City pairs for the table of floors.
const PAIRS: [(&str, &str); 8] = [
    ("new-york", "ashburn"),
    ("london", "frankfurt"),
    ("new-york", "london"),
    ("san-francisco", "tokyo"),
    ("tokyo", "singapore"),
    ("sao-paulo", "london"),
    ("london", "sydney"),
    ("johannesburg", "mumbai"),
];

/// What the demo allows above the model: loopback gRPC, the Raft loop and
/// a busy laptop add a little to every commit; a wrong model would be off
/// by tens of milliseconds.
const SLACK: Duration = Duration::from_millis(20);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn floors(out: &mut Narrator) -> DemoResult {
    out.section("The floor: light in fibre covers ~204 km per millisecond (c / 1.47)");
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for (a, b) in PAIRS {
        let km = great_circle_km(&find_city(a)?, &find_city(b)?);
        rows.push(vec![
            format!("{a} – {b}"),
            format!("{km:.0}"),
            format!("{:.1}", ms(one_way_floor(km))),
            format!("{:.1}", ms(rtt_floor(km))),
        ]);
        points.push((km, ms(rtt_floor(km))));
    }
    out.table(
        &[
            "pair",
            "great circle, km",
            "one way ≥ ms",
            "round trip ≥ ms",
        ],
        &rows,
    );
    out.say(&format!(
        "every round trip ≥ 2 × distance / {FIBRE_KM_PER_SECOND:.0} km/s; real routes run 1.3–2× longer"
    ));
    points.sort_by(|x, y| x.0.total_cmp(&y.0));
    out.figure(
        "speed-of-light-floor",
        &LineChart::new(
            "Round-trip floor against distance",
            "great circle (km)",
            "RTT floor (ms)",
        )
        .series(Series::marked("c / 1.47, there and back", points)),
    );
    Ok(())
}

/// Commit latencies a client next to `leader` sees (after one untimed
/// write: a new leader's first append probes each follower).
async fn commits_at(
    address: &str,
) -> Result<Vec<Duration>, Box<dyn std::error::Error + Send + Sync>> {
    let mut kv = KvClient::new(
        ClientBuilder::new(Net::Tcp)
            .default_deadline(Duration::from_secs(5))
            .dial(address)?,
    );
    let put = |key: String| PutRequest {
        key: key.into_bytes(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    };
    kv.put(put("warm-up".into())).await?;
    let mut commits = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let started = tokio::time::Instant::now();
        kv.put(put(format!("k{n}"))).await?;
        commits.push(started.elapsed());
    }
    Ok(commits)
}

/// One measured leader: its 0-based site, the model, the measured commits.
struct Measured {
    leader: usize,
    model: Duration,
    commits: Vec<Duration>,
}

/// Starts the placement on 127.0.0.1 with every link delayed by its
/// one-way floor, measures the first leader elected, then moves the
/// leadership to the fastest site and measures again.
async fn measure(
    matrix: &LatencyMatrix,
) -> Result<Vec<Measured>, Box<dyn std::error::Error + Send + Sync>> {
    let members = loopback_cluster(matrix.len() as u64, Duration::from_millis(100)).await?;
    for (id, node, _) in &members {
        for (peer, _, _) in &members {
            if peer != id {
                node.set_link_delay(*peer, matrix.one_way(*id as usize - 1, *peer as usize - 1));
            }
        }
    }
    let node = |id: u64| -> Result<&RaftNode, String> {
        members
            .iter()
            .find(|m| m.0 == id)
            .map(|m| &m.1)
            .ok_or(format!("no member {id}"))
    };
    let address = |id: u64| {
        members
            .iter()
            .find(|m| m.0 == id)
            .map(|m| m.2.local_addr().to_string())
    };
    let elected = node(1)?
        .wait_for_leader(Duration::from_secs(15))
        .await
        .ok_or("no leader was elected")?;
    let best = leaders_by_latency(matrix)[0].leader as u64 + 1;
    let mut measured = Vec::new();
    for leader in if elected == best {
        vec![best]
    } else {
        vec![elected, best]
    } {
        if node(1)?.status().leader != leader {
            node(node(1)?.status().leader)?
                .transfer_leader(leader)
                .await?;
            let mut status = node(leader)?.watch_status();
            tokio::time::timeout(
                Duration::from_secs(10),
                status.wait_for(|s| s.role == crate::raft::Role::Leader),
            )
            .await
            .map_err(|_| format!("leadership did not move to {leader}"))??;
        }
        let commits = commits_at(&address(leader).ok_or("no address")?).await?;
        measured.push(Measured {
            leader: leader as usize - 1,
            model: commit_latency(matrix, leader as usize - 1),
            commits,
        });
    }
    for (_, node, server) in members {
        node.stop().await;
        server.shutdown().await?;
    }
    Ok(measured)
}

/// Two figures: per placement, the fastest leader's commit (model and
/// measured) and the slowest leader's model; and every measured leader
/// against its floor, with the line no point may fall below.
fn draw(out: &mut Narrator, placements: &[(Vec<LeaderLatency>, Vec<Measured>)]) {
    let mut best_model = Vec::new();
    let mut best_seen = Vec::new();
    let mut worst_model = Vec::new();
    let mut against_floor = LineChart::new(
        "Measured Raft commits against the majority-RTT floor",
        "floor: majority round trip (ms)",
        "measured median commit (ms)",
    );
    // The line runs past the points, so the legend (top right) covers
    // only the line.
    let mut top: f64 = 0.0;
    for (index, ((name, _), (model, measured))) in PLACEMENTS.iter().zip(placements).enumerate() {
        let x = (index + 1) as f64;
        if let (Some(first), Some(last)) = (model.first(), model.last()) {
            best_model.push((x, ms(first.commit)));
            worst_model.push((x, ms(last.commit)));
            if let Some(seen) = measured.iter().find(|m| m.leader == first.leader) {
                best_seen.push((x, ms(median(&seen.commits))));
            }
        }
        let mut points: Vec<(f64, f64)> = measured
            .iter()
            .map(|m| (ms(m.model), ms(median(&m.commits))))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        top = points.iter().fold(top, |t, p| t.max(p.1));
        against_floor = against_floor.series(Series::marked(*name, points));
    }
    out.figure(
        "speed-of-light-placements",
        &LineChart::new(
            "Commit latency by placement (1: 3 across oceans, 2: 5 in pairs, 3: 5 with a continental majority)",
            "placement",
            "commit latency (ms)",
        )
        .series(Series::marked("fastest leader — model (floor)", best_model))
        .series(Series::marked("fastest leader — measured on Raft", best_seen))
        .series(Series::marked("slowest leader — model (floor)", worst_model)),
    );
    out.figure(
        "speed-of-light-measured-vs-floor",
        &against_floor.series(Series::line(
            "the floor (measured = floor)",
            vec![(0.0, 0.0), (top * 1.5, top * 1.5)],
        )),
    );
}

/// The demo.
pub async fn speed_of_light_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    floors(out)?;
    let mut best_measured = Vec::new();
    let mut placements = Vec::new();
    for (name, sites) in PLACEMENTS {
        out.section(&format!("{name}: {}", sites.join(", ")));
        let matrix = LatencyMatrix::from_sites(sites)?;
        let model = leaders_by_latency(&matrix);
        let measured = measure(&matrix).await?;
        let mut rows = Vec::new();
        for candidate in &model {
            let seen = measured.iter().find(|m| m.leader == candidate.leader);
            rows.push(vec![
                format!("n{} {}", candidate.leader + 1, candidate.site),
                format!("{:.1}", ms(candidate.commit)),
                seen.map_or("—".into(), |m| format!("{:.1}", ms(median(&m.commits)))),
            ]);
        }
        out.table(
            &["leader", "model ms (majority RTT)", "measured median ms"],
            &rows,
        );
        for m in &measured {
            let fastest = m.commits.iter().min().copied().unwrap_or_default();
            let typical = median(&m.commits);
            out.check(
                format!("leader at {}: no commit beats the floor", sites[m.leader]),
                fastest >= m.model,
                format!(
                    "fastest {:.1} ms ≥ floor {:.1} ms",
                    ms(fastest),
                    ms(m.model)
                ),
            );
            out.check(
                format!(
                    "leader at {}: commits take the majority round trip",
                    sites[m.leader]
                ),
                typical <= m.model.mul_f64(1.1) + SLACK,
                format!("median {:.1} ms, model {:.1} ms", ms(typical), ms(m.model)),
            );
        }
        if let Some(best) = measured.last() {
            best_measured.push((name, median(&best.commits)));
        }
        placements.push((model, measured));
    }
    draw(out, &placements);
    if let [(three, three_ms), .., (five, five_ms)] = best_measured.as_slice() {
        out.check(
            "five replicas with a continental majority commit faster than three across oceans",
            five_ms < three_ms,
            format!(
                "{five}: {:.1} ms, {three}: {:.1} ms",
                ms(*five_ms),
                ms(*three_ms)
            ),
        );
    }
    Ok(())
}
