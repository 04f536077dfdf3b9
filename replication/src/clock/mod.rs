//! Logical and physical clocks: how replicas order events without a
//! shared clock.
//!
//! Episode: 20, "Vector Clocks & Logical Time" (also 3)
//! Pattern: time / causality tracking
//! Try it:  cargo run -- demo clocks
//! Test it: cargo test -p replication clock
//!
//! Wall clocks disagree (Episode 3): NTP can only estimate another
//! machine's offset, and [`ntp`] shows its estimate is wrong by exactly
//! half the path asymmetry — which no exchange of timestamps can detect.
//! So distributed systems order events by *causality* instead. A
//! [`lamport::LamportClock`] gives one number per event that respects
//! happened-before but cannot tell concurrent events apart; a
//! [`vector::VectorClock`] can ([`vector::Causality::Concurrent`]). The
//! same lattice counting updates to data instead of events is a version
//! vector; [`dotted`] tags each value with its own dot, so concurrent
//! writes through one server stay siblings instead of overwriting each
//! other (Riak's fix). A [`hlc::HybridClock`] keeps Lamport's guarantee
//! (`a → b` implies `hlc(a) < hlc(b)`) in 64 bits plus a counter, while
//! staying within a bounded offset of physical time; a
//! [`truetime::TrueTime`] clock admits its uncertainty as an interval and
//! waits it out before a commit becomes visible (Spanner's commit-wait).
//!
//! Bounds: a vector clock holds one entry per replica id it has heard of
//! (the caller bounds the replica ids: the CRDT service accepts only its
//! configured members); a hybrid clock refuses remote timestamps more
//! than its maximum offset ahead of its own physical clock, so a peer with
//! a broken clock cannot drag it into the future.

mod demo;
pub mod dotted;
pub mod hlc;
pub mod lamport;
pub mod ntp;
pub mod physical;
pub mod truetime;
pub mod vector;

#[cfg(test)]
mod tests;

pub use demo::clocks_demo;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which replica (or process) an event or a write belongs to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ReplicaId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}
