//! Measuring a placement: balance, movement on membership change, memory.
//!
//! The consistent-hashing deep dive's questions, answered by counting:
//! how uneven is the load (max/mean, and the coefficient of variation
//! stddev/mean), how many keys move when a node joins or leaves compared
//! with the ideal K/N, and whether any moved key went somewhere it had no
//! reason to go.

use std::collections::BTreeMap;

use super::{Placement, StrategyConfig};
use crate::Result;

/// The keys `key-0` … `key-{n-1}`, the sample every analysis uses.
pub fn sample_keys(n: u64) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("key-{i}"))
}

/// How keys spread over the nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// Keys per node, every member listed (in name order).
    pub per_node: BTreeMap<String, u64>,
    pub keys: u64,
    pub mean: f64,
    pub max: u64,
    /// 1.0 is perfect balance.
    pub max_over_mean: f64,
    /// Coefficient of variation; 0.0 is perfect balance.
    pub stddev_over_mean: f64,
}

/// Assigns every key and reports the spread.
pub fn load<K: AsRef<[u8]>>(
    placement: &mut dyn Placement,
    keys: impl IntoIterator<Item = K>,
) -> Result<LoadReport> {
    let mut per_node: BTreeMap<String, u64> = placement
        .nodes()
        .into_iter()
        .map(|n| (n.to_owned(), 0))
        .collect();
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    for key in keys {
        let owner = placement.assign(key.as_ref())?;
        match by_name.get_mut(owner) {
            Some(count) => *count += 1,
            None => {
                by_name.insert(owner.to_owned(), 1);
            }
        }
        total += 1;
    }
    for (name, count) in by_name {
        *per_node.entry(name).or_default() += count;
    }
    let n = per_node.len().max(1) as f64;
    let mean = total as f64 / n;
    let max = per_node.values().copied().max().unwrap_or(0);
    let variance = per_node
        .values()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let ratio = |x: f64| if mean > 0.0 { x / mean } else { 0.0 };
    Ok(LoadReport {
        per_node,
        keys: total,
        mean,
        max,
        max_over_mean: ratio(max as f64),
        stddev_over_mean: ratio(variance.sqrt()),
    })
}

/// What a membership change did to the keys.
#[derive(Clone, Debug, PartialEq)]
pub struct MovementReport {
    pub keys: u64,
    pub moved: u64,
    /// `moved / keys`.
    pub fraction: f64,
    /// The least any scheme must move: 1/(N+1) on a join, 1/N on a leave.
    pub ideal: f64,
    /// Moved keys that neither left the departed node nor went to the new
    /// one: movement with no reason. Zero for minimal-movement schemes.
    pub needless: u64,
}

impl MovementReport {
    /// How far the moved fraction is from the ideal, relative to it
    /// (0.10 = 10 % more or fewer keys moved than K/N).
    pub fn excess(&self) -> f64 {
        (self.fraction - self.ideal).abs() / self.ideal
    }
}

fn owners<K: AsRef<[u8]>>(placement: &mut dyn Placement, keys: &[K]) -> Result<Vec<String>> {
    keys.iter()
        .map(|k| placement.assign(k.as_ref()).map(str::to_owned))
        .collect()
}

/// Keys that move when `joining` is added to `nodes`.
pub fn join<K: AsRef<[u8]>>(
    config: &StrategyConfig,
    nodes: &[String],
    joining: &str,
    keys: &[K],
) -> Result<MovementReport> {
    let before = owners(config.build_with(nodes)?.as_mut(), keys)?;
    let mut grown = config.build_with(nodes)?;
    grown.add_node(joining, 1)?;
    let after = owners(grown.as_mut(), keys)?;
    Ok(compare(
        &before,
        &after,
        keys.len(),
        1.0 / (nodes.len() + 1) as f64,
        |_, to| to == joining,
    ))
}

/// Keys that move when `leaving` is removed from `nodes`.
pub fn leave<K: AsRef<[u8]>>(
    config: &StrategyConfig,
    nodes: &[String],
    leaving: &str,
    keys: &[K],
) -> Result<MovementReport> {
    let before = owners(config.build_with(nodes)?.as_mut(), keys)?;
    let mut shrunk = config.build_with(nodes)?;
    shrunk.remove_node(leaving)?;
    let after = owners(shrunk.as_mut(), keys)?;
    Ok(compare(
        &before,
        &after,
        keys.len(),
        1.0 / nodes.len() as f64,
        |from, _| from == leaving,
    ))
}

fn compare(
    before: &[String],
    after: &[String],
    keys: usize,
    ideal: f64,
    justified: impl Fn(&str, &str) -> bool,
) -> MovementReport {
    let (mut moved, mut needless) = (0, 0);
    for (from, to) in before.iter().zip(after) {
        if from != to {
            moved += 1;
            if !justified(from, to) {
                needless += 1;
            }
        }
    }
    MovementReport {
        keys: keys as u64,
        moved,
        fraction: moved as f64 / keys.max(1) as f64,
        ideal,
        needless,
    }
}

/// Bytes of lookup structure per member.
pub fn memory_per_node(placement: &dyn Placement) -> f64 {
    placement.memory_bytes() as f64 / placement.nodes().len().max(1) as f64
}
