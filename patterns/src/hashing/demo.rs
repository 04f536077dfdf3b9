//! `dslab demo consistent-hashing`: the deep dive's analysis, live.

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;

use super::analysis::{load, sample_keys};
use super::report::{HEADER, cells, measure};
use super::{Strategy, StrategyConfig};
use crate::sharding::HashSharding;
use crate::sharding::shuffle::ShuffleSharding;

const KEYS: u64 = 100_000;
const NODES: usize = 10;

/// Episodes 28, 24 and 1: balance, movement, bounded loads, shuffle sharding.
pub async fn consistent_hashing(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    let nodes: Vec<String> = (0..NODES).map(|i| format!("node-{i}")).collect();

    out.section("The lecture's ring, reproduced");
    out.say(
        "md5 of \"{node}:{i}\", 150 virtual nodes, bisect_right — the outline's Python, in Rust:",
    );
    let course = StrategyConfig::new(Strategy::CourseRing).build_with(&nodes)?;
    let placed: Vec<&str> = ["key-0", "key-1", "key-2"]
        .iter()
        .map(|k| course.owner(k.as_bytes()))
        .collect::<Result<_, _>>()?;
    out.check(
        "key-0, key-1, key-2 land on node-2, node-7, node-8, as the Python code says",
        placed == ["node-2", "node-7", "node-8"],
        placed.join(", "),
    );

    out.section(&format!(
        "Virtual nodes buy balance ({KEYS} keys, {NODES} nodes)"
    ));
    let mut spreads = Vec::new();
    let mut rows = Vec::new();
    for vnodes in [1, 10, 100, 150, 1000] {
        let config = StrategyConfig {
            vnodes,
            ..StrategyConfig::new(Strategy::Ring)
        };
        let report = load(config.build_with(&nodes)?.as_mut(), sample_keys(KEYS))?;
        spreads.push(report.stddev_over_mean);
        rows.push(vec![
            vnodes.to_string(),
            format!("{:.3}", report.max_over_mean),
            format!("{:.3}", report.stddev_over_mean),
        ]);
    }
    out.table(&["virtual nodes", "max/mean", "stddev/mean"], &rows);
    out.say("The spread falls roughly like 1/sqrt(V): 100 points per node already keep every node within ~15%.");
    out.check(
        "more virtual nodes, less spread (1 > 10 > 100, and 1000 below 100)",
        spreads[0] > spreads[1] && spreads[1] > spreads[2] && spreads[4] < spreads[2],
        format!(
            "stddev/mean {:.3} → {:.3} → {:.3} … {:.3}",
            spreads[0], spreads[1], spreads[2], spreads[4]
        ),
    );

    out.section("What moves when a node joins or leaves");
    let modulo_moved = {
        let (before, after) = (
            HashSharding::new(NODES as u32)?,
            HashSharding::new(NODES as u32 + 1)?,
        );
        sample_keys(KEYS)
            .filter(|k| before.shard(k.as_bytes()) != after.shard(k.as_bytes()))
            .count() as f64
            / KEYS as f64
    };
    out.say(&format!(
        "The broken twin first: hash(key) mod N, going from {NODES} to {} nodes, moves {:.1}% of all keys.",
        NODES + 1,
        modulo_moved * 100.0
    ));
    let mut measured = Vec::new();
    for strategy in Strategy::ALL {
        measured.push(measure(&StrategyConfig::new(strategy), &nodes, KEYS)?);
    }
    out.table(&HEADER, &measured.iter().map(cells).collect::<Vec<_>>());
    out.say("\"needless\" counts keys that moved between nodes that did not change. Jump renumbers its buckets");
    out.say("when a node leaves from the middle; Maglev's refill reshuffles a few slots; bounded loads depend");
    out.say("on arrival order.");
    let minimal_ok = measured
        .iter()
        .filter(|r| {
            matches!(
                r.strategy,
                Strategy::Ring | Strategy::CourseRing | Strategy::Rendezvous
            )
        })
        .all(|r| r.join_needless == 0 && r.leave_needless == 0);
    out.check(
        "ring, course-ring and rendezvous never move a key needlessly",
        minimal_ok,
        "needless = 0 on join and leave",
    );
    let near_ideal = measured
        .iter()
        .filter(|r| r.strategy != Strategy::Bounded)
        .all(|r| (r.join_moved - r.join_ideal).abs() / r.join_ideal <= 0.15);
    out.check(
        "a join moves within 15% of the ideal K/N for every stateless strategy",
        near_ideal,
        format!("ideal {:.2}%", 100.0 / (NODES + 1) as f64),
    );
    out.check(
        "mod-N moves most keys: the reason consistent hashing exists",
        modulo_moved > 0.85,
        format!("{:.1}% moved", modulo_moved * 100.0),
    );

    out.section("Bounded loads cap the hottest node");
    let one_point = StrategyConfig {
        vnodes: 1,
        ..StrategyConfig::new(Strategy::Ring)
    };
    let bounded_config = StrategyConfig {
        vnodes: 1,
        ..StrategyConfig::new(Strategy::Bounded)
    };
    let plain = load(one_point.build_with(&nodes)?.as_mut(), sample_keys(KEYS))?;
    let bounded = load(
        bounded_config.build_with(&nodes)?.as_mut(),
        sample_keys(KEYS),
    )?;
    let cap = (bounded_config.capacity_factor * KEYS as f64 / NODES as f64).ceil() as u64;
    out.table(
        &["ring, 1 virtual node", "hottest node", "max/mean"],
        &[
            vec![
                "plain".to_owned(),
                plain.max.to_string(),
                format!("{:.2}", plain.max_over_mean),
            ],
            vec![
                format!("bounded, c = {}", bounded_config.capacity_factor),
                bounded.max.to_string(),
                format!("{:.2}", bounded.max_over_mean),
            ],
        ],
    );
    out.check(
        format!("no node exceeds ⌈c·K/N⌉ = {cap} keys with bounded loads"),
        bounded.max <= cap && plain.max > cap,
        format!("bounded max {}, plain max {}", bounded.max, plain.max),
    );

    out.section("Shuffle sharding: the blast radius of a poison tenant");
    let shuffle = ShuffleSharding::numbered(8, 2)?;
    let exact = shuffle.overlap_distribution();
    let simulated = shuffle.simulate_overlaps(100_000);
    out.say("8 workers, 2 per tenant: C(8,2) = 28 distinct shards. If one tenant breaks its two workers,");
    out.say("how many of another tenant's workers go down with them?");
    let rows: Vec<Vec<String>> = (0..exact.len())
        .map(|j| {
            vec![
                j.to_string(),
                format!("{:.4}", exact[j]),
                format!("{:.4}", simulated[j]),
            ]
        })
        .collect();
    out.table(&["workers shared", "exact P", "simulated"], &rows);
    out.say(&format!(
        "Only {:.1}% of tenants lose everything (plain sharding into 4 pairs: 25%); {:.1}% lose one worker of two.",
        shuffle.full_outage_share() * 100.0,
        exact[1] * 100.0
    ));
    let agree = exact
        .iter()
        .zip(&simulated)
        .all(|(e, s)| (e - s).abs() < 0.01);
    out.check(
        "simulated overlaps match the hypergeometric formula",
        agree,
        "within 1 percentage point",
    );
    Ok(())
}
