//! `dslab demo speed-of-light`: the floor under every round trip, and the
//! Raft KV's commit latency for three placements across regions.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net};
use observability::telemetry::SpanCapture;
use patterns::physics::{
    FIBRE_KM_PER_SECOND, LatencyMatrix, commit_latency, commit_latency_waiting_for, find_city,
    great_circle_km, leaders_by_latency, majority, one_way_floor, rtt_floor,
};

use super::{PLACEMENTS, WRITES, figures};
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

/// How far apart the majority model and the next-slower one (a quorum
/// miscounted by one, or every follower) must be for a measurement to tell
/// them apart: a commit is judged by which model it sits nearer, so this
/// leaves half of it, 7.5 ms, for what subtracting the loopback overhead
/// does not remove (timer rounding, a busy scheduler) — and a leader whose
/// candidates are closer is shown, not claimed.
const MIN_GAP: Duration = Duration::from_millis(15);

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

/// The slower model a measurement at `leader` can be told apart from, by
/// name: one follower past the majority, else every follower; `None` when
/// both sit within [`MIN_GAP`] of the majority.
fn rival(matrix: &LatencyMatrix, leader: usize) -> Option<(&'static str, Duration)> {
    let needed = majority(matrix.len()) - 1;
    let model = commit_latency(matrix, leader);
    let every = matrix.len() - 1;
    let one_more = if needed + 1 == every {
        "every follower"
    } else {
        "one follower past the majority"
    };
    [(one_more, needed + 1), ("every follower", every)]
        .into_iter()
        .filter_map(|(name, followers)| {
            commit_latency_waiting_for(matrix, leader, followers).map(|wait| (name, wait))
        })
        .find(|(_, wait)| *wait >= model + MIN_GAP)
}

/// The claims about one measured leader: no commit beats the floor, and
/// the commits (less the loopback overhead) sit nearer the majority round
/// trip than the slower model a miscounted quorum would follow.
fn judge(out: &mut Narrator, matrix: &LatencyMatrix, m: &Measured) {
    let site = matrix.sites()[m.leader].name;
    let fastest = m.commits.iter().min().copied().unwrap_or_default();
    out.check(
        format!("leader at {site}: no commit beats the floor"),
        fastest >= m.model,
        format!(
            "fastest {:.1} ms ≥ floor {:.1} ms",
            ms(fastest),
            ms(m.model)
        ),
    );
    let net = m.net();
    let Some((name, wait)) = rival(matrix, m.leader) else {
        out.say(&format!(
            "  leader at {site}: every slower quorum is within {} ms of the majority's {:.1} ms — too close to tell apart here, so shown, not claimed",
            MIN_GAP.as_millis(),
            ms(m.model)
        ));
        return;
    };
    let midpoint = m.model + (wait - m.model) / 2;
    out.check(
        format!("leader at {site}: commits wait for a majority, not {name}"),
        net < midpoint,
        format!(
            "median {:.1} − loopback {:.1} = {:.1} ms: nearer the majority's {:.1} than {name}'s {:.1}",
            ms(median(&m.commits)),
            ms(median(&m.overheads)),
            ms(net),
            ms(m.model),
            ms(wait)
        ),
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
            judge(out, &matrix, m);
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
