//! raft-rs's `Storage`, over a [`Disk`], with the log kept in memory.
//!
//! raft-rs reads the log through `Storage` on every append it sends and
//! every Ready it builds. Serving those reads from the disk would put file
//! reads (and raft-engine's purge races) on the hot path, so every entry
//! from the truncation point to the end of the log lives in memory too:
//! the disk is written, and read back only at start-up (and for a
//! snapshot a follower needs). The log is kept short by snapshots (the
//! node snapshots every [`super::NodeConfig::snapshot_entries`] entries or
//! [`super::NodeConfig::max_log_bytes`] and truncates behind them), so this
//! cache is bounded.

// raft-rs's protobuf-2 types are filled field by field: their message
// fields are set through setters, which a struct literal cannot call.
#![allow(clippy::field_reassign_with_default)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::disk::{Disk, DiskBatch};
use crate::{Error, Result};

/// The Raft log and state of one node.
pub struct RaftStorage {
    disk: Box<dyn Disk>,
    hard_state: HardState,
    /// The configuration raft-rs starts from: the latest snapshot's. The
    /// changes after it are in the log and applied again at start-up.
    conf_state: ConfState,
    /// The latest snapshot (taken here, or installed from a leader).
    snapshot: Option<SnapshotMetadata>,
    /// Entries up to this (index, term) are gone.
    truncated: (u64, u64),
    entries: VecDeque<Entry>,
    entry_bytes: usize,
    /// raft-rs asked for a snapshot the latest one cannot serve; the Raft
    /// loop takes a fresh one.
    snapshot_wanted: AtomicBool,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage")
            .field("truncated", &self.truncated)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// What an entry costs in memory and on disk, roughly: its payload and a
/// fixed overhead.
pub(crate) fn entry_size(entry: &Entry) -> usize {
    entry.data.len() + entry.context.len() + 32
}

impl RaftStorage {
    /// Loads what `disk` holds.
    pub fn open(mut disk: Box<dyn Disk>) -> Result<Self> {
        let recovered = disk.load()?;
        let conf_state = recovered
            .snapshot
            .as_ref()
            .map(|meta| meta.get_conf_state().clone())
            .unwrap_or_default();
        let entry_bytes = recovered.entries.iter().map(entry_size).sum();
        Ok(Self {
            disk,
            hard_state: recovered.hard_state,
            conf_state,
            snapshot: recovered.snapshot,
            truncated: recovered.truncated,
            entries: recovered.entries.into(),
            entry_bytes,
            snapshot_wanted: AtomicBool::new(false),
        })
    }

    /// Whether raft-rs needs a newer snapshot than the latest (and clears
    /// the request).
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// Whether the disk held nothing (a new member).
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.term == 0
    }

    pub fn snapshot_metadata(&self) -> Option<&SnapshotMetadata> {
        self.snapshot.as_ref()
    }

    /// The data of the latest snapshot.
    pub fn snapshot_data(&self) -> Result<Option<Vec<u8>>> {
        self.snapshot
            .as_ref()
            .map(|meta| self.disk.snapshot_data(meta))
            .transpose()
    }

    pub fn log_bytes(&self) -> usize {
        self.entry_bytes
    }

    /// Where snapshot files can be written off the Raft loop, if anywhere.
    pub fn snapshot_files(&self) -> Option<super::disk::SnapshotFiles> {
        self.disk.snapshot_files()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk.size_bytes()
    }

    fn first(&self) -> u64 {
        self.truncated.0 + 1
    }

    fn last(&self) -> u64 {
        self.truncated.0 + self.entries.len() as u64
    }

    /// Persists what a Ready asks for: new entries (replacing any that
    /// conflict) and the hard state, in one batch, synced if `sync`.
    ///
    /// Pitfall: raft-engine accepts a batch with a gap in the log, writes
    /// it, and then panics — now and at every restart. A gap here is a bug
    /// upstream of the disk, refused before anything is written.
    pub fn persist(
        &mut self,
        entries: Vec<Entry>,
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()> {
        if let Some(first) = entries.first() {
            if first.index < self.first() || first.index > self.last() + 1 {
                return Err(Error::Storage(format!(
                    "appending from index {} to a log holding {}..={}",
                    first.index,
                    self.first(),
                    self.last()
                )));
            }
            let keep = (first.index - self.first()) as usize;
            for dropped in self.entries.drain(keep..) {
                self.entry_bytes -= entry_size(&dropped);
            }
            self.entry_bytes += entries.iter().map(entry_size).sum::<usize>();
            self.entries.extend(entries.iter().cloned());
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        let batch = DiskBatch {
            entries,
            hard_state: hard_state.cloned(),
            sync,
            ..DiskBatch::default()
        };
        if batch.is_empty() {
            return Ok(());
        }
        blocking(|| self.disk.write(batch))
    }

    /// Notes a newer commit index (from a LightReady); it reaches the disk
    /// with the next write, or with the next snapshot at the latest.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// Installs a snapshot a leader sent: the log is replaced by it.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata().clone();
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = hard_state.commit.max(meta.index);
        let batch = DiskBatch {
            clean: true,
            hard_state: Some(hard_state.clone()),
            snapshot: Some((meta.clone(), snapshot.data.to_vec())),
            truncate_to: Some((meta.index, meta.term)),
            sync: true,
            ..DiskBatch::default()
        };
        blocking(|| self.disk.write(batch))?;
        self.hard_state = hard_state;
        self.conf_state = meta.get_conf_state().clone();
        self.truncated = (meta.index, meta.term);
        self.entries.clear();
        self.entry_bytes = 0;
        self.snapshot = Some(meta);
        Ok(())
    }

    /// Records a snapshot of the state machine at `meta.index` and drops
    /// the log up to `keep_entries` before it (a follower that far behind
    /// catches up from the log; one further behind gets the snapshot).
    ///
    /// Pitfall: the snapshot, the truncation point and a commit index at
    /// least as high as the snapshot must reach the disk together. Written
    /// apart, a crash between them restarts raft-rs with a commit index
    /// below the log's first entry, and it refuses to start.
    pub fn record_snapshot(
        &mut self,
        meta: SnapshotMetadata,
        data: Vec<u8>,
        keep_entries: u64,
    ) -> Result<()> {
        let compact_to = meta.index.saturating_sub(keep_entries);
        let truncate_to = if compact_to > self.truncated.0 && compact_to <= self.last() {
            let term = raft::Storage::term(self, compact_to)
                .map_err(|e| Error::Storage(format!("term of entry {compact_to}: {e}")))?;
            Some((compact_to, term))
        } else {
            None
        };
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = hard_state.commit.max(meta.index);
        let batch = DiskBatch {
            hard_state: Some(hard_state.clone()),
            snapshot: Some((meta.clone(), data)),
            truncate_to,
            sync: true,
            ..DiskBatch::default()
        };
        blocking(|| self.disk.write(batch))?;
        self.hard_state = hard_state;
        if let Some((index, term)) = truncate_to {
            let drop = (index - self.truncated.0) as usize;
            for dropped in self.entries.drain(..drop) {
                self.entry_bytes -= entry_size(&dropped);
            }
            self.truncated = (index, term);
        }
        self.snapshot = Some(meta);
        blocking(|| self.disk.purge())
    }

    /// The first state of a new cluster, the same on every founding
    /// member: a snapshot at index 1, term 1, holding the founders as
    /// voters and `data` (an empty state machine that knows the members).
    /// Seeding above index 0 lets members added later learn the
    /// configuration from a snapshot like any lagging follower.
    pub fn bootstrap(&mut self, voters: Vec<u64>, data: Vec<u8>) -> Result<()> {
        let mut meta = SnapshotMetadata::default();
        meta.index = 1;
        meta.term = 1;
        let mut conf_state = ConfState::default();
        conf_state.voters = voters;
        meta.set_conf_state(conf_state.clone());
        let mut hard_state = HardState::default();
        hard_state.term = 1;
        hard_state.commit = 1;
        let batch = DiskBatch {
            hard_state: Some(hard_state.clone()),
            snapshot: Some((meta.clone(), data)),
            truncate_to: Some((1, 1)),
            sync: true,
            ..DiskBatch::default()
        };
        blocking(|| self.disk.write(batch))?;
        self.hard_state = hard_state;
        self.conf_state = conf_state;
        self.truncated = (1, 1);
        self.snapshot = Some(meta);
        Ok(())
    }
}

/// Runs disk I/O without stalling the async workers: on a multi-threaded
/// runtime the worker hands its other tasks to the rest while it waits for
/// the disk. (A simulation runs on one thread with a disk in memory.)
fn blocking<T>(io: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(io)
        }
        _ => io(),
    }
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut entries: Vec<Entry> = self.entries.range(from..to).cloned().collect();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if index < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((index - self.first()) as usize)
            .map(|entry| entry.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let Some(meta) = &self.snapshot else {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        };
        // A follower asked for one newer than ours, or the recipient is not
        // in our snapshot's configuration — a member added since, which
        // raft-rs would refuse to restore from it. Either way the next
        // snapshot the node takes will do; raft-rs asks again.
        let conf = meta.get_conf_state();
        let knows_recipient = conf
            .get_voters()
            .iter()
            .chain(conf.get_learners())
            .chain(conf.get_voters_outgoing())
            .chain(conf.get_learners_next())
            .any(|id| *id == to);
        if meta.index < request_index || !knows_recipient {
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let data = blocking(|| self.disk.snapshot_data(meta))
            .map_err(|_| raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))?;
        let mut snapshot = Snapshot::default();
        snapshot.data = data.into();
        snapshot.set_metadata(meta.clone());
        Ok(snapshot)
    }
}
