//! Load balancing: which backend serves the next request.
//!
//! Episode: 28, "Load Balancing Algorithms"
//! Pattern: scale / load balancing
//! Try it:  cargo run -- demo load-balancing
//! Test it: cargo test -p patterns balance
//!
//! A client with several equivalent backends must choose one per request,
//! knowing little: what it sent, what came back, and how long that took.
//! Five policies, from blind to informed:
//!
//! | policy | knows | when one node turns 10× slower |
//! |---|---|---|
//! | [`RoundRobin`] | nothing | still gets 1/N of the requests: the broken twin |
//! | [`SmoothWeighted`] | static weights | fine if an operator reweights it, by hand |
//! | [`LeastOutstanding`] | requests in flight, all of them | passed over while it is busy |
//! | [`PowerOfTwoChoices`] | requests in flight, two at random | the same, without a scan or a herd |
//! | [`PeakEwma`] | latency × requests in flight | shunned until its estimate decays |
//!
//! The policies are pure ([`core`]): they pick an index given each
//! endpoint's [`LoadView`] and the time, so a benchmark times the pick
//! alone and a simulation drives it without a network. [`Balance`] wraps
//! one around a set of tower services — tonic channels, or anything else —
//! tracks what each endpoint has in flight and how long it takes, and is a
//! tower `Service` itself; endpoints come and go by name or through tower's
//! `Discover` changes. tower's own `p2c` balancer with `PeakEwma` is the
//! peer it is measured against (`dslab bench balance`).
//!
//! Bounds: at most [`MAX_ENDPOINTS`] endpoints, weights in
//! `1..=`[`MAX_WEIGHT`]; per endpoint the balancer keeps two counters and
//! one estimate, so nothing grows with the number of requests.
//!
//! Simplified: one client's view. Real fleets have many clients, each
//! with its own partial picture; that is exactly why p2c beats
//! least-outstanding there (everyone's "least loaded" is the same node).
//! Real balancers also eject outliers and retry elsewhere; here a failed
//! request is the caller's to retry.

pub mod core;
mod demo;
pub mod experiment;
pub mod load;
pub mod model;
mod scenario;
pub mod service;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use self::core::{
    LeastOutstanding, LoadView, PeakEwma, Pick, PowerOfTwoChoices, RoundRobin, RttEstimate,
    SmoothWeighted,
};
pub use demo::load_balancing_demo;
pub use load::{InFlight, Load, LoadConfig};
pub use service::{Balance, BoxError, Endpoint, ResponseFuture};

use tokio::time::Instant;

use crate::{Error, Result};

/// The most endpoints one balancer holds.
pub const MAX_ENDPOINTS: usize = 10_000;
/// The heaviest weight an endpoint may carry (relative to weight 1).
pub const MAX_WEIGHT: u32 = 1_000;

/// Any of the five policies, chosen at run time (by name on the CLI).
#[derive(Clone, Debug)]
pub enum Policy {
    RoundRobin(RoundRobin),
    SmoothWeighted(SmoothWeighted),
    LeastOutstanding(LeastOutstanding),
    PowerOfTwoChoices(PowerOfTwoChoices),
    PeakEwma(PeakEwma),
}

impl Policy {
    /// Every policy's name, blind first.
    pub const NAMES: [&'static str; 5] = [
        "round-robin",
        "weighted-round-robin",
        "least-outstanding",
        "p2c",
        "peak-ewma",
    ];

    /// The policy called `name`; `seed` drives the random ones.
    pub fn by_name(name: &str, seed: u64) -> Result<Self> {
        Ok(match name {
            "round-robin" => Self::RoundRobin(RoundRobin::default()),
            "weighted-round-robin" => Self::SmoothWeighted(SmoothWeighted::default()),
            "least-outstanding" => Self::LeastOutstanding(LeastOutstanding::default()),
            "p2c" => Self::PowerOfTwoChoices(PowerOfTwoChoices::new(seed)),
            "peak-ewma" => Self::PeakEwma(PeakEwma::new(seed)),
            _ => {
                return Err(Error::UnknownStrategy {
                    name: name.to_owned(),
                    known: Self::NAMES.join(", "),
                });
            }
        })
    }

    /// All five, in [`Self::NAMES`] order.
    pub fn all(seed: u64) -> Vec<Self> {
        Self::NAMES
            .iter()
            .filter_map(|name| Self::by_name(name, seed).ok())
            .collect()
    }
}

impl Pick for Policy {
    fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin(p) => p.name(),
            Self::SmoothWeighted(p) => p.name(),
            Self::LeastOutstanding(p) => p.name(),
            Self::PowerOfTwoChoices(p) => p.name(),
            Self::PeakEwma(p) => p.name(),
        }
    }

    fn pick<L: LoadView>(
        &mut self,
        endpoints: &[L],
        ready: &[usize],
        now: Instant,
    ) -> Option<usize> {
        match self {
            Self::RoundRobin(p) => p.pick(endpoints, ready, now),
            Self::SmoothWeighted(p) => p.pick(endpoints, ready, now),
            Self::LeastOutstanding(p) => p.pick(endpoints, ready, now),
            Self::PowerOfTwoChoices(p) => p.pick(endpoints, ready, now),
            Self::PeakEwma(p) => p.pick(endpoints, ready, now),
        }
    }

    fn reset(&mut self) {
        match self {
            Self::RoundRobin(p) => p.reset(),
            Self::SmoothWeighted(p) => p.reset(),
            Self::LeastOutstanding(p) => p.reset(),
            Self::PowerOfTwoChoices(p) => p.reset(),
            Self::PeakEwma(p) => p.reset(),
        }
    }
}
