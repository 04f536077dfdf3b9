//! `dslab demo speed-of-light`: the floor under every round trip, and the
//! Raft KV's commit latency for three placements across regions.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net};
use observability::telemetry::SpanCapture;
use patterns::physics::{
    FIBRE_KM_PER_SECOND, LatencyMatrix, commit_latency, find_city, great_circle_km,
    leaders_by_latency, one_way_floor, rtt_floor,
};

use super::{PLACEMENTS, WRITES, figures, verdict};
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

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

pub(super) fn median(values: &[Duration]) -> Duration {
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

/// Commit latencies a client next to `leader` sees, in pairs: one write
/// with every link at zero delay (the loopback overhead: gRPC, the Raft
/// loop, a busy machine), then one with the links at their floors — so
/// both samples see the same load. One untimed write first: a new
/// leader's first append probes each follower.
async fn commits_at(
    address: &str,
    links: impl Fn(bool),
) -> Result<(Vec<Duration>, Vec<Duration>), Box<dyn std::error::Error + Send + Sync>> {
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
    let (mut commits, mut overheads) = (Vec::new(), Vec::new());
    for n in 0..WRITES {
        for (delayed, samples) in [(false, &mut overheads), (true, &mut commits)] {
            links(delayed);
            let started = tokio::time::Instant::now();
            kv.put(put(format!("k{n}-{delayed}"))).await?;
            samples.push(started.elapsed());
        }
    }
    Ok((commits, overheads))
}

/// One measured leader: its 0-based site, the model, the commits over the
/// emulated links and the same writes' loopback overhead.
pub(super) struct Measured {
    pub(super) leader: usize,
    pub(super) model: Duration,
    pub(super) commits: Vec<Duration>,
    pub(super) overheads: Vec<Duration>,
}

impl Measured {
    /// The median commit less the median loopback overhead: what the
    /// links themselves cost.
    pub(super) fn net(&self) -> Duration {
        median(&self.commits).saturating_sub(median(&self.overheads))
    }
}

/// Starts the placement on 127.0.0.1 with every link delayed by its
/// one-way floor, measures the first leader elected, then moves the
/// leadership to the fastest site and measures again.
async fn measure(
    matrix: &LatencyMatrix,
) -> Result<Vec<Measured>, Box<dyn std::error::Error + Send + Sync>> {
    let members = loopback_cluster(matrix.len() as u64, Duration::from_millis(100)).await?;
    // Raft survives the reordering that switching delays mid-stream causes
    // (a late append is refused and resent); it is what Raft is for.
    let links = |delayed: bool| {
        for (id, node, _) in &members {
            for (peer, _, _) in &members {
                if peer != id {
                    let one_way = matrix.one_way(*id as usize - 1, *peer as usize - 1);
                    node.set_link_delay(*peer, if delayed { one_way } else { Duration::ZERO });
                }
            }
        }
    };
    links(true);
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
        let (commits, overheads) = commits_at(&address(leader).ok_or("no address")?, links).await?;
        measured.push(Measured {
            leader: leader as usize - 1,
            model: commit_latency(matrix, leader as usize - 1),
            commits,
            overheads,
        });
    }
    for (_, node, server) in members {
        node.stop().await;
        server.shutdown().await?;
    }
    Ok(measured)
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
            let cell = |f: &dyn Fn(&Measured) -> Duration| {
                seen.map_or("—".into(), |m| format!("{:.1}", ms(f(m))))
            };
            rows.push(vec![
                format!("n{} {}", candidate.leader + 1, candidate.site),
                format!("{:.1}", ms(candidate.commit)),
                cell(&|m| median(&m.commits)),
                cell(&|m| median(&m.overheads)),
                cell(&Measured::net),
            ]);
        }
        out.table(
            &[
                "leader",
                "model ms (majority RTT)",
                "measured median ms",
                "loopback ms",
                "less loopback",
            ],
            &rows,
        );
        for m in &measured {
            verdict::judge(out, &matrix, m);
        }
        if let Some(best) = measured.last() {
            best_measured.push((name, best.net()));
        }
        placements.push((model, measured));
    }
    figures::draw(out, &placements);
    if let [(three, three_ms), .., (five, five_ms)] = best_measured.as_slice() {
        out.check(
            "five replicas with a continental majority commit faster than three across oceans (less loopback)",
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
