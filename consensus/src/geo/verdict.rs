//! What the speed-of-light demo claims about one measured leader, and
//! when it cannot claim it.

use std::time::Duration;

use observability::demo::Narrator;
use patterns::physics::{LatencyMatrix, commit_latency, commit_latency_waiting_for, majority};

use super::demo::{Measured, median, ms};

/// How far apart the majority model and the next-slower one (a quorum
/// miscounted by one, or every follower) must be for a measurement to tell
/// them apart: a commit is judged by which model it sits nearer, so this
/// leaves half of it, 7.5 ms, for what subtracting the loopback overhead
/// does not remove (timer rounding, a busy scheduler) — and a leader whose
/// candidates are closer is shown, not claimed.
const MIN_GAP: Duration = Duration::from_millis(15);

/// The slower model a measurement at `leader` can be told apart from, by
/// name: one follower past the majority, else every follower; `None` when
/// both sit within [`MIN_GAP`] of the majority.
fn rival(matrix: &LatencyMatrix, leader: usize) -> Option<(&'static str, Duration)> {
    let needed = majority(matrix.len()) - 1;
    let model = commit_latency(matrix, leader);
    let every = matrix.len() - 1;
    let one_more = if needed + 1 == every {
        "every follower"
    } else {
        "one follower past the majority"
    };
    [(one_more, needed + 1), ("every follower", every)]
        .into_iter()
        .filter_map(|(name, followers)| {
            commit_latency_waiting_for(matrix, leader, followers).map(|wait| (name, wait))
        })
        .find(|(_, wait)| *wait >= model + MIN_GAP)
}

/// The claims about one measured leader: no commit beats the floor, and
/// the commits (less the loopback overhead) sit nearer the majority round
/// trip than the slower model a miscounted quorum would follow.
pub(super) fn judge(out: &mut Narrator, matrix: &LatencyMatrix, m: &Measured) {
    let site = matrix.sites()[m.leader].name;
    let fastest = m.commits.iter().min().copied().unwrap_or_default();
    out.check(
        format!("leader at {site}: no commit beats the floor"),
        fastest >= m.model,
        format!(
            "fastest {:.1} ms ≥ floor {:.1} ms",
            ms(fastest),
            ms(m.model)
        ),
    );
    let net = m.net();
    let Some((name, wait)) = rival(matrix, m.leader) else {
        out.say(&format!(
            "  leader at {site}: every slower quorum is within {} ms of the majority's {:.1} ms — too close to tell apart here, so shown, not claimed",
            MIN_GAP.as_millis(),
            ms(m.model)
        ));
        return;
    };
    let midpoint = m.model + (wait - m.model) / 2;
    out.check(
        format!("leader at {site}: commits wait for a majority, not {name}"),
        net < midpoint,
        format!(
            "median {:.1} − loopback {:.1} = {:.1} ms: nearer the majority's {:.1} than {name}'s {:.1}",
            ms(median(&m.commits)),
            ms(median(&m.overheads)),
            ms(net),
            ms(m.model),
            ms(wait)
        ),
    );
}
