//! Properties every strategy promises, tested across all of them.

use std::collections::BTreeMap;

use super::analysis::{MovementReport, join, leave, load, sample_keys};
use super::bounded::BoundedLoad;
use super::*;

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

fn keys(n: u64) -> Vec<String> {
    sample_keys(n).collect()
}

/// Owners of `key-0`, `key-1`, `""` and `user:42` among `node-0`…`node-9`:
/// the cross-platform contract. Changing a hash changes these.
const GOLDEN_RING: [&str; 4] = ["node-0", "node-4", "node-3", "node-9"];
const GOLDEN_JUMP: [&str; 4] = ["node-1", "node-7", "node-0", "node-1"];
const GOLDEN_RENDEZVOUS: [&str; 4] = ["node-6", "node-0", "node-2", "node-3"];
const GOLDEN_MAGLEV: [&str; 4] = ["node-2", "node-5", "node-5", "node-7"];

/// Strategies whose membership changes move only the keys they must.
const MINIMAL: [Strategy; 3] = [Strategy::Ring, Strategy::CourseRing, Strategy::Rendezvous];

/// Moved within 15 % of K/N, and no key moved needlessly — except for
/// Maglev, whose refill may move up to 1 % of keys between survivors.
fn assert_moves_about_k_over_n(strategy: Strategy, report: &MovementReport) {
    assert!(
        report.excess() <= 0.15,
        "{strategy}: moved {:.4}, ideal {:.4}",
        report.fraction,
        report.ideal
    );
    if strategy == Strategy::Maglev {
        assert!(
            report.needless as f64 <= 0.01 * report.keys as f64,
            "{strategy}: {report:?}"
        );
    } else {
        assert_eq!(report.needless, 0, "{strategy}: keys moved with no reason");
    }
}

/// Episode 28. A joining node takes keys only *to* itself, and about K/N
/// of them. Jump appends a bucket, so it qualifies; Maglev's refill
/// shuffles a few slots between survivors, so it is held to the K/N bound
/// and a small needless share.
#[test]
fn hashing_movement_join_only_moves_keys_to_the_new_node() {
    let (members, keys) = (nodes(10), keys(100_000));
    for strategy in MINIMAL
        .into_iter()
        .chain([Strategy::Jump, Strategy::Maglev])
    {
        let report =
            join(&StrategyConfig::new(strategy), &members, "node-new", &keys).expect("valid");
        assert_moves_about_k_over_n(strategy, &report);
    }
}

/// Episode 28. A leaving node's keys, and only those, move. Jump
/// renumbers the buckets after the departed one — shown failing here.
#[test]
fn hashing_movement_leave_only_moves_the_departed_nodes_keys() {
    let (members, keys) = (nodes(10), keys(100_000));
    for strategy in MINIMAL.into_iter().chain([Strategy::Maglev]) {
        let report =
            leave(&StrategyConfig::new(strategy), &members, "node-3", &keys).expect("valid");
        assert_moves_about_k_over_n(strategy, &report);
    }
    let jump = leave(
        &StrategyConfig::new(Strategy::Jump),
        &members,
        "node-3",
        &keys,
    )
    .expect("valid");
    assert!(jump.needless > jump.keys / 10, "jump renumbers: {jump:?}");
    let jump_last = leave(
        &StrategyConfig::new(Strategy::Jump),
        &members,
        "node-9",
        &keys,
    )
    .expect("valid");
    assert_eq!(
        jump_last.needless, 0,
        "removing the last bucket is fine: {jump_last:?}"
    );
}

/// Episode 28. Maglev and rendezvous spread a million keys over ten nodes
/// within 2 % of perfect.
#[test]
fn hashing_balance_maglev_and_rendezvous_within_two_percent() {
    for strategy in [Strategy::Maglev, Strategy::Rendezvous] {
        let mut placement = StrategyConfig::new(strategy)
            .build_with(&nodes(10))
            .expect("valid");
        let report = load(placement.as_mut(), sample_keys(1_000_000)).expect("members");
        assert!(
            report.max_over_mean <= 1.02,
            "{strategy}: max/mean {:.4}",
            report.max_over_mean
        );
    }
}

/// Virtual nodes are what balance a ring: more of them, less spread.
#[test]
fn hashing_balance_improves_with_virtual_nodes() {
    let spread = |vnodes| {
        let config = StrategyConfig {
            vnodes,
            ..StrategyConfig::new(Strategy::Ring)
        };
        let mut ring = config.build_with(&nodes(10)).expect("valid");
        load(ring.as_mut(), sample_keys(100_000))
            .expect("members")
            .stddev_over_mean
    };
    let (one, hundred, thousand) = (spread(1), spread(100), spread(1000));
    assert!(
        one > hundred && hundred > thousand,
        "{one} > {hundred} > {thousand}"
    );
    assert!(thousand < 0.05, "1000 vnodes: {thousand}");
}

/// Bounded loads never put more than ⌈c·K/N⌉ keys on a node, for any c,
/// even when the ring alone would overload one.
#[test]
fn hashing_bounded_never_exceeds_capacity() {
    let keys = 100_000u64;
    for factor in [1.0, 1.1, 1.25, 2.0] {
        let mut bounded = BoundedLoad::new(1, factor).expect("valid");
        for node in nodes(10) {
            bounded.add_node(&node, 1).expect("fresh");
        }
        let report = load(&mut bounded, sample_keys(keys)).expect("members");
        let cap = (factor * keys as f64 / 10.0).ceil() as u64;
        assert!(
            report.max <= cap,
            "c={factor}: max {} > cap {cap}",
            report.max
        );
    }
    let mut plain = StrategyConfig {
        vnodes: 1,
        ..StrategyConfig::new(Strategy::Ring)
    }
    .build_with(&nodes(10))
    .expect("valid");
    let unbounded = load(plain.as_mut(), sample_keys(keys)).expect("members");
    assert!(
        unbounded.max_over_mean > 1.25,
        "one vnode per node overloads someone: {}",
        unbounded.max_over_mean
    );
}

#[test]
fn hashing_bounded_weights_scale_capacity_and_release_frees_room() {
    let mut bounded = BoundedLoad::new(50, 1.0).expect("valid");
    bounded.add_node("small", 1).expect("ok");
    bounded.add_node("large", 3).expect("ok");
    load(&mut bounded, sample_keys(4_000)).expect("members");
    let loads: BTreeMap<_, _> = bounded.loads().into_iter().collect();
    assert_eq!(loads, BTreeMap::from([("large", 3_000), ("small", 1_000)]));
    bounded.release("small").expect("member");
    assert_eq!(bounded.assigned(), 3_999);
    assert_eq!(
        bounded.release("nobody"),
        Err(Error::UnknownNode {
            node: "nobody".into()
        })
    );
}

/// Placements are a fixed function of the membership: the same on every
/// run and platform (these values are the contract), and independent of
/// the order the nodes joined (except jump, whose buckets are numbered by
/// join order).
#[test]
fn hashing_placements_are_stable_across_runs_and_join_orders() {
    let golden: [(Strategy, [&str; 4]); 6] = [
        (Strategy::Ring, GOLDEN_RING),
        (
            Strategy::CourseRing,
            ["node-2", "node-7", "node-0", "node-8"],
        ),
        (Strategy::Jump, GOLDEN_JUMP),
        (Strategy::Rendezvous, GOLDEN_RENDEZVOUS),
        (Strategy::Maglev, GOLDEN_MAGLEV),
        (Strategy::Bounded, GOLDEN_RING),
    ];
    let probe = ["key-0", "key-1", "", "user:42"];
    let forward = nodes(10);
    let mut backward = forward.clone();
    backward.reverse();
    for (strategy, expected) in golden {
        let config = StrategyConfig::new(strategy);
        let placement = config.build_with(&forward).expect("valid");
        let got: Vec<&str> = probe
            .iter()
            .map(|k| placement.owner(k.as_bytes()).expect("members"))
            .collect();
        assert_eq!(got, expected, "{strategy}");
        if strategy != Strategy::Jump {
            let reversed = config.build_with(&backward).expect("valid");
            for i in 0..2_000 {
                let key = format!("key-{i}");
                assert_eq!(
                    placement.owner(key.as_bytes()),
                    reversed.owner(key.as_bytes()),
                    "{strategy} {key}"
                );
            }
        }
    }
}

/// Replicas are distinct nodes, owner first, never more than the members.
#[test]
fn hashing_replicas_are_distinct_and_start_with_the_owner() {
    for strategy in Strategy::ALL {
        let placement = StrategyConfig::new(strategy)
            .build_with(&nodes(5))
            .expect("valid");
        for i in 0..500 {
            let key = format!("key-{i}");
            let replicas = placement.replicas(key.as_bytes(), 3).expect("members");
            assert_eq!(replicas.len(), 3, "{strategy}");
            assert_eq!(
                Ok(replicas[0]),
                placement.owner(key.as_bytes()),
                "{strategy}"
            );
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{strategy}: {replicas:?}");
            assert_eq!(
                placement
                    .replicas(key.as_bytes(), 99)
                    .expect("members")
                    .len(),
                5,
                "{strategy}"
            );
        }
    }
}

/// Bad input: every strategy refuses it the same way, with a typed error.
#[test]
fn hashing_bad_input_is_refused_precisely() {
    for strategy in Strategy::ALL {
        let mut placement = StrategyConfig::new(strategy)
            .build()
            .expect("defaults are valid");
        assert_eq!(
            placement.owner(b"k").err(),
            Some(Error::EmptyMembership),
            "{strategy}"
        );
        assert_eq!(
            placement.replicas(b"k", 2).err(),
            Some(Error::EmptyMembership),
            "{strategy}"
        );
        placement.add_node("a", 1).expect("fresh");
        assert_eq!(
            placement.add_node("a", 1),
            Err(Error::NodeExists { node: "a".into() }),
            "{strategy}"
        );
        assert_eq!(
            placement.remove_node("zz"),
            Err(Error::UnknownNode { node: "zz".into() }),
            "{strategy}"
        );
        for weight in [0, MAX_WEIGHT + 1] {
            assert!(
                matches!(
                    placement.add_node("w", weight),
                    Err(Error::InvalidWeight { .. } | Error::WeightsUnsupported { .. })
                ),
                "{strategy} weight {weight}"
            );
        }
        for name in ["", "bad\nname", &"x".repeat(MAX_NODE_NAME_BYTES + 1)] {
            assert!(
                matches!(
                    placement.add_node(name, 1),
                    Err(Error::InvalidNodeName { .. })
                ),
                "{strategy} {name:?}"
            );
        }
        assert_eq!(
            placement.owner(b""),
            Ok("a"),
            "{strategy}: the empty key is a key"
        );
        assert_eq!(
            placement.nodes(),
            ["a"],
            "{strategy}: refused adds left no trace"
        );
    }
    for vnodes in [0, MAX_VIRTUAL_NODES + 1] {
        for strategy in [Strategy::Ring, Strategy::CourseRing, Strategy::Bounded] {
            let config = StrategyConfig {
                vnodes,
                ..StrategyConfig::new(strategy)
            };
            assert!(
                matches!(config.build(), Err(Error::InvalidVirtualNodes { .. })),
                "{strategy} vnodes {vnodes}"
            );
        }
    }
    for factor in [0.0, 0.99, f64::NAN, f64::INFINITY, 101.0] {
        let config = StrategyConfig {
            capacity_factor: factor,
            ..StrategyConfig::new(Strategy::Bounded)
        };
        assert!(
            matches!(config.build(), Err(Error::InvalidCapacityFactor { .. })),
            "factor {factor}"
        );
    }
    assert!(matches!(
        "spiral".parse::<Strategy>(),
        Err(Error::UnknownStrategy { .. })
    ));
    for strategy in Strategy::ALL {
        assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
    }
}
