//! Where a node's Raft state survives a crash: the log, the hard state
//! (term, vote, commit) and snapshots.
//!
//! [`EngineDisk`] is the real one: raft-engine (TiKV's embedded Raft log)
//! for entries and small records, plus snapshot files beside it.
//! [`MemDisk`] keeps the same records in memory behind a shared handle, so
//! a simulated node that crashes and restarts finds what it wrote — a disk
//! whose every write is durable at once, for simulations where fsync is not
//! the subject.
//!
//! Every write is one atomic batch ([`DiskBatch`]): entries, the hard
//! state, a snapshot and the log's truncation point land together or not
//! at all.
//!
//! Pitfalls (raft-engine 0.4, each checked against its source):
//! - appending with a gap panics *after* the batch is on disk, and then on
//!   every restart: the caller checks contiguity before writing;
//! - `Engine::sync()` does not fsync; durability comes from
//!   `write(batch, true)`;
//! - reading entries while `purge_expired_files` rewrites a file can fail:
//!   entries are read only at start-up, and purges run on the Raft loop;
//! - raft-engine forgets the term of the last compacted entry, which
//!   `Storage::term(first_index - 1)` must answer: it is stored here;
//! - installing a snapshot must drop entries above it too: `Clean`, then
//!   the records again, in the same batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use raft::eraftpb::{Entry, HardState, SnapshotMetadata};
use raft_engine::{Command, Config as EngineConfig, Engine, LogBatch, MessageExt, ReadableSize};

use crate::{Error, Result};

/// What a node finds on its disk when it starts.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    /// The latest snapshot's metadata; `None` on a fresh disk.
    pub snapshot: Option<SnapshotMetadata>,
    /// Entries up to this (index, term) are gone from the log.
    pub truncated: (u64, u64),
    /// The log after the truncation point, in order.
    pub entries: Vec<Entry>,
}

/// One atomic write.
#[derive(Clone, Debug, Default)]
pub struct DiskBatch {
    /// Drop every record and entry first (installing a snapshot).
    pub clean: bool,
    /// Entries to append; those at and after the first one's index are
    /// replaced.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// A new snapshot: its metadata and its data.
    pub snapshot: Option<(SnapshotMetadata, Vec<u8>)>,
    /// Entries up to this (index, term) can go.
    pub truncate_to: Option<(u64, u64)>,
    /// Wait until the batch is durable (fsync) before returning.
    pub sync: bool,
}

impl DiskBatch {
    pub fn is_empty(&self) -> bool {
        !self.clean
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.truncate_to.is_none()
    }
}

/// Where Raft state lives.
pub trait Disk: Send + 'static {
    fn load(&mut self) -> Result<Recovered>;
    fn write(&mut self, batch: DiskBatch) -> Result<()>;
    /// The data of the snapshot `metadata` describes.
    fn snapshot_data(&self, metadata: &SnapshotMetadata) -> Result<Vec<u8>>;
    /// Bytes on disk (for `Maintenance.Status`).
    fn size_bytes(&self) -> u64;
    /// Where snapshot files go, if this disk keeps them in files: the Raft
    /// loop writes a new snapshot's file off its thread, before the batch
    /// that records it (which then finds it written).
    fn snapshot_files(&self) -> Option<SnapshotFiles> {
        None
    }

    /// Reclaims space the log no longer needs; call from the Raft loop.
    fn purge(&mut self) -> Result<()> {
        Ok(())
    }
}

fn storage(context: &str, err: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{context}: {err}"))
}

// ---------------------------------------------------------------------------
// In memory.

#[derive(Debug, Default)]
struct MemState {
    hard_state: HardState,
    snapshot: Option<(SnapshotMetadata, Vec<u8>)>,
    truncated: (u64, u64),
    entries: BTreeMap<u64, Entry>,
}

/// A disk in memory. Clones share it: keep one outside a simulated host
/// and hand clones to each incarnation of the node.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Arc<Mutex<MemState>>,
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        // Every write completes its batch before releasing the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries kept (for tests of log compaction).
    pub fn entry_count(&self) -> usize {
        self.state().entries.len()
    }

    /// The committed entries still in the log, as index → (term, data)
    /// (for tests comparing replicas' logs).
    pub fn committed_log(&self) -> BTreeMap<u64, (u64, Vec<u8>)> {
        let state = self.state();
        state
            .entries
            .range(..=state.hard_state.commit)
            .map(|(index, entry)| (*index, (entry.term, entry.data.to_vec())))
            .collect()
    }
}

impl Disk for MemDisk {
    fn load(&mut self) -> Result<Recovered> {
        let state = self.state();
        Ok(Recovered {
            hard_state: state.hard_state.clone(),
            snapshot: state.snapshot.as_ref().map(|(meta, _)| meta.clone()),
            truncated: state.truncated,
            entries: state.entries.values().cloned().collect(),
        })
    }

    fn write(&mut self, batch: DiskBatch) -> Result<()> {
        let mut state = self.state();
        if batch.clean {
            *state = MemState::default();
        }
        if let Some(first) = batch.entries.first() {
            let from = first.index;
            state.entries.split_off(&from);
            for entry in batch.entries {
                state.entries.insert(entry.index, entry);
            }
        }
        if let Some(hard_state) = batch.hard_state {
            state.hard_state = hard_state;
        }
        if let Some(snapshot) = batch.snapshot {
            state.snapshot = Some(snapshot);
        }
        if let Some((index, term)) = batch.truncate_to {
            state.truncated = (index, term);
            state.entries = state.entries.split_off(&(index + 1));
        }
        Ok(())
    }

    fn snapshot_data(&self, metadata: &SnapshotMetadata) -> Result<Vec<u8>> {
        match &self.state().snapshot {
            Some((meta, data)) if meta.index == metadata.index => Ok(data.clone()),
            _ => Err(Error::Storage(format!(
                "no snapshot at index {}",
                metadata.index
            ))),
        }
    }

    fn size_bytes(&self) -> u64 {
        let state = self.state();
        let entries: usize = state.entries.values().map(super::storage::entry_size).sum();
        (entries + state.snapshot.as_ref().map_or(0, |(_, d)| d.len())) as u64
    }
}

// ---------------------------------------------------------------------------
// raft-engine and snapshot files.

/// raft-engine's handle on raft-rs's entry type.
#[derive(Clone, Copy, Debug)]
pub struct RaftEntries;

impl MessageExt for RaftEntries {
    type Entry = Entry;

    fn index(entry: &Entry) -> u64 {
        entry.index
    }
}

/// The one Raft group a node keeps in its engine.
const REGION: u64 = 1;
const HARD_STATE: &[u8] = b"hard_state";
const SNAPSHOT: &[u8] = b"snapshot";
const TRUNCATED: &[u8] = b"truncated";

/// A data directory: `log/` (raft-engine) and `snap/` (snapshot files).
pub struct EngineDisk {
    engine: Engine,
    snapshots: SnapshotFiles,
}

/// A directory of snapshot files, one per snapshot, named by term and
/// index. Cheap to clone: a snapshot's file can be written on another
/// thread before the batch that records it.
#[derive(Clone, Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    fn path(&self, metadata: &SnapshotMetadata) -> PathBuf {
        self.dir
            .join(format!("{:020}-{:020}.snap", metadata.term, metadata.index))
    }

    /// Whether the snapshot's file is complete on disk (files appear only
    /// once written and synced).
    pub fn has(&self, metadata: &SnapshotMetadata) -> bool {
        self.path(metadata).exists()
    }

    /// Writes a snapshot file durably: a temporary file, fsynced, renamed,
    /// and the directory fsynced, so a crash leaves the old file or the new
    /// one, never half of one.
    pub fn write(&self, metadata: &SnapshotMetadata, data: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let path = self.path(metadata);
        let partial = path.with_extension("partial");
        let mut file =
            std::fs::File::create(&partial).map_err(|e| storage("creating a snapshot file", e))?;
        file.write_all(data)
            .and_then(|()| file.sync_all())
            .map_err(|e| storage("writing a snapshot file", e))?;
        std::fs::rename(&partial, &path).map_err(|e| storage("renaming a snapshot file", e))?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| storage("syncing the snapshot directory", e))
    }

    /// Removes snapshot files other than `keep`'s (and unfinished ones).
    fn remove_all_but(&self, keep: &SnapshotMetadata) {
        let keep = self.path(keep);
        if let Ok(listing) = std::fs::read_dir(&self.dir) {
            for entry in listing.flatten() {
                if entry.path() != keep {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

impl std::fmt::Debug for EngineDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineDisk")
            .field("snapshots", &self.snapshots)
            .finish()
    }
}

impl EngineDisk {
    /// Opens (creating if absent) the data directory `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let snapshots = dir.join("snap");
        std::fs::create_dir_all(&snapshots)
            .map_err(|e| storage("creating the data directory", e))?;
        let config = EngineConfig {
            dir: dir.join("log").to_string_lossy().into_owned(),
            // Small files and a low purge threshold: a course node's log is
            // megabytes, and old files should go once a snapshot covers them.
            target_file_size: ReadableSize::mb(16),
            purge_threshold: ReadableSize::mb(64),
            ..EngineConfig::default()
        };
        let engine = Engine::open(config).map_err(|e| storage("opening the Raft log", e))?;
        Ok(Self {
            engine,
            snapshots: SnapshotFiles { dir: snapshots },
        })
    }
}

impl Disk for EngineDisk {
    fn load(&mut self) -> Result<Recovered> {
        let engine = &self.engine;
        let hard_state = engine
            .get_message::<HardState>(REGION, HARD_STATE)
            .map_err(|e| storage("reading the hard state", e))?
            .unwrap_or_default();
        let snapshot = engine
            .get_message::<SnapshotMetadata>(REGION, SNAPSHOT)
            .map_err(|e| storage("reading the snapshot record", e))?;
        let truncated = match engine.get(REGION, TRUNCATED) {
            Some(bytes) if bytes.len() == 16 => {
                let word = |at: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[at..at + 8]);
                    u64::from_be_bytes(b)
                };
                (word(0), word(8))
            }
            Some(_) => return Err(Error::Storage("a corrupt truncation record".into())),
            None => (0, 0),
        };
        let mut entries = Vec::new();
        if let (Some(first), Some(last)) = (engine.first_index(REGION), engine.last_index(REGION)) {
            let from = first.max(truncated.0 + 1);
            if from <= last {
                engine
                    .fetch_entries_to::<RaftEntries>(REGION, from, last + 1, None, &mut entries)
                    .map_err(|e| storage("reading the Raft log", e))?;
            }
            if entries.first().is_some_and(|e| e.index != truncated.0 + 1) {
                return Err(Error::Storage(format!(
                    "the log starts at {} but was truncated at {}",
                    entries[0].index, truncated.0
                )));
            }
        }
        Ok(Recovered {
            hard_state,
            snapshot,
            truncated,
            entries,
        })
    }

    fn write(&mut self, batch: DiskBatch) -> Result<()> {
        if let Some((metadata, data)) = &batch.snapshot
            && !self.snapshots.has(metadata)
        {
            self.snapshots.write(metadata, data)?;
        }
        let mut log = LogBatch::default();
        if batch.clean {
            log.add_command(REGION, Command::Clean);
        }
        if !batch.entries.is_empty() {
            log.add_entries::<RaftEntries>(REGION, &batch.entries)
                .map_err(|e| storage("batching entries", e))?;
        }
        if let Some(hard_state) = &batch.hard_state {
            log.put_message(REGION, HARD_STATE.to_vec(), hard_state)
                .map_err(|e| storage("batching the hard state", e))?;
        }
        if let Some((metadata, _)) = &batch.snapshot {
            log.put_message(REGION, SNAPSHOT.to_vec(), metadata)
                .map_err(|e| storage("batching the snapshot record", e))?;
        }
        if let Some((index, term)) = batch.truncate_to {
            let mut record = index.to_be_bytes().to_vec();
            record.extend_from_slice(&term.to_be_bytes());
            log.put(REGION, TRUNCATED.to_vec(), record)
                .map_err(|e| storage("batching the truncation record", e))?;
            log.add_command(REGION, Command::Compact { index: index + 1 });
        }
        if !log.is_empty() {
            self.engine
                .write(&mut log, batch.sync)
                .map_err(|e| storage("writing the Raft log", e))?;
        }
        if let Some((metadata, _)) = &batch.snapshot {
            self.snapshots.remove_all_but(metadata);
        }
        Ok(())
    }

    fn snapshot_files(&self) -> Option<SnapshotFiles> {
        Some(self.snapshots.clone())
    }

    fn snapshot_data(&self, metadata: &SnapshotMetadata) -> Result<Vec<u8>> {
        std::fs::read(self.snapshots.path(metadata))
            .map_err(|e| storage("reading a snapshot file", e))
    }

    fn size_bytes(&self) -> u64 {
        let snapshots: u64 = std::fs::read_dir(&self.snapshots.dir)
            .map(|listing| {
                listing
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        self.engine.get_used_size() as u64 + snapshots
    }

    fn purge(&mut self) -> Result<()> {
        // Files are reclaimed once every group they hold has compacted;
        // ours compacts whenever it snapshots, so the answer needs no work.
        self.engine
            .purge_expired_files()
            .map(drop)
            .map_err(|e| storage("purging old log files", e))
    }
}
