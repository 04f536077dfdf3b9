//! A fleet whose hosts fail on their own — and together, through what
//! they share.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// Hosts in a simulated fleet at most.
pub const MAX_HOSTS: usize = 256;
/// Samples per host at most; with [`MAX_HOSTS`] this bounds a run to
/// 256 MB of booleans.
pub const MAX_STEPS: usize = 1_000_000;
/// Shared dependencies at most: one per host is already more than any
/// inventory names, and each costs a pass over every step.
pub const MAX_DEPENDENCIES: usize = MAX_HOSTS;

/// Something several hosts depend on: a power feed, a top-of-rack switch,
/// a DNS resolver, a configuration service.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub name: String,
    /// The hosts that depend on it (indices into the fleet).
    pub hosts: Vec<usize>,
    /// The chance, per step, that an outage of it begins.
    pub failure: f64,
}

impl Dependency {
    pub fn new(name: impl Into<String>, hosts: Vec<usize>, failure: f64) -> Self {
        Self {
            name: name.into(),
            hosts,
            failure,
        }
    }
}

/// How the fleet fails.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetConfig {
    pub hosts: usize,
    pub steps: usize,
    /// The chance, per step, that a host's own outage begins (disk, kernel
    /// panic, bad luck): independent across hosts.
    pub host_failure: f64,
    /// Steps an outage lasts, a host's or a dependency's.
    pub outage_steps: usize,
    /// The shared dependencies — the hidden ones included; the detector
    /// never sees this list, only the up/down samples.
    pub dependencies: Vec<Dependency>,
    pub seed: u64,
}

impl FleetConfig {
    fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidFleet { reason });
        if !(2..=MAX_HOSTS).contains(&self.hosts) {
            return invalid(format!("{} hosts; a fleet has 2..={MAX_HOSTS}", self.hosts));
        }
        if !(2..=MAX_STEPS).contains(&self.steps) {
            return invalid(format!("{} steps; a run has 2..={MAX_STEPS}", self.steps));
        }
        if self.dependencies.len() > MAX_DEPENDENCIES {
            return invalid(format!(
                "{} dependencies; a fleet has at most {MAX_DEPENDENCIES}",
                self.dependencies.len()
            ));
        }
        if self.outage_steps == 0 || self.outage_steps > self.steps {
            return invalid(format!("outages of {} steps", self.outage_steps));
        }
        let probabilities =
            std::iter::once(self.host_failure).chain(self.dependencies.iter().map(|d| d.failure));
        for p in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return invalid(format!("failure probability {p} is outside 0..=1"));
            }
        }
        if let Some(d) = self
            .dependencies
            .iter()
            .find(|d| d.hosts.len() > self.hosts)
        {
            return invalid(format!(
                "dependency {} lists {} hosts of a fleet of {}",
                d.name,
                d.hosts.len(),
                self.hosts
            ));
        }
        if let Some(host) = self
            .dependencies
            .iter()
            .flat_map(|d| &d.hosts)
            .find(|&&h| h >= self.hosts)
        {
            return invalid(format!("a dependency names host {host} of {}", self.hosts));
        }
        Ok(())
    }
}

/// Up/down samples per host: `down[host][step]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureSeries {
    pub hosts: Vec<String>,
    pub down: Vec<Vec<bool>>,
}

impl FailureSeries {
    pub fn steps(&self) -> usize {
        self.down.first().map_or(0, Vec::len)
    }

    /// The fraction of samples at which every host in `hosts` was down.
    pub fn fraction_all_down(&self, hosts: &[usize]) -> f64 {
        let all = (0..self.steps())
            .filter(|&step| hosts.iter().all(|&h| self.down[h][step]))
            .count();
        all as f64 / self.steps().max(1) as f64
    }

    /// The fraction of samples at which `host` was down.
    pub fn fraction_down(&self, host: usize) -> f64 {
        self.fraction_all_down(&[host])
    }

    /// Downtime per window of `window` steps (a fraction per window): the
    /// continuous series Pearson and Spearman work on.
    pub fn downtime_per_window(&self, host: usize, window: usize) -> Vec<f64> {
        self.down[host]
            .chunks(window.max(1))
            .map(|chunk| chunk.iter().filter(|&&d| d).count() as f64 / chunk.len() as f64)
            .collect()
    }
}

/// The probability that an outage process has it down at a given step,
/// once stationary. Outages last `outage_steps`; between them each step
/// starts one with probability `start`, so an up spell lasts (1 − s)/s
/// steps on average and the down fraction is r / (r + (1 − s)/s).
pub fn down_probability(start: f64, outage_steps: usize) -> f64 {
    let r = outage_steps as f64;
    if start <= 0.0 {
        return 0.0;
    }
    r * start / (r * start + 1.0 - start)
}

/// The steps an outage process with these parameters is down, as
/// half-open ranges. Between outages each step starts one with
/// probability `start`, so the up spell before the next outage is
/// geometric: it is drawn in one go (inverse transform) instead of one
/// coin per step — the same process, at the cost of one draw per outage.
fn outages(
    rng: &mut SmallRng,
    start: f64,
    outage_steps: usize,
    steps: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    if start <= 0.0 {
        return found;
    }
    let log_stay_up = (1.0 - start).ln();
    let mut at = 0usize;
    while at < steps {
        // Failures before the first success of a Bernoulli(start) trial:
        // ⌊ln U / ln(1 − start)⌋ with U uniform on (0, 1].
        let uniform = 1.0 - rng.random::<f64>();
        let up = (uniform.ln() / log_stay_up).floor();
        let up = if up.is_finite() && up >= 0.0 {
            up.min(steps as f64) as usize
        } else {
            0
        };
        let begin = at.saturating_add(up);
        if begin >= steps {
            break;
        }
        let end = begin.saturating_add(outage_steps).min(steps);
        found.push(begin..end);
        at = begin.saturating_add(outage_steps);
    }
    found
}

/// Runs the fleet: every host and every dependency draws its outages, and
/// a host is down while it, or anything it depends on, is down.
pub fn simulate(config: &FleetConfig) -> Result<FailureSeries> {
    config.validate()?;
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut down = vec![vec![false; config.steps]; config.hosts];
    for series in &mut down {
        for outage in outages(
            &mut rng,
            config.host_failure,
            config.outage_steps,
            config.steps,
        ) {
            series[outage].fill(true);
        }
    }
    for dependency in &config.dependencies {
        for outage in outages(
            &mut rng,
            dependency.failure,
            config.outage_steps,
            config.steps,
        ) {
            for &host in &dependency.hosts {
                down[host][outage.clone()].fill(true);
            }
        }
    }
    Ok(FailureSeries {
        hosts: (1..=config.hosts).map(|i| format!("n{i}")).collect(),
        down,
    })
}

/// P(all `replicas` down) if every replica failed independently with
/// probability `p`: pⁿ — the number on the design review slide.
pub fn p_all_down_independent(p: f64, replicas: u32) -> f64 {
    p.powi(i32::try_from(replicas).unwrap_or(i32::MAX))
}

/// P(all `replicas` down) when they also share a dependency that is down
/// with probability `shared`: q + (1 − q)·pⁿ. The shared term does not
/// shrink with n; adding replicas behind one power feed buys nothing.
pub fn p_all_down_common_cause(p_own: f64, shared: f64, replicas: u32) -> f64 {
    shared + (1.0 - shared) * p_all_down_independent(p_own, replicas)
}
