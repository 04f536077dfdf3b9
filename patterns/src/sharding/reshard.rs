//! Resharding plans: exactly which hash ranges change owner, and where to.
//!
//! Before moving data, an operator wants the list: "copy (a, b] from n3 to
//! n7". For a ring that list is exact, not sampled. Merge both rings'
//! points into one sorted circle; between two consecutive points every
//! hash has the same owner in each ring (no point of either ring lies
//! between them), so comparing the owners at each point gives every arc
//! that moves. Adjacent arcs with the same move are merged.

use crate::Result;
use crate::hashing::ring::Ring;

/// Hashes in `(after, up_to]` (wrapping past `u64::MAX` when
/// `after >= up_to`) move from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRangeMove {
    pub after: u64,
    pub up_to: u64,
    pub from: String,
    pub to: String,
}

impl HashRangeMove {
    /// Whether `hash` falls in this range.
    pub fn contains(&self, hash: u64) -> bool {
        if self.after < self.up_to {
            hash > self.after && hash <= self.up_to
        } else {
            hash > self.after || hash <= self.up_to
        }
    }

    /// The range's share of the circle.
    pub fn fraction(&self) -> f64 {
        self.up_to.wrapping_sub(self.after) as f64 / 2f64.powi(64)
    }
}

/// Every hash range whose owner differs between `before` and `after`.
pub fn ring_plan(before: &Ring, after: &Ring) -> Result<Vec<HashRangeMove>> {
    let mut points: Vec<u64> = before
        .points()
        .chain(after.points())
        .map(|(p, _)| p)
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut moves: Vec<HashRangeMove> = Vec::new();
    for (i, &point) in points.iter().enumerate() {
        let previous = points[(i + points.len() - 1) % points.len()];
        let (from, to) = (before.owner_of_hash(point)?, after.owner_of_hash(point)?);
        if from == to {
            continue;
        }
        match moves.last_mut() {
            Some(last) if last.up_to == previous && last.from == from && last.to == to => {
                last.up_to = point
            }
            _ => moves.push(HashRangeMove {
                after: previous,
                up_to: point,
                from: from.to_owned(),
                to: to.to_owned(),
            }),
        }
    }
    // The last arc may continue into the first across the top of the circle.
    if moves.len() > 1 {
        let (first, last) = (&moves[0], &moves[moves.len() - 1]);
        if last.up_to == first.after && last.from == first.from && last.to == first.to {
            let merged_end = moves[0].up_to;
            moves.remove(0);
            if let Some(last) = moves.last_mut() {
                last.up_to = merged_end;
            }
        }
    }
    Ok(moves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::analysis::sample_keys;
    use crate::hashing::{Placement, key_hash};

    fn ring(names: &[&str]) -> Ring {
        let mut ring = Ring::new(50).expect("valid");
        for name in names {
            ring.add_node(name, 1).expect("fresh");
        }
        ring
    }

    /// Episode 24. The plan for a join lists ranges moving only to the new
    /// node, covering about 1/(N+1) of the circle, and every key that
    /// actually moves falls in a planned range with the right owners.
    #[test]
    fn sharding_reshard_plan_matches_the_keys_that_move() {
        let before = ring(&["a", "b", "c", "d"]);
        let after = ring(&["a", "b", "c", "d", "e"]);
        let plan = ring_plan(&before, &after).expect("non-empty rings");
        assert!(
            plan.iter().all(|m| m.to == "e"),
            "joins only move keys to the newcomer"
        );
        let share: f64 = plan.iter().map(HashRangeMove::fraction).sum();
        assert!((share - 0.2).abs() < 0.06, "planned share {share}");

        let mut moved = 0;
        for key in sample_keys(50_000) {
            let (from, to) = (
                before.owner(key.as_bytes()).expect("m"),
                after.owner(key.as_bytes()).expect("m"),
            );
            let hash = key_hash(key.as_bytes());
            let planned = plan.iter().find(|m| m.contains(hash));
            if from == to {
                assert!(planned.is_none(), "{key} stays but is planned to move");
            } else {
                moved += 1;
                let planned =
                    planned.unwrap_or_else(|| panic!("{key} moves but is not in the plan"));
                assert_eq!((planned.from.as_str(), planned.to.as_str()), (from, to));
            }
        }
        let sampled = f64::from(moved) / 50_000.0;
        assert!(
            (sampled - share).abs() < 0.01,
            "sampled {sampled} vs planned {share}"
        );
    }

    #[test]
    fn sharding_reshard_plan_for_a_leave_hands_out_only_its_ranges() {
        let before = ring(&["a", "b", "c"]);
        let after = ring(&["a", "c"]);
        let plan = ring_plan(&before, &after).expect("non-empty");
        assert!(!plan.is_empty());
        assert!(plan.iter().all(|m| m.from == "b" && m.to != "b"));
        assert!(
            ring_plan(&before, &before).expect("same").is_empty(),
            "no change, no plan"
        );
    }
}
