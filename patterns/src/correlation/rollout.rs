//! Staged rollouts across cells, and the version skew they expose.
//!
//! Knight Capital, 1 August 2012: a flag in the order messages had once
//! meant "Power Peg" (an old test routine); new code repurposed it for a
//! retail liquidity programme, and the deploy reached seven of eight
//! servers. The eighth, on old code, read the new flag in its old meaning
//! and traded $7 billion in 45 minutes. During any rollout two versions
//! talk to each other; the code must survive that, and the rollout must
//! limit how many hosts learn it doesn't.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// Hosts per fleet at most (cells × hosts per cell).
pub const MAX_FLEET: usize = 10_000;

/// Bake steps per stage at most: far past any gate worth simulating, and
/// small enough that `bake_steps + hosts_per_cell` cannot overflow.
pub const MAX_BAKE_STEPS: usize = 100_000;

/// Orders a rollout may simulate in all (stages × steps per stage ×
/// hosts): a few seconds of work at most, whatever the config asks.
pub const MAX_ORDERS: u64 = 200_000_000;

/// The two versions of the order protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Bit 0 of `flags` means "test order: do not execute".
    V1,
    /// Bit 0 of `flags` means "retail liquidity order"; messages carry
    /// their sender's version.
    V2,
}

/// What bit 0 of an order's flags means to the one reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    TestOrder,
    RetailLiquidity,
}

/// The meaning `version` gives a set bit 0.
pub fn meaning_in(version: Version) -> Meaning {
    match version {
        Version::V1 => Meaning::TestOrder,
        Version::V2 => Meaning::RetailLiquidity,
    }
}

/// How V2 code talks to a fleet that still runs V1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// Version-aware: a V2 sender speaks V1 to a V1 peer (the versions are
    /// exchanged when the connection opens), and a V2 receiver reads a V1
    /// sender's flags in V1's meaning.
    Negotiated,
    /// The broken twin: V2 code assumes every peer runs V2 — it sends the
    /// repurposed bit to V1 hosts and reads V1's bit in its new meaning.
    NaiveAssumesSameVersion,
}

/// The meaning the receiver acts on, for an order whose sender set bit 0
/// meaning `intended` (in the sender's version).
pub fn received_meaning(
    decoding: Decoding,
    sender: Version,
    receiver: Version,
    intended: Meaning,
) -> Option<Meaning> {
    match decoding {
        Decoding::Negotiated => {
            if receiver == Version::V2 || sender == Version::V1 {
                // V2 knows both meanings and reads each by its sender's
                // version; V1 talking to V1 is the old world.
                Some(intended)
            } else {
                // A V2 sender knows its peer runs V1, which has no way to
                // say "retail liquidity": it sends a plain order instead
                // of a flag the peer would read as something else.
                None
            }
        }
        Decoding::NaiveAssumesSameVersion => Some(meaning_in(receiver)),
    }
}

/// How the new version is pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every cell at once (each cell's hosts in one rolling pass).
    AllAtOnce,
    /// One cell per stage; after each stage's bake time, a health gate
    /// halts and rolls back if any host acted on a misread order.
    Staged,
}

/// A rollout of V2 over a fleet of cells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RolloutConfig {
    pub cells: usize,
    pub hosts_per_cell: usize,
    /// Steps a stage's hosts run on the new version before the gate.
    pub bake_steps: usize,
    /// The chance a host's deploy fails and it stays on V1 (Knight's
    /// eighth server).
    pub deploy_failure: f64,
    pub decoding: Decoding,
    pub strategy: Strategy,
    pub seed: u64,
}

/// What a rollout did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutReport {
    /// Every stage passed its gate.
    pub completed: bool,
    /// The stage whose gate halted the rollout (0-based).
    pub halted_at: Option<usize>,
    /// Orders acted on in a meaning their sender did not intend.
    pub misreads: u64,
    /// Hosts that acted on at least one misread order: the blast radius.
    pub hosts_hit: usize,
    pub hosts: usize,
}

/// Runs the rollout. Traffic stays inside a cell (that is what a cell
/// is): each step every host sends one flagged order to a random peer of
/// its cell.
pub fn rollout(config: &RolloutConfig) -> Result<RolloutReport> {
    let hosts = config.cells.saturating_mul(config.hosts_per_cell);
    if config.cells == 0 || config.hosts_per_cell < 2 || hosts > MAX_FLEET {
        return Err(Error::InvalidFleet {
            reason: format!(
                "{} cells of {} hosts; a rollout needs ≥ 1 cell of ≥ 2 hosts, ≤ {MAX_FLEET} hosts",
                config.cells, config.hosts_per_cell
            ),
        });
    }
    if !(0.0..=1.0).contains(&config.deploy_failure) {
        // A NaN is outside the range too.
        return Err(Error::InvalidFleet {
            reason: format!(
                "deploy failure {} must be a probability in 0..=1",
                config.deploy_failure
            ),
        });
    }
    if !(1..=MAX_BAKE_STEPS).contains(&config.bake_steps) {
        return Err(Error::InvalidFleet {
            reason: format!(
                "bake time of {} steps; a stage bakes 1..={MAX_BAKE_STEPS} steps",
                config.bake_steps
            ),
        });
    }
    let stages = match config.strategy {
        Strategy::AllAtOnce => 1,
        Strategy::Staged => config.cells,
    };
    // Each factor is bounded above, so the product fits a u64.
    let steps = config.bake_steps + config.hosts_per_cell;
    let orders = stages as u64 * steps as u64 * hosts as u64;
    if orders > MAX_ORDERS {
        return Err(Error::InvalidFleet {
            reason: format!(
                "{orders} orders to simulate ({stages} stages × {steps} steps × {hosts} hosts); at most {MAX_ORDERS}"
            ),
        });
    }
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut version = vec![Version::V1; hosts];
    let mut hit = vec![false; hosts];
    let mut misreads = 0;
    let stages: Vec<Vec<usize>> = match config.strategy {
        Strategy::AllAtOnce => vec![(0..config.cells).collect()],
        Strategy::Staged => (0..config.cells).map(|cell| vec![cell]).collect(),
    };
    for (stage, cells) in stages.iter().enumerate() {
        let members: Vec<usize> = cells
            .iter()
            .flat_map(|cell| cell * config.hosts_per_cell..(cell + 1) * config.hosts_per_cell)
            .collect();
        let mut in_stage = vec![false; hosts];
        for &host in &members {
            in_stage[host] = true;
        }
        let mut stage_misreads = 0;
        for step in 0..steps {
            // A rolling deploy: one host per cell per step, so each cell
            // spends its first steps half old, half new.
            if step < config.hosts_per_cell {
                for cell in cells {
                    let host = cell * config.hosts_per_cell + step;
                    if !rng.random_bool(config.deploy_failure) {
                        version[host] = Version::V2;
                    }
                }
            }
            for sender in 0..hosts {
                let cell = sender / config.hosts_per_cell;
                let peer =
                    cell * config.hosts_per_cell + rng.random_range(0..config.hosts_per_cell - 1);
                let receiver = if peer >= sender { peer + 1 } else { peer };
                let intended = meaning_in(version[sender]);
                let acted = received_meaning(
                    config.decoding,
                    version[sender],
                    version[receiver],
                    intended,
                );
                if acted.is_some_and(|meaning| meaning != intended) {
                    misreads += 1;
                    hit[receiver] = true;
                    if in_stage[receiver] || in_stage[sender] {
                        stage_misreads += 1;
                    }
                }
            }
        }
        if config.strategy == Strategy::Staged && stage_misreads > 0 {
            // The gate: roll the stage back before the next cell sees it.
            for &host in &members {
                version[host] = Version::V1;
            }
            return Ok(report(false, Some(stage), misreads, &hit));
        }
    }
    Ok(report(true, None, misreads, &hit))
}

fn report(completed: bool, halted_at: Option<usize>, misreads: u64, hit: &[bool]) -> RolloutReport {
    RolloutReport {
        completed,
        halted_at,
        misreads,
        hosts_hit: hit.iter().filter(|&&h| h).count(),
        hosts: hit.len(),
    }
}
