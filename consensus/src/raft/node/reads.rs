//! Linearizable reads by ReadIndex, as the Ready loop serves them.
//!
//! A read must see every write acknowledged before it began. Serving it
//! from local state is not enough — this node may be a follower that is
//! behind, or a leader deposed without knowing it. ReadIndex asks the
//! leader for its commit index and has it confirm, with a heartbeat round,
//! that a majority still follows it; once this node has applied up to that
//! index, its state is at least as new as any acknowledged write (Raft
//! thesis §6.4). Reads that arrive together share one request. raft-rs
//! drops a ReadIndex silently before a new leader has committed an entry
//! of its own term, so unanswered requests are asked again, and every read
//! has a deadline.
//!
//! With `ReadMode::LeaderLease`, each confirmed round also starts a lease
//! measured from when the round was *asked*; until it runs out, reads on
//! the leader skip the round. The lease is only as good as its bound on
//! how much faster another member's clock may run.

use super::*;

/// Reads waiting, each with its deadline.
pub(super) type WaitingReads = Vec<(Instant, oneshot::Sender<Result<()>>)>;

/// Reads waiting on one ReadIndex request.
pub(super) struct ReadBatch {
    pub(super) issued_tick: u64,
    /// When and in which term it was asked: a confirmation starts a
    /// leader lease from then, not from when it arrived.
    pub(super) issued_at: Instant,
    pub(super) term: u64,
    pub(super) replies: WaitingReads,
}

impl Loop {
    pub(super) fn read(&mut self, reply: oneshot::Sender<Result<()>>) {
        if self.removed {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        if self.settings.read_mode == ReadMode::UnsafeLocal {
            // The broken twin: whatever this node has applied, leader or
            // not, current or not.
            let _ = reply.send(Ok(()));
            return;
        }
        // Every read not yet answered, wherever it waits.
        let waiting: usize = self.waiting_reads.len()
            + self
                .read_batches
                .values()
                .map(|b| b.replies.len())
                .sum::<usize>()
            + self
                .indexed_reads
                .iter()
                .map(|(_, replies)| replies.len())
                .sum::<usize>();
        if waiting >= MAX_PENDING_READS {
            let _ = reply.send(Err(Error::TooManyRequests));
            return;
        }
        let deadline = self.deadline();
        if self.lease_holds() {
            // Nobody else can lead yet: what this leader has committed is
            // the newest there is.
            let committed = self.raw.raft.raft_log.committed;
            self.indexed_reads
                .push((committed, vec![(deadline, reply)]));
            self.serve_reads();
            return;
        }
        self.waiting_reads.push((deadline, reply));
    }

    /// Whether this node leads under a lease that has not run out, and has
    /// committed an entry of its term (so its commit index is current).
    fn lease_holds(&self) -> bool {
        let ReadMode::LeaderLease { .. } = self.settings.read_mode else {
            return false;
        };
        let raft = &self.raw.raft;
        self.is_leader()
            && raft.commit_to_current_term()
            && raft.lead_transferee.is_none()
            && self
                .lease
                .is_some_and(|(term, until)| term == raft.term && Instant::now() < until)
    }

    /// How long a confirmation keeps the lease: the shortest election
    /// timeout less one tick (a voter's first tick may come right after
    /// the heartbeat), shortened for a voter whose clock runs fast.
    fn lease_length(&self, max_drift_percent: u32) -> Duration {
        let timing = self.settings.timing;
        let election = timing.tick * (timing.election_ticks.saturating_sub(1)) as u32;
        election.mul_f64(100.0 / (100.0 + f64::from(max_drift_percent)))
    }

    /// Asks raft for one read index covering every read that arrived since
    /// the last: one heartbeat round answers them all.
    pub(super) fn issue_reads(&mut self) {
        if self.waiting_reads.is_empty() {
            return;
        }
        self.next_read += 1;
        let context = self.next_read;
        let replies = std::mem::take(&mut self.waiting_reads);
        self.raw.read_index(context.to_be_bytes().to_vec());
        self.read_batches.insert(
            context,
            ReadBatch {
                issued_tick: self.ticks,
                issued_at: Instant::now(),
                term: self.raw.raft.term,
                replies,
            },
        );
    }

    pub(super) fn handle_read_states(&mut self, read_states: Vec<raft::ReadState>) {
        for read_state in read_states {
            let Ok(context) = <[u8; 8]>::try_from(read_state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(batch) = self.read_batches.remove(&u64::from_be_bytes(context)) {
                if let ReadMode::LeaderLease { max_drift_percent } = self.settings.read_mode
                    && self.is_leader()
                    && batch.term == self.raw.raft.term
                {
                    let until = batch.issued_at + self.lease_length(max_drift_percent);
                    if self
                        .lease
                        .is_none_or(|(term, old)| term != batch.term || old < until)
                    {
                        self.lease = Some((batch.term, until));
                    }
                }
                self.indexed_reads.push((read_state.index, batch.replies));
            }
        }
    }

    /// Answers the reads whose read index is applied.
    pub(super) fn serve_reads(&mut self) {
        if self.indexed_reads.is_empty() {
            return;
        }
        let applied = read(&self.state).applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.indexed_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.indexed_reads = waiting;
        for (_, replies) in ready {
            for (_, reply) in replies {
                let _ = reply.send(Ok(()));
            }
        }
    }
}
