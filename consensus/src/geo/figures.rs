//! The speed-of-light demo's figures: placements side by side, and every
//! measured leader against its floor.

use observability::demo::Narrator;
use observability::plot::{LineChart, Series};
use patterns::physics::LeaderLatency;

use super::PLACEMENTS;
use super::demo::{Measured, median, ms};

/// Two figures: per placement, the fastest leader's commit (model and
/// measured) and the slowest leader's model; and every measured leader
/// against its floor, with the line no point may fall below.
pub(super) fn draw(out: &mut Narrator, placements: &[(Vec<LeaderLatency>, Vec<Measured>)]) {
    let mut best_model = Vec::new();
    let mut best_seen = Vec::new();
    let mut worst_model = Vec::new();
    let mut against_floor = LineChart::new(
        "Measured Raft commits against the majority-RTT floor",
        "floor: majority round trip (ms)",
        "measured median commit (ms)",
    );
    // The line runs past the points, so the legend (top right) covers
    // only the line. The two leaders of a placement are two measurements,
    // not a curve: markers only.
    let mut top: f64 = 0.0;
    for (index, ((name, _), (model, measured))) in PLACEMENTS.iter().zip(placements).enumerate() {
        let x = (index + 1) as f64;
        if let (Some(first), Some(last)) = (model.first(), model.last()) {
            best_model.push((x, ms(first.commit)));
            worst_model.push((x, ms(last.commit)));
            if let Some(seen) = measured.iter().find(|m| m.leader == first.leader) {
                best_seen.push((x, ms(median(&seen.commits))));
            }
        }
        let mut points: Vec<(f64, f64)> = measured
            .iter()
            .map(|m| (ms(m.model), ms(median(&m.commits))))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        top = points.iter().fold(top, |t, p| t.max(p.1));
        against_floor = against_floor.series(Series::points(*name, points));
    }
    out.figure(
        "speed-of-light-placements",
        &LineChart::new(
            "Commit latency by placement",
            "placement",
            "commit latency (ms)",
        )
        .x_categories(PLACEMENTS.iter().map(|(name, _)| *name))
        .series(Series::points("fastest leader — model (floor)", best_model))
        .series(Series::points(
            "fastest leader — measured on Raft",
            best_seen,
        ))
        .series(Series::points(
            "slowest leader — model (floor)",
            worst_model,
        )),
    );
    out.figure(
        "speed-of-light-measured-vs-floor",
        &against_floor.series(Series::line(
            "the floor (measured = floor)",
            vec![(0.0, 0.0), (top * 1.5, top * 1.5)],
        )),
    );
}
