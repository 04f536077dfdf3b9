use std::time::Duration;

use super::geo::{LIGHT_KM_PER_SECOND, find_city};
use super::*;
use crate::Error;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// City pairs with their published great-circle distances (km).
const PAIRS: [(&str, &str, f64); 7] = [
    ("new-york", "london", 5_570.0),
    ("london", "frankfurt", 637.0),
    ("san-francisco", "tokyo", 8_270.0),
    ("london", "sydney", 16_990.0),
    ("singapore", "sydney", 6_300.0),
    ("tokyo", "singapore", 5_320.0),
    ("sao-paulo", "london", 9_490.0),
];

/// Episode 2. For every pair in the table the computed great circle is
/// within 1% of the published distance, and the floor is exactly
/// distance / (c / 1.47), there and back.
#[test]
fn physics_floors_match_distance_over_fibre_speed_for_city_pairs() -> crate::Result<()> {
    for (a, b, published_km) in PAIRS {
        let (city_a, city_b) = (find_city(a)?, find_city(b)?);
        let km = great_circle_km(&city_a, &city_b);
        assert!(
            (km - published_km).abs() / published_km < 0.01,
            "{a}–{b}: {km:.0} km, published {published_km:.0} km"
        );
        // By hand: t = d / (c / 1.47) = d × 1.47 / 299,792.458 km/s.
        let hand_one_way_ms = km * 1.47 / LIGHT_KM_PER_SECOND * 1_000.0;
        assert!((ms(one_way_floor(km)) - hand_one_way_ms).abs() < 1e-6);
        assert!((ms(rtt_floor(km)) - 2.0 * hand_one_way_ms).abs() < 1e-6);
    }
    // The lecture's number: New York–London can never beat ~55 ms.
    let rtt = rtt_floor(5_570.0);
    assert!((ms(rtt) - 54.62).abs() < 0.05, "{rtt:?}");
    // Light in fibre covers about 204 km per millisecond.
    assert!((FIBRE_KM_PER_SECOND / 1_000.0 - 203.94).abs() < 0.01);
    Ok(())
}

/// Episode 2. Distance is symmetric and zero to oneself; antipodes are
/// half the circumference apart.
#[test]
fn physics_great_circle_is_a_metric_on_the_table() -> crate::Result<()> {
    for a in &CITIES {
        assert!(great_circle_km(a, a).abs() < 1e-9);
        for b in &CITIES {
            let (ab, ba) = (great_circle_km(a, b), great_circle_km(b, a));
            assert!((ab - ba).abs() < 1e-6);
            assert!(ab <= std::f64::consts::PI * geo::EARTH_RADIUS_KM + 1e-6);
        }
    }
    let north = City {
        name: "north-pole",
        latitude: 90.0,
        longitude: 0.0,
    };
    let south = City {
        latitude: -90.0,
        ..north
    };
    let half = std::f64::consts::PI * geo::EARTH_RADIUS_KM;
    assert!((great_circle_km(&north, &south) - half).abs() < 1e-6);
    Ok(())
}

/// Episode 2. A leader waits for the follower that completes its
/// majority: with three replicas the nearest one, with five the second
/// nearest — never the farthest.
#[test]
fn physics_commit_latency_is_the_majority_round_trip() -> crate::Result<()> {
    let three = LatencyMatrix::from_sites(&["ashburn", "london", "frankfurt"])?;
    // London leads: Frankfurt alone completes the majority.
    assert_eq!(commit_latency(&three, 1), three.rtt(1, 2));
    // Ashburn leads: its nearest follower is London.
    assert_eq!(commit_latency(&three, 0), three.rtt(0, 1));
    assert_eq!(best_leader(&three).site, "london");

    let five = LatencyMatrix::from_sites(&["ashburn", "new-york", "london", "frankfurt", "tokyo"])?;
    let mut from_new_york: Vec<Duration> = [0, 2, 3, 4].map(|f| five.rtt(1, f)).to_vec();
    from_new_york.sort();
    assert_eq!(commit_latency(&five, 1), from_new_york[1]);
    assert_eq!(majority(5), 3);
    assert_eq!(majority(4), 3);
    assert_eq!(majority(1), 1);
    let single = LatencyMatrix::from_sites(&["tokyo"])?;
    assert_eq!(commit_latency(&single, 0), Duration::ZERO);
    Ok(())
}

/// Episode 2. The miscounted quorums a measurement must be told apart
/// from: one follower more than a majority (for three replicas, every
/// follower) waits for the next-nearest; asking for more followers than
/// exist has no answer, and none is free.
#[test]
fn physics_commit_latency_waiting_for_counts_followers_nearest_first() -> crate::Result<()> {
    let three = LatencyMatrix::from_sites(&["new-york", "london", "tokyo"])?;
    // Tokyo leads: London completes the majority, New York is every follower.
    assert_eq!(
        commit_latency_waiting_for(&three, 2, 1),
        Some(three.rtt(2, 1))
    );
    assert_eq!(
        commit_latency_waiting_for(&three, 2, 2),
        Some(three.rtt(2, 0))
    );
    assert_eq!(commit_latency_waiting_for(&three, 2, 3), None);
    assert_eq!(
        commit_latency_waiting_for(&three, 2, 0),
        Some(Duration::ZERO)
    );
    assert!(three.rtt(2, 0) > three.rtt(2, 1));
    let five = LatencyMatrix::from_sites(&["ashburn", "new-york", "london", "frankfurt", "tokyo"])?;
    for leader in 0..5 {
        let waits: Vec<Option<Duration>> = (1..=4)
            .map(|followers| commit_latency_waiting_for(&five, leader, followers))
            .collect();
        assert_eq!(waits[1], Some(commit_latency(&five, leader)));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    }
    Ok(())
}

/// Episode 2. Five replicas are not slower than three when the extra two
/// sit near the leader: the majority is still one short hop away.
#[test]
fn physics_five_replicas_commit_as_fast_as_three_with_near_neighbours() -> crate::Result<()> {
    let three = LatencyMatrix::from_sites(&["new-york", "london", "tokyo"])?;
    let five = LatencyMatrix::from_sites(&["new-york", "ashburn", "london", "dublin", "tokyo"])?;
    let (best3, best5) = (best_leader(&three), best_leader(&five));
    assert!(best5.commit < best3.commit, "3: {best3:?}, 5: {best5:?}");
    // And every leader's commit is at least the floor to its nearest
    // follower, whatever the placement.
    for matrix in [&three, &five] {
        for leader in leaders_by_latency(matrix) {
            let nearest = (0..matrix.len())
                .filter(|&f| f != leader.leader)
                .map(|f| rtt_floor(matrix.distance_km(leader.leader, f)))
                .min()
                .expect("a placement of two or more sites");
            assert!(leader.commit >= nearest);
        }
    }
    Ok(())
}

/// Episode 2. The route factor scales every link; the floor stays put.
#[test]
fn physics_matrix_links_scale_with_the_route_factor() -> crate::Result<()> {
    let floor = LatencyMatrix::from_sites(&["london", "frankfurt", "tokyo"])?;
    let routed = floor.clone().with_route_factor(1.5)?;
    let links: Vec<_> = routed.links().collect();
    assert_eq!(links.len(), 3);
    for (a, b, one_way) in links {
        assert!(a < b);
        assert_eq!(one_way, floor.one_way(a, b).mul_f64(1.5));
        assert_eq!(routed.floor(a, b), floor.floor(a, b));
        assert!(routed.rtt(a, b) >= rtt_floor(routed.distance_km(a, b)));
    }
    Ok(())
}

/// Episode 2. Bad placements are refused with the reason.
#[test]
fn physics_bad_placements_are_refused() -> crate::Result<()> {
    assert!(matches!(
        LatencyMatrix::from_sites(&["atlantis"]),
        Err(Error::UnknownSite { .. })
    ));
    assert!(matches!(
        LatencyMatrix::from_sites(&["tokyo", "tokyo"]),
        Err(Error::InvalidPlacement { .. })
    ));
    assert!(matches!(
        LatencyMatrix::from_sites::<&str>(&[]),
        Err(Error::InvalidPlacement { .. })
    ));
    let matrix = LatencyMatrix::from_sites(&["tokyo"])?;
    for factor in [0.5, f64::NAN, f64::INFINITY, 11.0] {
        assert!(
            matrix.clone().with_route_factor(factor).is_err(),
            "{factor}"
        );
    }
    Ok(())
}
