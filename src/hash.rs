//! `dslab hash analyze`: the balance / movement / memory table.

use observability::demo::Narrator;
use patterns::hashing::{StrategyConfig, report};

/// The most sample keys `analyze` accepts.
pub const MAX_KEYS: u64 = 10_000_000;

/// Measures every config over `nodes` (default: node-0…node-9) with
/// `keys` sample keys, printing one row per strategy.
pub fn analyze(
    configs: &[StrategyConfig],
    nodes: &[String],
    keys: u64,
    out: &mut Narrator,
) -> anyhow::Result<()> {
    let nodes: Vec<String> = if nodes.is_empty() {
        (0..10).map(|i| format!("node-{i}")).collect()
    } else {
        nodes.to_vec()
    };
    anyhow::ensure!(
        nodes.len() >= 2,
        "analysis needs at least two nodes (one leaves)"
    );
    anyhow::ensure!(
        (1..=MAX_KEYS).contains(&keys),
        "--keys must be between 1 and {MAX_KEYS}"
    );
    let rows = configs
        .iter()
        .map(|config| report::measure(config, &nodes, keys).map(|row| report::cells(&row)))
        .collect::<Result<Vec<_>, _>>()?;
    out.say(&format!(
        "{} nodes, {keys} keys; a node joins, then the middle node leaves.",
        nodes.len()
    ));
    out.table(&report::HEADER, &rows);
    Ok(())
}
