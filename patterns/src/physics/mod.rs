//! The speed of light: the latency no engineering removes.
//!
//! Episode: 2, "Speed of Light Constraints - The Ultimate Limit"
//! Pattern: physics / latency floors and geographic placement
//! Try it:  cargo run -- demo speed-of-light --svg target/figures
//! Test it: cargo test -p patterns physics_
//!
//! Light in glass travels at about c/1.47 — roughly 204 km per
//! millisecond — so a round trip between two cities can never be faster
//! than twice their great-circle distance over that speed: New York to
//! London is 5,570 km, so no request and its reply cross it in less than
//! 55 ms, whatever the hardware. [`geo`] holds a table of real cities and
//! the floor for any pair; [`LatencyMatrix`] turns a placement (a list of
//! sites) into the one-way latency of every link, ready to be fed to the
//! turmoil simulation; [`quorum`] is the arithmetic of consensus across
//! regions: a leader commits once a *majority* has the entry, so its
//! commit latency is the round trip to the closest follower that completes
//! that majority — the median, not the slowest — and where the leader
//! sits decides everything.
//!
//! The one thing to watch for: adding replicas does not have to make
//! commits slower. Five replicas need three acknowledgements, and if two of
//! the five are near the leader, five replicas commit as fast as three.
//!
//! Bounds: a matrix holds at most [`MAX_SITES`] sites.
//!
//! Simplified: fibre follows the great circle here; real cables detour
//! (oceans, rights of way), so real round trips are 1.3–2× the floor —
//! [`LatencyMatrix::with_route_factor`] models that as one factor.
//! Switching, queueing and serialisation delays are left out: a floor is
//! a floor.

pub mod geo;
pub mod matrix;
pub mod quorum;

#[cfg(test)]
mod tests;

pub use geo::{
    CITIES, City, FIBRE_KM_PER_SECOND, find_city, great_circle_km, one_way_floor, rtt_floor,
};
pub use matrix::{LatencyMatrix, MAX_SITES};
pub use quorum::{
    LeaderLatency, best_leader, commit_latency, commit_latency_waiting_for, leaders_by_latency,
    majority,
};
