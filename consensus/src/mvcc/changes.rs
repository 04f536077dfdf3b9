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
//! [`MAX_RECENT_BYTES`] of keys and values; one call returns about the
//! number of changes its caller asks for (more only to finish a revision:
//! a delete of many keys is one atomic change, and is delivered whole); a
//! catch-up call costs one binary search per key in the range, not a pass
//! over the history.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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
    /// The oldest revision whose changes are all in the recent window.
    pub fn window_starts_at(&self) -> i64 {
        self.recent.floor
    }

    /// The changes to keys in `[key, range_end)` at or after `from`, in
    /// order, each with the version it replaced if `with_prev`: at least
    /// `max` if there are that many, and never part of a revision — the
    /// revision of the `max`-th change is completed, so a watcher sees an
    /// atomic change whole. The caller checks `from` against the
    /// compaction first.
    pub fn changes_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Position,
        max: usize,
        with_prev: bool,
    ) -> Vec<Change> {
        let found: Vec<(Vec<u8>, Version)> = if from.0 >= self.recent.floor {
            let start = self
                .recent
                .changes
                .partition_point(|(_, v)| (v.mod_revision, v.mod_sub) < from);
            let mut taken = Vec::new();
            for (k, v) in self.recent.changes.range(start..) {
                if taken.len() >= max
                    && taken.last().is_some_and(|(_, last): &(Vec<u8>, Version)| {
                        last.mod_revision != v.mod_revision
                    })
                {
                    break;
                }
                if in_range(k, key, range_end) {
                    taken.push((k.clone(), v.clone()));
                }
            }
            taken
        } else {
            self.catch_up(key, range_end, from, max)
        };
        found
            .into_iter()
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

    /// The same from the keys' histories, for a start older than the
    /// window: a merge of the keys' version lists, smallest position
    /// first, so one call costs one binary search per key in the range
    /// plus the changes it returns — not the whole history since `from`.
    pub(super) fn catch_up(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Position,
        max: usize,
    ) -> Vec<(Vec<u8>, Version)> {
        let lists: Vec<(&Vec<u8>, &Vec<Version>)> = self.scan(key, range_end).collect();
        let mut heads: BinaryHeap<Reverse<(Position, usize, usize)>> = lists
            .iter()
            .enumerate()
            .filter_map(|(list, (_, versions))| {
                let at = versions.partition_point(|v| (v.mod_revision, v.mod_sub) < from);
                versions
                    .get(at)
                    .map(|v| Reverse(((v.mod_revision, v.mod_sub), list, at)))
            })
            .collect();
        let mut taken: Vec<(Vec<u8>, Version)> = Vec::new();
        while let Some(Reverse((position, list, at))) = heads.pop() {
            if taken.len() >= max
                && taken
                    .last()
                    .is_some_and(|(_, v)| v.mod_revision != position.0)
            {
                break;
            }
            let (k, versions) = lists[list];
            taken.push((k.clone(), versions[at].clone()));
            if let Some(next) = versions.get(at + 1) {
                heads.push(Reverse(((next.mod_revision, next.mod_sub), list, at + 1)));
            }
        }
        taken
    }
}
