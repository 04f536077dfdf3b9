//! The store's changes in revision order: what a watch delivers.
//!
//! Every change is already in the keys' histories, so a watcher could find
//! its events by scanning them — at a cost proportional to the keys in its
//! range, paid again for every new revision. Watchers that keep up (nearly
//! all of them) read a bounded window of the latest changes instead, in
//! order, touching only what is new; a watcher that starts further back
//! (`start_revision`) or fell behind the window scans the histories once to
//! catch up — etcd's synced and unsynced watcher groups.
//!
//! Bounds: the window holds at most [`MAX_RECENT_CHANGES`] changes and
//! [`MAX_RECENT_BYTES`] of keys and values; one call returns at most the
//! number of events its caller asks for.

use std::collections::VecDeque;

use super::{End, Mvcc, Version, end_of};

/// The most changes the recent window keeps.
pub const MAX_RECENT_CHANGES: usize = 16_384;
/// The most key and value bytes the recent window keeps.
pub const MAX_RECENT_BYTES: usize = 64 * 1024 * 1024;

/// A position in the store's change order: (revision, sub-revision).
pub type Position = (i64, i64);

/// One change: a key's new version (a tombstone for a deletion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub version: Version,
    /// The version it replaced, if the history still holds it and the
    /// caller asked for it.
    pub prev: Option<Version>,
}

impl Change {
    pub fn position(&self) -> Position {
        (self.version.mod_revision, self.version.mod_sub)
    }
}

/// The window of the latest changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recent {
    changes: VecDeque<(Vec<u8>, Version)>,
    /// Every change at or after this revision is in the window.
    floor: i64,
    bytes: usize,
}

/// The window is a cache of the histories: two stores with equal histories
/// are equal whatever their windows hold (a restored store starts empty).
impl PartialEq for Recent {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Recent {}

impl Recent {
    /// An empty window for a store at `revision` (after a restore).
    pub fn starting_after(revision: i64) -> Self {
        Self {
            changes: VecDeque::new(),
            floor: revision + 1,
            bytes: 0,
        }
    }

    pub fn push(&mut self, key: &[u8], version: &Version) {
        self.bytes += key.len() + version.value.len();
        self.changes.push_back((key.to_vec(), version.clone()));
        while self.changes.len() > MAX_RECENT_CHANGES || self.bytes > MAX_RECENT_BYTES {
            let Some((key, version)) = self.changes.pop_front() else {
                break;
            };
            self.bytes -= key.len() + version.value.len();
            // What is left of that revision no longer counts as complete.
            self.floor = self.floor.max(version.mod_revision + 1);
        }
    }
}

/// Whether `key` is in `[start, range_end)` (etcd's range encoding).
pub fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    match end_of(range_end) {
        End::Single => key == start,
        End::Unbounded => key >= start,
        End::Before(end) => key >= start && key < end,
    }
}

impl Mvcc {
    /// Up to `max` changes to keys in `[key, range_end)` at or after
    /// `from`, in order, each with the version it replaced if `with_prev`.
    /// The caller checks `from` against the compaction first.
    pub fn changes_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Position,
        max: usize,
        with_prev: bool,
    ) -> Vec<Change> {
        let mut found: Vec<(Vec<u8>, Version)> = if from.0 >= self.recent.floor {
            let start = self
                .recent
                .changes
                .partition_point(|(_, v)| (v.mod_revision, v.mod_sub) < from);
            self.recent
                .changes
                .range(start..)
                .filter(|(k, _)| in_range(k, key, range_end))
                .take(max)
                .cloned()
                .collect()
        } else {
            // References only: the catch-up may cover much history, and
            // only `max` changes are copied out.
            let mut all: Vec<(&Vec<u8>, &Version)> = self
                .scan(key, range_end)
                .flat_map(|(k, versions)| {
                    let at = versions.partition_point(|v| (v.mod_revision, v.mod_sub) < from);
                    versions[at..].iter().map(move |v| (k, v))
                })
                .collect();
            all.sort_by_key(|(_, v)| (v.mod_revision, v.mod_sub));
            all.into_iter()
                .take(max)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        found
            .drain(..)
            .map(|(key, version)| {
                let prev = if with_prev {
                    self.keys
                        .get(&key)
                        .and_then(|versions| Self::visible(versions, version.mod_revision - 1))
                        .cloned()
                } else {
                    None
                };
                Change { key, version, prev }
            })
            .collect()
    }
}
