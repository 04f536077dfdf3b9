//! The Raft KV's state machine: a multi-version key-value store with
//! etcd's semantics.
//!
//! Episode: 13, "FLP Impossibility & Practical Consensus" (also 19)
//! Pattern: replicated state machine / MVCC
//! Try it:  cargo run -- demo raft-failover
//! Test it: cargo test -p consensus mvcc
//!
//! Raft agrees on a log; what the log *means* is the state machine's
//! business, and it must be deterministic: every replica applies the same
//! entries in the same order and must reach the same state. This one is
//! etcd's: every write transaction makes one new *revision* of the whole
//! store, each key remembers the revision that created it, the one that
//! last changed it and how many times it changed (its version), and old
//! revisions stay readable — `get --rev 5` — until a compaction drops
//! them. A transaction's compares read the store as it was, its writes all
//! share one revision, and later operations in it see earlier ones.
//!
//! Bounds: the API refuses requests over [`MAX_REQUEST_BYTES`] and writes
//! past the store's byte quota (history included); one range answers at
//! most [`MAX_RANGE_RESPONSE_BYTES`].
//!
//! Simplified: everything lives in memory (a `BTreeMap` of key histories);
//! etcd keeps it in bbolt on disk. Durability comes from the Raft log and
//! snapshots (`crate::raft`), as it does for etcd's index.

pub mod changes;
#[cfg(test)]
mod tests;
mod txn;
pub mod validate;

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::lease::LeaseTable;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::v1::{KeyHistory, KeyVersion, LeaseEntry};
use crate::{Error, Result};
use changes::Recent;

/// The largest request the API accepts, as etcd's `--max-request-bytes`
/// defaults to.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// The largest answer one range may give (keys and values).
pub const MAX_RANGE_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes one stored version costs beyond its value: the revision numbers,
/// the value's handle and the vector slot.
const VERSION_OVERHEAD: usize = 64;

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub mod_revision: i64,
    /// Position within its revision's transaction.
    pub mod_sub: i64,
    pub create_revision: i64,
    /// How many times the key changed since it was created; 0 marks a
    /// deletion (a tombstone).
    pub version: i64,
    pub value: Bytes,
    pub lease: i64,
}

impl Version {
    pub fn is_tombstone(&self) -> bool {
        self.version == 0
    }

    /// The version as etcd's `KeyValue`, its value copied only if asked.
    pub fn key_value(&self, key: &[u8], with_value: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: if with_value {
                self.value.to_vec()
            } else {
                Vec::new()
            },
            lease: self.lease,
        }
    }

    fn cost(&self) -> usize {
        self.value.len() + VERSION_OVERHEAD
    }
}

/// The store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mvcc {
    /// Every key's versions since the last compaction, oldest first.
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    /// The current revision; a new store is at 1, as etcd's is.
    revision: i64,
    /// The last compaction's revision; -1 before the first.
    compacted: i64,
    /// Keys, values and per-version overhead, history included.
    bytes: usize,
    /// The leases, and the keys attached to each.
    leases: LeaseTable,
    /// The latest changes, for watchers.
    recent: Recent,
}

impl Default for Mvcc {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a key range ends.
pub(crate) enum End<'a> {
    /// `range_end` empty: the one key.
    Single,
    /// `range_end` is `"\0"`: every key from `key` on.
    Unbounded,
    /// `[key, range_end)`.
    Before(&'a [u8]),
}

pub(crate) fn end_of(range_end: &[u8]) -> End<'_> {
    match range_end {
        [] => End::Single,
        [0] => End::Unbounded,
        end => End::Before(end),
    }
}

impl Mvcc {
    pub fn new() -> Self {
        Self {
            keys: BTreeMap::new(),
            revision: 1,
            compacted: -1,
            bytes: 0,
            leases: LeaseTable::default(),
            recent: Recent::starting_after(1),
        }
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// `LeaseGrant`, its id and TTL already chosen by the leader.
    pub fn grant(&mut self, request: &LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if request.id <= 0 {
            return Err(Error::LeaseNotFound);
        }
        self.leases.grant(request.id, request.ttl)?;
        Ok(LeaseGrantResponse {
            header: Some(header(self.revision)),
            id: request.id,
            ttl: request.ttl,
            error: String::new(),
        })
    }

    /// `LeaseRevoke`: the lease goes, and its keys with it, all in one
    /// revision (none if it had no keys).
    pub fn revoke(&mut self, request: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        let lease = self.leases.remove(request.id).ok_or(Error::LeaseNotFound)?;
        let mut write = self.write();
        for key in lease.keys {
            write.delete_range(&DeleteRangeRequest {
                key,
                ..DeleteRangeRequest::default()
            });
        }
        let revision = write.finish();
        Ok(LeaseRevokeResponse {
            header: Some(header(revision)),
        })
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The last compaction's revision, -1 if none.
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// Bytes held, history included (what the quota counts).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A 32-bit digest of every version up to revision `at` (etcd's
    /// `HashKV`): equal on every replica that applied the same log, which
    /// is how operators check that replicas agree. Reads in place; costs
    /// one pass over the store.
    pub fn hash(&self, at: i64) -> u32 {
        let mut hash = crate::fnv::Fnv1a::new();
        for (key, versions) in &self.keys {
            for version in versions.iter().filter(|v| v.mod_revision <= at) {
                hash.mix(key);
                hash.mix(&version.mod_revision.to_be_bytes());
                hash.mix(&version.version.to_be_bytes());
                hash.mix(&version.value);
            }
        }
        let hash = hash.finish();
        (hash ^ (hash >> 32)) as u32
    }

    /// The keys in `[key, range_end)` (etcd's encoding), with histories.
    fn scan<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Vec<Version>)> + 'a> {
        match end_of(range_end) {
            End::Single => Box::new(self.keys.get_key_value(key).into_iter()),
            End::Unbounded => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(key), Bound::Unbounded)),
            ),
            // A range that ends before it starts is empty, not an error.
            End::Before(end) if end <= key => Box::new(std::iter::empty()),
            End::Before(end) => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(key), Bound::Excluded(end))),
            ),
        }
    }

    /// The version of a key visible at `revision`, if the key existed then.
    fn visible(versions: &[Version], revision: i64) -> Option<&Version> {
        let at = versions.partition_point(|v| v.mod_revision <= revision);
        versions[..at].last().filter(|v| !v.is_tombstone())
    }

    /// The revision a read asks for: 0 means now. Reads *at* the compaction
    /// revision still work; only older ones are gone.
    fn read_revision(&self, asked: i64) -> Result<i64> {
        if asked > self.revision {
            return Err(Error::FutureRevision);
        }
        if asked > 0 && asked < self.compacted {
            return Err(Error::Compacted);
        }
        Ok(if asked <= 0 { self.revision } else { asked })
    }

    /// The live key in `[key, range_end)` created first (an election's
    /// leader), found in one pass without copying or sorting the range.
    pub fn first_created(&self, key: &[u8], range_end: &[u8]) -> Option<KeyValue> {
        self.scan(key, range_end)
            .filter_map(|(k, versions)| Self::visible(versions, self.revision).map(|v| (k, v)))
            .min_by_key(|(_, v)| v.create_revision)
            .map(|(k, v)| v.key_value(k, true))
    }

    /// `Range` as etcd answers it (the header carries only the revision;
    /// the API fills in the rest).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse> {
        let at = self.read_revision(request.revision)?;
        self.range_at(request, at, MAX_RANGE_RESPONSE_BYTES)
    }

    /// `request` read at revision `at`, refusing answers over `max_bytes`.
    fn range_at(&self, request: &RangeRequest, at: i64, max_bytes: usize) -> Result<RangeResponse> {
        let order = SortOrder::try_from(request.sort_order).unwrap_or(SortOrder::None);
        let target = SortTarget::try_from(request.sort_target).unwrap_or(SortTarget::Key);
        let filtered = request.min_mod_revision != 0
            || request.max_mod_revision != 0
            || request.min_create_revision != 0
            || request.max_create_revision != 0;
        // etcd pushes the limit (plus one, to learn `more`) down to the
        // index scan unless it must see everything first: with a sort
        // order or a revision filter. Pitfall it keeps: a sort target
        // without an order sorts only the first limit + 1 keys.
        let scan_limit = if order != SortOrder::None || filtered || request.limit <= 0 {
            usize::MAX
        } else {
            request.limit as usize + 1
        };
        let mut count: i64 = 0;
        let mut kvs: Vec<KeyValue> = Vec::new();
        let mut bytes = 0usize;
        for (key, versions) in self.scan(&request.key, &request.range_end) {
            let Some(version) = Self::visible(versions, at) else {
                continue;
            };
            count += 1;
            if request.count_only || kvs.len() >= scan_limit {
                continue;
            }
            let keep = (request.min_mod_revision == 0
                || version.mod_revision >= request.min_mod_revision)
                && (request.max_mod_revision == 0
                    || version.mod_revision <= request.max_mod_revision)
                && (request.min_create_revision == 0
                    || version.create_revision >= request.min_create_revision)
                && (request.max_create_revision == 0
                    || version.create_revision <= request.max_create_revision);
            if !keep {
                continue;
            }
            bytes += key.len()
                + if request.keys_only {
                    0
                } else {
                    version.value.len()
                };
            if bytes > max_bytes {
                return Err(Error::RangeTooLarge {
                    bytes,
                    max: max_bytes,
                });
            }
            kvs.push(version.key_value(key, !request.keys_only));
        }
        let order = if target != SortTarget::Key && order == SortOrder::None {
            SortOrder::Ascend
        } else {
            order
        };
        if order != SortOrder::None {
            kvs.sort_by(|a, b| {
                let by = match target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                if order == SortOrder::Descend {
                    by.reverse()
                } else {
                    by
                }
            });
        }
        let mut more = false;
        if request.limit > 0 && kvs.len() > request.limit as usize {
            kvs.truncate(request.limit as usize);
            more = true;
        }
        Ok(RangeResponse {
            header: Some(header(self.revision)),
            kvs,
            more,
            count,
        })
    }

    /// A write transaction: every change it makes shares one new revision.
    pub(crate) fn write(&mut self) -> Write<'_> {
        Write {
            main: self.revision + 1,
            sub: 0,
            store: self,
        }
    }

    /// `Put` as one transaction.
    pub fn put(&mut self, request: &PutRequest) -> Result<PutResponse> {
        let mut write = self.write();
        write.check_put(request)?;
        let prev = write.put(request);
        let revision = write.finish();
        Ok(PutResponse {
            header: Some(header(revision)),
            prev_kv: prev,
        })
    }

    /// `DeleteRange` as one transaction; deleting nothing makes no revision.
    /// Asked to return what it deletes, it refuses (before deleting
    /// anything) when that would not fit one response.
    pub fn delete_range(&mut self, request: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        if request.prev_kv {
            let bytes: usize = self
                .scan(&request.key, &request.range_end)
                .filter_map(|(key, versions)| {
                    Self::visible(versions, self.revision).map(|v| key.len() + v.value.len())
                })
                .sum();
            if bytes > MAX_RANGE_RESPONSE_BYTES {
                return Err(Error::RangeTooLarge {
                    bytes,
                    max: MAX_RANGE_RESPONSE_BYTES,
                });
            }
        }
        let mut write = self.write();
        let (deleted, prev_kvs) = write.delete_range(request);
        let revision = write.finish();
        Ok(DeleteRangeResponse {
            header: Some(header(revision)),
            deleted,
            prev_kvs,
        })
    }

    /// `Compact`: every key keeps its latest version as of `revision` (a
    /// read at `revision` still works) and loses what came before; a key
    /// whose latest version then is a deletion disappears.
    pub fn compact(&mut self, request: &CompactionRequest) -> Result<CompactionResponse> {
        let revision = request.revision;
        if revision <= self.compacted {
            return Err(Error::Compacted);
        }
        if revision > self.revision {
            return Err(Error::FutureRevision);
        }
        let mut freed = 0usize;
        // Compaction drops history, never a live version: lease
        // attachments (which follow live versions) are untouched.
        self.keys.retain(|key, versions| {
            let at = versions.partition_point(|v| v.mod_revision <= revision);
            // Keep the last version at or before `revision`, unless it is
            // a deletion; drop everything older.
            let keep_from = match at.checked_sub(1) {
                Some(last) if !versions[last].is_tombstone() => last,
                _ => at,
            };
            freed += versions[..keep_from]
                .iter()
                .map(Version::cost)
                .sum::<usize>();
            versions.drain(..keep_from);
            if versions.is_empty() {
                freed += key.len();
                false
            } else {
                true
            }
        });
        self.bytes -= freed;
        self.compacted = revision;
        Ok(CompactionResponse {
            header: Some(header(self.revision)),
        })
    }

    /// What a write of `request_bytes` would leave the store at, for the
    /// quota check the API makes before proposing a write.
    pub fn bytes_after(&self, request_bytes: usize) -> usize {
        self.bytes + request_bytes + VERSION_OVERHEAD
    }

    /// Every key's history, for a snapshot.
    pub fn to_histories(&self) -> Vec<KeyHistory> {
        self.keys
            .iter()
            .map(|(key, versions)| KeyHistory {
                key: key.clone(),
                versions: versions
                    .iter()
                    .map(|v| KeyVersion {
                        mod_revision: v.mod_revision,
                        mod_sub: v.mod_sub,
                        create_revision: v.create_revision,
                        version: v.version,
                        value: v.value.to_vec(),
                        lease: v.lease,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every lease, for a snapshot (attachments follow from the keys).
    pub fn to_lease_entries(&self) -> Vec<LeaseEntry> {
        self.leases
            .ttls()
            .map(|(id, ttl)| LeaseEntry { id, ttl })
            .collect()
    }

    /// The store a snapshot describes.
    pub fn from_histories(
        revision: i64,
        compacted: i64,
        histories: Vec<KeyHistory>,
        leases: Vec<LeaseEntry>,
    ) -> Self {
        let mut store = Self {
            keys: BTreeMap::new(),
            revision,
            compacted,
            bytes: 0,
            leases: LeaseTable::default(),
            recent: Recent::starting_after(revision),
        };
        for lease in leases {
            // A snapshot holds each lease once, within the bound.
            let _ = store.leases.grant(lease.id, lease.ttl);
        }
        for history in histories {
            let versions: Vec<Version> = history
                .versions
                .into_iter()
                .map(|v| Version {
                    mod_revision: v.mod_revision,
                    mod_sub: v.mod_sub,
                    create_revision: v.create_revision,
                    version: v.version,
                    value: Bytes::from(v.value),
                    lease: v.lease,
                })
                .collect();
            store.bytes += history.key.len() + versions.iter().map(Version::cost).sum::<usize>();
            if let Some(live) = versions.last().filter(|v| !v.is_tombstone()) {
                store.leases.attach(live.lease, &history.key);
            }
            store.keys.insert(history.key, versions);
        }
        store
    }
}

/// A response header carrying only a revision (the API fills in the
/// cluster, member and term; responses nested in a Txn keep only this).
pub(crate) fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..ResponseHeader::default()
    }
}

/// The changes of one write transaction, in progress.
pub(crate) struct Write<'a> {
    store: &'a mut Mvcc,
    /// The revision every change of this transaction gets.
    main: i64,
    /// Changes made so far (each gets the next sub-revision).
    sub: i64,
}

impl Write<'_> {
    /// Reads inside a transaction see its own earlier writes.
    fn read_revision(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.store.revision
        }
    }

    fn current(&self, key: &[u8]) -> Option<&Version> {
        let versions = self.store.keys.get(key)?;
        Mvcc::visible(versions, self.read_revision())
    }

    /// The checks etcd makes when applying a put: `ignore_value` and
    /// `ignore_lease` need the key to exist, and a lease must exist.
    fn check_put(&self, request: &PutRequest) -> Result<()> {
        if (request.ignore_value || request.ignore_lease) && self.current(&request.key).is_none() {
            return Err(Error::KeyNotFound);
        }
        if request.lease != 0 && !self.store.leases.contains(request.lease) {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    fn append(&mut self, key: &[u8], version: Version) {
        // The key leaves the lease of the version it replaces and joins
        // the new one's.
        if let Some(current) = self.current(key) {
            let lease = current.lease;
            self.store.leases.detach(lease, key);
        }
        if !version.is_tombstone() {
            self.store.leases.attach(version.lease, key);
        }
        self.store.recent.push(key, &version);
        self.store.bytes += version.cost();
        match self.store.keys.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                self.store.bytes += key.len();
                self.store.keys.insert(key.to_vec(), vec![version]);
            }
        }
        self.sub += 1;
    }

    /// Writes `request` (checked already); returns the previous value if
    /// the request asked for it.
    fn put(&mut self, request: &PutRequest) -> Option<KeyValue> {
        let current = self.current(&request.key).cloned();
        let value = match (&current, request.ignore_value) {
            (Some(current), true) => current.value.clone(),
            _ => Bytes::copy_from_slice(&request.value),
        };
        let lease = match (&current, request.ignore_lease) {
            (Some(current), true) => current.lease,
            _ => request.lease,
        };
        let version = Version {
            mod_revision: self.main,
            mod_sub: self.sub,
            create_revision: current.as_ref().map_or(self.main, |c| c.create_revision),
            version: current.as_ref().map_or(1, |c| c.version + 1),
            value,
            lease,
        };
        self.append(&request.key, version);
        current
            .filter(|_| request.prev_kv)
            .map(|c| c.key_value(&request.key, true))
    }

    /// Deletes every live key in the range; returns how many, and what
    /// they held.
    fn delete_range(&mut self, request: &DeleteRangeRequest) -> (i64, Vec<KeyValue>) {
        let at = self.read_revision();
        // What was deleted is copied out only for a caller who asked.
        let doomed: Vec<(Vec<u8>, Option<KeyValue>)> = self
            .store
            .scan(&request.key, &request.range_end)
            .filter_map(|(key, versions)| {
                Mvcc::visible(versions, at).map(|v| {
                    let prev = request.prev_kv.then(|| v.key_value(key, true));
                    (key.clone(), prev)
                })
            })
            .collect();
        let deleted = doomed.len() as i64;
        let mut prev = Vec::new();
        for (key, kv) in doomed {
            let tombstone = Version {
                mod_revision: self.main,
                mod_sub: self.sub,
                create_revision: 0,
                version: 0,
                value: Bytes::new(),
                lease: 0,
            };
            self.append(&key, tombstone);
            prev.extend(kv);
        }
        (deleted, prev)
    }

    /// Ends the transaction: the store moves to the new revision if
    /// anything changed. Returns the revision a response reports.
    fn finish(self) -> i64 {
        if self.sub > 0 {
            self.store.revision = self.main;
        }
        self.store.revision
    }
}
