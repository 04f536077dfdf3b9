//! Majority commit latency across regions.

use std::time::Duration;

use super::matrix::LatencyMatrix;

/// Acknowledgements (the leader's own included) that commit an entry
/// among `replicas`.
pub fn majority(replicas: usize) -> usize {
    replicas / 2 + 1
}

/// The least time a leader at site `leader` needs to commit one entry: the
/// round trip to the follower that completes its majority. The leader
/// counts itself, so it waits for `majority − 1` followers — the fastest
/// ones; the slowest minority never slows a commit (it only stops helping
/// once too many of the near ones fail).
///
/// Simplified: disk writes, the client's own trip to the leader and the
/// leader's processing are left out; the measurement on the Raft KV
/// (`consensus`) shows how little they add in simulation.
pub fn commit_latency(matrix: &LatencyMatrix, leader: usize) -> Duration {
    let followers_needed = majority(matrix.len()) - 1;
    commit_latency_waiting_for(matrix, leader, followers_needed).unwrap_or_default()
}

/// The time a leader at `leader` would take to commit if it waited for
/// `followers` acknowledgements (its own not counted): the round trip to
/// the `followers`-th nearest follower; zero for none, and `None` when
/// there are not that many followers. With `majority − 1` it is
/// [`commit_latency`]; with one more, or with every follower, it is what
/// a miscounted quorum would cost — the models a measurement must be told
/// apart from.
pub fn commit_latency_waiting_for(
    matrix: &LatencyMatrix,
    leader: usize,
    followers: usize,
) -> Option<Duration> {
    let mut rtts: Vec<Duration> = (0..matrix.len())
        .filter(|&follower| follower != leader)
        .map(|follower| matrix.rtt(leader, follower))
        .collect();
    rtts.sort();
    match followers.checked_sub(1) {
        Some(index) => rtts.get(index).copied(),
        None => Some(Duration::ZERO),
    }
}

/// One candidate leader and the commit latency it would give.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderLatency {
    /// The leader's index in the matrix.
    pub leader: usize,
    pub site: &'static str,
    pub commit: Duration,
}

/// Every site as leader, fastest first (ties: the earlier site).
pub fn leaders_by_latency(matrix: &LatencyMatrix) -> Vec<LeaderLatency> {
    let mut all: Vec<LeaderLatency> = matrix
        .sites()
        .iter()
        .enumerate()
        .map(|(leader, city)| LeaderLatency {
            leader,
            site: city.name,
            commit: commit_latency(matrix, leader),
        })
        .collect();
    all.sort_by_key(|candidate| (candidate.commit, candidate.leader));
    all
}

/// The site that commits fastest as leader.
pub fn best_leader(matrix: &LatencyMatrix) -> LeaderLatency {
    leaders_by_latency(matrix)
        .into_iter()
        .next()
        .expect("a matrix has at least one site (checked when built)")
}
