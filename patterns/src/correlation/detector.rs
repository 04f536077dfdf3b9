//! Finding the hidden shared dependency from failure samples alone.

use super::fleet::{Dependency, FailureSeries};
use super::stats::Contingency;
use crate::Result;

/// When two hosts count as failing together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// φ at least this: a real association, not a statistical one. With
    /// thousands of samples a φ of 0.05 is "significant" and meaningless.
    pub min_phi: f64,
    /// χ² = n·φ² at least this: not chance. 10.83 is p < 0.001 for
    /// independent samples.
    pub min_chi_square: f64,
    /// An inventory entry names a cluster when its host set overlaps the
    /// cluster's by at least this Jaccard index.
    pub min_match: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_phi: 0.3,
            min_chi_square: 10.83,
            min_match: 0.5,
        }
    }
}

/// A group of hosts that fail together, and what they probably share.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspect {
    /// Host indices, ascending.
    pub hosts: Vec<usize>,
    /// The mean φ over the correlated pairs inside the group.
    pub mean_phi: f64,
    /// The inventory entry whose hosts match best, and how well (Jaccard).
    pub named: Option<(String, f64)>,
}

/// The 2×2 table of every pair of hosts `(a, b, table)`, `a < b`.
///
/// Hosts are up almost all the time, so each host's series is kept as the
/// list of steps it was down, and a pair's "both down" count is the
/// intersection of two short sorted lists — the tables come out the same
/// as [`Contingency::of`] on the full series, at a fraction of the work.
pub fn pair_tables(series: &FailureSeries) -> Result<Vec<(usize, usize, Contingency)>> {
    let steps = series.steps();
    let mut down_steps = Vec::with_capacity(series.down.len());
    for down in &series.down {
        if down.len() != steps {
            return Err(crate::Error::InvalidSeries {
                reason: format!("host series of {} and {steps} samples", down.len()),
            });
        }
        down_steps.push(
            (0..steps)
                .filter(|&step| down[step])
                .collect::<Vec<usize>>(),
        );
    }
    let mut tables = Vec::new();
    for (a, down_a) in down_steps.iter().enumerate() {
        for (b, down_b) in down_steps.iter().enumerate().skip(a + 1) {
            let both = intersection(down_a, down_b) as u64;
            let (only_a, only_b) = (down_a.len() as u64 - both, down_b.len() as u64 - both);
            tables.push((
                a,
                b,
                Contingency {
                    both,
                    only_a,
                    only_b,
                    neither: steps as u64 - both - only_a - only_b,
                },
            ));
        }
    }
    Ok(tables)
}

/// How many values two ascending lists share.
fn intersection(a: &[usize], b: &[usize]) -> usize {
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn jaccard(a: &[usize], b: &[usize]) -> f64 {
    let common = a.iter().filter(|h| b.contains(h)).count();
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

/// Groups hosts that fail together (pairs above both thresholds, joined
/// transitively) and names each group after the inventory entry — rack,
/// power feed, resolver — whose hosts match it best. `inventory` is what
/// the CMDB believes each host depends on; a group nothing matches comes
/// back unnamed, which is the most important finding of all: a dependency
/// nobody wrote down.
pub fn detect(
    series: &FailureSeries,
    inventory: &[Dependency],
    config: DetectorConfig,
) -> Result<Vec<Suspect>> {
    let n = series.down.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut edges = Vec::new();
    for (a, b, table) in pair_tables(series)? {
        // A host that never failed has no φ: it cannot be shown to share
        // anything, so it joins no group.
        let (Ok(phi), Ok(chi_square)) = (table.phi(), table.chi_square()) else {
            continue;
        };
        if phi >= config.min_phi && chi_square >= config.min_chi_square {
            edges.push((a, b, phi));
            let (root_a, root_b) = (find(&mut parent, a), find(&mut parent, b));
            parent[root_a] = root_b;
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for host in 0..n {
        let root = find(&mut parent, host);
        groups.entry(root).or_default().push(host);
    }
    let mut suspects: Vec<Suspect> = groups
        .into_values()
        .filter(|hosts| hosts.len() >= 2)
        .map(|hosts| {
            let inside: Vec<f64> = edges
                .iter()
                .filter(|(a, _, _)| hosts.contains(a))
                .map(|&(_, _, phi)| phi)
                .collect();
            let mean_phi = inside.iter().sum::<f64>() / inside.len().max(1) as f64;
            let named = inventory
                .iter()
                .map(|d| (d.name.clone(), jaccard(&hosts, &d.hosts)))
                .filter(|(_, score)| *score >= config.min_match)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            Suspect {
                hosts,
                mean_phi,
                named,
            }
        })
        .collect();
    suspects.sort_by(|a, b| a.hosts.cmp(&b.hosts));
    Ok(suspects)
}
