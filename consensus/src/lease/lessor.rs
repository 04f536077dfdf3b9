//! The leader's lease clock: renewals, expiry, and promotion.
//!
//! Only the leader keeps deadlines. A keep-alive renews a lease on the
//! leader alone — no log entry, which is what makes keep-alives cheap —
//! and when a deadline passes the leader proposes the lease's revoke, so
//! the expiry itself travels through the log like any other change. A
//! follower's lessor keeps no deadlines; when it becomes leader it starts
//! every lease's full TTL again, plus an election timeout so that holders
//! cut off by the election have time to reach the new leader.
//!
//! A deadline that has passed is final: a keep-alive that arrives after it
//! (while the revoke is on its way through the log) answers TTL 0, exactly
//! as for an unknown lease. Renewing it instead would let a holder keep a
//! lock the leader already decided to give away.
//!
//! Bounds: at most [`MAX_REVOKES_PER_ROUND`] revokes are proposed per
//! round (etcd's `leaseRevokeRate` is 1000 per second), and a revoke
//! already on its way is not proposed again for [`REVOKE_RETRY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::proto::etcdserverpb::LeaseRevokeRequest;
use crate::proto::v1::command;
use crate::raft::{RaftNode, Role};
use crate::{Error, Result};

/// How often the leader looks for expired leases.
const ROUND: Duration = Duration::from_millis(100);
/// The most revokes proposed in one round.
pub const MAX_REVOKES_PER_ROUND: usize = 100;
/// How long a proposed revoke may take before it is proposed again.
pub const REVOKE_RETRY: Duration = Duration::from_secs(1);

/// One node's lease clock. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Lessor {
    node: RaftNode,
    clock: Arc<Mutex<Clock>>,
}

#[derive(Debug, Default)]
struct Clock {
    /// The term this node leads and keeps deadlines for; `None` while it
    /// follows.
    primary: Option<u64>,
    deadlines: HashMap<i64, Instant>,
    /// Revokes proposed and not yet applied, with when.
    revoking: HashMap<i64, Instant>,
}

impl Lessor {
    /// The lessor of `node`, with its expiry task running until the node
    /// stops.
    pub fn start(node: RaftNode) -> Self {
        let lessor = Self {
            node,
            clock: Arc::default(),
        };
        tokio::spawn(lessor.clone().run());
        lessor
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The smallest TTL granted, in seconds: etcd's 1.5 election timeouts,
    /// rounded up, so a lease outlives the election that follows a leader's
    /// crash.
    pub fn min_ttl(&self) -> i64 {
        let timing = self.node.timing();
        let election = timing.tick * timing.election_ticks as u32;
        (election.as_secs_f64() * 1.5).ceil().max(1.0) as i64
    }

    /// Follows the node's role now rather than at the next round, so a
    /// request that reaches a new leader before its first round is served.
    fn follow_role(&self) {
        let status = self.node.status();
        let leading = status.role == Role::Leader;
        let current = self.clock().primary;
        if (leading && current != Some(status.term)) || (!leading && current.is_some()) {
            let leases: Vec<(i64, i64)> =
                self.node.read_state(|s| s.mvcc.leases().ttls().collect());
            self.follow(&mut self.clock(), leading, status.term, &leases);
        }
    }

    /// Promotion and demotion: deadlines belong to one leader's term.
    fn follow(&self, clock: &mut Clock, leading: bool, term: u64, leases: &[(i64, i64)]) {
        if !leading {
            *clock = Clock::default();
        } else if clock.primary != Some(term) {
            // Whatever the old leader knew died with its term.
            let timing = self.node.timing();
            let grace = timing.tick * timing.election_ticks as u32;
            let now = Instant::now();
            clock.deadlines = leases
                .iter()
                .map(|(id, ttl)| (*id, now + seconds(*ttl) + grace))
                .collect();
            clock.revoking.clear();
            clock.primary = Some(term);
        }
    }

    /// A lease this leader just granted: its clock starts now.
    pub fn granted(&self, id: i64, ttl: i64) {
        self.follow_role();
        let mut clock = self.clock();
        if clock.primary.is_some() {
            clock.deadlines.insert(id, Instant::now() + seconds(ttl));
        }
    }

    /// Renews lease `id` on the leader; answers its TTL, or 0 if it does
    /// not exist or its deadline has passed. `NotLeader` on a follower.
    pub fn renew(&self, id: i64) -> Result<i64> {
        self.follow_role();
        let ttl = self
            .node
            .read_state(|s| s.mvcc.leases().get(id).map(|l| l.ttl));
        let mut clock = self.clock();
        if clock.primary.is_none() {
            return Err(Error::NotLeader);
        }
        let Some(ttl) = ttl else {
            return Ok(0);
        };
        let now = Instant::now();
        match clock.deadlines.get(&id) {
            Some(deadline) if *deadline <= now => Ok(0),
            _ => {
                clock.deadlines.insert(id, now + seconds(ttl));
                Ok(ttl)
            }
        }
    }

    /// What is left of lease `id` on the leader (`None`: no deadline kept
    /// here, as on a follower).
    pub fn remaining(&self, id: i64) -> Option<Duration> {
        self.follow_role();
        let clock = self.clock();
        clock.primary?;
        clock
            .deadlines
            .get(&id)
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Whether this lessor keeps the deadlines (its node leads).
    pub fn is_primary(&self) -> bool {
        self.clock().primary.is_some()
    }

    async fn run(self) {
        let mut rounds = tokio::time::interval(ROUND);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            let status = self.node.status();
            if status.stopped {
                return;
            }
            let expired = self.round(status.role == Role::Leader, status.term);
            for id in expired {
                let node = self.node.clone();
                tokio::spawn(async move {
                    let revoke = command::Op::LeaseRevoke(LeaseRevokeRequest { id });
                    if let Err(err) = node.propose(revoke).await {
                        tracing::debug!(lease = id, %err, "revoking an expired lease failed; retrying");
                    }
                });
            }
        }
    }

    /// One round: follow the node's role, pick up leases granted or
    /// revoked through the log, and answer the leases to revoke now.
    fn round(&self, leading: bool, term: u64) -> Vec<i64> {
        if !leading {
            // Followers keep no deadlines, and read nothing to keep none.
            let mut clock = self.clock();
            if clock.primary.is_some() {
                *clock = Clock::default();
            }
            return Vec::new();
        }
        let leases: Vec<(i64, i64)> = self.node.read_state(|s| s.mvcc.leases().ttls().collect());
        let now = Instant::now();
        let mut clock = self.clock();
        if !leading || clock.primary != Some(term) {
            self.follow(&mut clock, leading, term, &leases);
            return Vec::new();
        }
        let live: HashMap<i64, i64> = leases.into_iter().collect();
        clock.deadlines.retain(|id, _| live.contains_key(id));
        clock.revoking.retain(|id, _| live.contains_key(id));
        for (id, ttl) in &live {
            clock
                .deadlines
                .entry(*id)
                .or_insert_with(|| now + seconds(*ttl));
        }
        let Clock {
            deadlines,
            revoking,
            ..
        } = &mut *clock;
        let mut expired: Vec<i64> = deadlines
            .iter()
            .filter(|(id, deadline)| {
                **deadline <= now
                    && revoking
                        .get(id)
                        .is_none_or(|since| now.duration_since(*since) >= REVOKE_RETRY)
            })
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired.truncate(MAX_REVOKES_PER_ROUND);
        for id in &expired {
            revoking.insert(*id, now);
        }
        expired
    }
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}
