//! Consensus across regions: where the replicas sit decides how fast a
//! write commits.
//!
//! Episode: 2, "Speed of Light Constraints - The Ultimate Limit" (also 13)
//! Pattern: consensus / geographic placement
//! Try it:  cargo run -- demo speed-of-light --svg target/figures
//! Test it: cargo test -p consensus geo_
//!
//! A Raft leader commits once a majority holds the entry, so its commit
//! latency is the round trip to the follower that completes the majority
//! ([`patterns::physics::commit_latency`]) — and light in fibre sets a
//! floor under every round trip. This module measures it on the real Raft
//! KV ([`crate::raft`]): in seeded simulation, the latency matrix of a
//! placement becomes turmoil's link latencies (the `geo_` tests, in
//! `raft::tests::geo`); in the demo, on one machine, every node delays
//! what it sends to each peer by that link's one-way floor
//! ([`crate::raft::RaftNode::set_link_delay`]). Either way the measured
//! commit never beats the floor. To show it also waits for *no more* than
//! a majority, the demo alternates each timed write with one over
//! zero-delay links — the loopback overhead of gRPC and the Raft loop on
//! a machine that may be busy — and subtracts it: what is left must sit
//! nearer the majority round trip than the next-slower model (one
//! follower more, or every follower). Where those models are too close
//! to tell apart on a loaded machine, the leader's row is shown but not
//! claimed.
//!
//! The one thing to watch for: the fastest leader is not "the middle of
//! the map" but the site with a majority closest to it. Five replicas
//! with three in one continent commit faster than three spread across
//! oceans — at the price that losing that continent loses the majority.
//!
//! Bounds: a placement has at most [`patterns::physics::MAX_SITES`] sites;
//! the demo writes 2 × [`WRITES`] keys per leader.
//!
//! Simplified: disks are in memory (an fsync adds its own milliseconds to
//! every commit, on the leader and on each follower of the majority), and
//! links are exactly their floor. Real networks add routing detours
//! (`LatencyMatrix::with_route_factor`), queueing and jitter.

pub(crate) mod demo;
mod figures;
mod verdict;

pub use demo::speed_of_light_demo;

/// Timed writes per measured leader in the demo, over the emulated links
/// (and as many over zero-delay links, for the loopback overhead).
pub const WRITES: usize = 9;

/// The placements the demo compares: a name and its sites, in host order.
pub const PLACEMENTS: [(&str, &[&str]); 3] = [
    (
        "3 replicas, one per continent",
        &["new-york", "london", "tokyo"],
    ),
    (
        "5 replicas, two pairs of neighbours",
        &["new-york", "ashburn", "london", "dublin", "tokyo"],
    ),
    (
        "5 replicas, a North American majority",
        &[
            "ashburn",
            "new-york",
            "san-francisco",
            "london",
            "frankfurt",
        ],
    ),
];
