//! The comparison table `dslab hash analyze` and the demo print.

use super::analysis::{join, leave, load, memory_per_node, sample_keys};
use super::{Strategy, StrategyConfig};
use crate::Result;

/// One strategy's balance, movement and memory.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyRow {
    pub strategy: Strategy,
    pub max_over_mean: f64,
    pub stddev_over_mean: f64,
    pub join_moved: f64,
    pub join_needless: u64,
    pub leave_moved: f64,
    pub leave_needless: u64,
    /// The ideal shares: 1/(N+1) for a join, 1/N for a leave.
    pub join_ideal: f64,
    pub leave_ideal: f64,
    pub memory_per_node: f64,
}

/// Measures `config` over `nodes` with `keys` sample keys: balance, a node
/// joining (`joiner`), the middle node leaving.
pub fn measure(config: &StrategyConfig, nodes: &[String], keys: u64) -> Result<StrategyRow> {
    let sample: Vec<String> = sample_keys(keys).collect();
    let mut placement = config.build_with(nodes)?;
    let balance = load(placement.as_mut(), &sample)?;
    let memory = memory_per_node(placement.as_ref());
    let joined = join(config, nodes, "joiner", &sample)?;
    let left = leave(config, nodes, &nodes[nodes.len() / 2], &sample)?;
    Ok(StrategyRow {
        strategy: config.strategy,
        max_over_mean: balance.max_over_mean,
        stddev_over_mean: balance.stddev_over_mean,
        join_moved: joined.fraction,
        join_needless: joined.needless,
        leave_moved: left.fraction,
        leave_needless: left.needless,
        join_ideal: joined.ideal,
        leave_ideal: left.ideal,
        memory_per_node: memory,
    })
}

/// The table's header.
pub const HEADER: [&str; 8] = [
    "strategy",
    "max/mean",
    "stddev/mean",
    "join: moved (ideal)",
    "needless",
    "leave: moved (ideal)",
    "needless",
    "memory/node",
];

/// A row as printable cells.
pub fn cells(row: &StrategyRow) -> Vec<String> {
    vec![
        row.strategy.name().to_owned(),
        format!("{:.3}", row.max_over_mean),
        format!("{:.3}", row.stddev_over_mean),
        format!(
            "{:.2}% ({:.2}%)",
            row.join_moved * 100.0,
            row.join_ideal * 100.0
        ),
        row.join_needless.to_string(),
        format!(
            "{:.2}% ({:.2}%)",
            row.leave_moved * 100.0,
            row.leave_ideal * 100.0
        ),
        row.leave_needless.to_string(),
        human_bytes(row.memory_per_node),
    ]
}

fn human_bytes(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}
