//! Seeded network simulation: named hosts, partitions, crashes, replay.
//!
//! Episode: 4, "Network Partitions - The CAP Reality" (also 12)
//! Pattern: testing / deterministic simulation
//! Try it:  DSLAB_SEEDS=50 cargo test -p observability relay_partition
//! Test it: cargo test -p observability sim_
//!
//! A partition is the failure that distributed code is written for and the
//! one a laptop never produces on its own. turmoil runs every host of a
//! test on one thread, on simulated time and a simulated network, so a test
//! can cut links, add latency, crash and restart hosts — and the same seed
//! replays the same run. Hosts are `n1`…`nN`, the driver is `client`.
//!
//! Seeds come from the environment: `DSLAB_SEED` is the first seed
//! (default: 1) and `DSLAB_SEEDS` how many consecutive seeds a test sweeps
//! (default: 1). A failing seed is printed with the command that replays it.
//!
//! Simplified: turmoil does not model TCP retransmission after random loss,
//! so "loss" here is a link that fails and repairs at random
//! ([`Simulation::set_loss`]) — packets vanish in bursts, as during a real
//! partition, not one at a time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

/// What simulated hosts and test scripts return (turmoil's result type).
pub type SimResult<T = ()> = turmoil::Result<T>;

/// The simulator itself, for anything the harness does not wrap.
pub use turmoil;

/// The name of the host that drives a simulation (sends requests, checks).
pub const CLIENT: &str = "client";

/// The port simulated servers listen on.
pub const PORT: u16 = 9000;

/// The name of simulated host `i` (1-based): `n1`, `n2`, …
pub fn node(i: usize) -> String {
    format!("n{i}")
}

/// Where a simulated server listens: every interface, [`PORT`].
pub fn listen_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)
}

/// The address clients dial to reach simulated host `name`.
pub fn uri(name: &str) -> http::Uri {
    format!("http://{name}:{PORT}")
        .parse()
        .expect("host names and a port form a valid URI")
}

/// The seeds this run sweeps, from `DSLAB_SEED` and `DSLAB_SEEDS`.
pub fn seeds() -> Vec<u64> {
    let read = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(default)
    };
    let first = read("DSLAB_SEED", 1);
    let count = read("DSLAB_SEEDS", 1).max(1);
    (0..count).map(|i| first.wrapping_add(i)).collect()
}

/// Runs `test` once per seed. The first failing seed is reported with the
/// command that replays it, then the failure propagates.
pub fn for_each_seed(mut test: impl FnMut(u64) -> turmoil::Result) {
    for seed in seeds() {
        let replay = format!("replay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test <test name>");
        match catch_unwind(AssertUnwindSafe(|| test(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("simulation failed with seed {seed}: {err}\n{replay}"),
            Err(panic) => {
                eprintln!("simulation panicked with seed {seed}\n{replay}");
                resume_unwind(panic)
            }
        }
    }
}

/// How to build a [`Simulation`].
#[derive(Clone, Debug)]
pub struct SimBuilder {
    seed: u64,
    hosts: usize,
    duration: Duration,
    min_latency: Duration,
    max_latency: Duration,
}

impl SimBuilder {
    /// Number of server hosts, `n1`…`nN` (the `client` host is extra).
    pub fn hosts(mut self, hosts: usize) -> Self {
        self.hosts = hosts;
        self
    }

    /// Simulated time after which the run fails as hung.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// One-way message latency, drawn between `min` and `max`.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.min_latency = min;
        self.max_latency = max.max(min);
        self
    }

    pub fn build<'a>(self) -> Simulation<'a> {
        let sim = turmoil::Builder::new()
            .rng_seed(self.seed)
            .simulation_duration(self.duration)
            .min_message_latency(self.min_latency)
            .max_message_latency(self.max_latency)
            .build();
        Simulation {
            sim,
            seed: self.seed,
            hosts: (1..=self.hosts).map(node).collect(),
        }
    }
}

/// A turmoil simulation with dslab's host names and fault verbs.
pub struct Simulation<'a> {
    sim: turmoil::Sim<'a>,
    seed: u64,
    hosts: Vec<String>,
}

impl std::fmt::Debug for Simulation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.seed)
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl<'a> Simulation<'a> {
    /// A simulation of 3 hosts, 60 s of simulated time, 1–5 ms latency.
    pub fn builder(seed: u64) -> SimBuilder {
        SimBuilder {
            seed,
            hosts: 3,
            duration: Duration::from_secs(60),
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(5),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The server hosts, `n1`…`nN`.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Registers server software on `name`; `software` is called again to
    /// restart it after a crash. Pass state that must survive a restart
    /// (the "disk") into the closure from outside.
    pub fn host<F, Fut>(&mut self, name: &str, software: F)
    where
        F: Fn() -> Fut + 'a,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        self.sim.host(name, software);
    }

    /// Registers the driver on the `client` host; the run ends when it does.
    pub fn client<F>(&mut self, script: F)
    where
        F: Future<Output = turmoil::Result> + 'static,
    {
        self.sim.client(CLIENT, script);
    }

    /// Runs until the client finishes (or fails, or time runs out).
    pub fn run(&mut self) -> turmoil::Result {
        self.sim.run()
    }

    /// Advances one tick; `true` once the client has finished.
    pub fn step(&mut self) -> turmoil::Result<bool> {
        self.sim.step()
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// Stops `host`'s software, as a power cut would.
    pub fn crash(&mut self, host: &str) {
        self.sim.crash(host);
    }

    /// Starts `host`'s software afresh (after a crash, or as a reboot).
    pub fn restart(&mut self, host: &str) {
        self.sim.bounce(host);
    }

    /// Cuts the link between `a` and `b` both ways.
    pub fn partition(&self, a: &str, b: &str) {
        self.sim.partition(a, b);
    }

    /// Cuts `host` off from every other host, including the client.
    pub fn isolate(&self, host: &str) {
        for other in self.hosts.iter().map(String::as_str).chain([CLIENT]) {
            if other != host {
                self.sim.partition(host, other);
            }
        }
    }

    /// Restores the link between `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) {
        self.sim.repair(a, b);
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        let all: Vec<&str> = self
            .hosts
            .iter()
            .map(String::as_str)
            .chain([CLIENT])
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                self.sim.repair(*a, *b);
            }
        }
    }

    /// Fixes the one-way latency between `a` and `b` (both directions).
    pub fn set_latency(&self, a: &str, b: &str, latency: Duration) {
        self.sim.set_link_latency(a, b, latency);
    }

    /// Makes the link between `a` and `b` fail at random: each tick it
    /// goes down with this probability (and comes back at turmoil's repair
    /// rate). See the module doc for why loss is modelled this way.
    pub fn set_loss(&mut self, a: &str, b: &str, probability: f64) {
        self.sim
            .set_link_fail_rate(a, b, probability.clamp(0.0, 1.0));
    }

    /// The underlying turmoil simulation, for anything not wrapped here.
    pub fn turmoil(&mut self) -> &mut turmoil::Sim<'a> {
        &mut self.sim
    }
}

/// Fault verbs for use *inside* the simulation, e.g. from the client
/// script between two calls.
pub mod faults {
    /// Cuts the link between `a` and `b` both ways.
    pub fn partition(a: &str, b: &str) {
        turmoil::partition(a, b);
    }

    /// Cuts the link from `from` to `to` only (an asymmetric partition).
    pub fn partition_oneway(from: &str, to: &str) {
        turmoil::partition_oneway(from, to);
    }

    /// Restores the link between `a` and `b`.
    pub fn heal(a: &str, b: &str) {
        turmoil::repair(a, b);
    }

    /// Holds messages between `a` and `b` in flight until [`release`].
    pub fn hold(a: &str, b: &str) {
        turmoil::hold(a, b);
    }

    /// Delivers messages held by [`hold`].
    pub fn release(a: &str, b: &str) {
        turmoil::release(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_seeds_default_to_one_seed() {
        // The environment may set DSLAB_SEED(S) for a sweep; the count and
        // consecutiveness hold either way.
        let seeds = seeds();
        assert!(!seeds.is_empty());
        assert!(seeds.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[test]
    fn sim_failure_names_the_seed() {
        let outcome = catch_unwind(|| for_each_seed(|_| Err("invariant broken".into())));
        let panic = outcome.expect_err("a failing simulation fails the test");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("seed") && message.contains("DSLAB_SEED="),
            "{message}"
        );
    }
}
