//! Reads: a stream's head and events, every stream's events in global
//! order, snapshots — each a linearizable Range.

use prost::Message as _;
use replication::event_sourcing::{
    MAX_EVENTS_PER_APPEND, Position, RecordedEvent, Result, Snapshot, StoreError, StreamName,
    Version, check_read_after, check_snapshot, read_limit,
};
use tonic::Code;

use super::{EtcdEventStore, unavailable};
use crate::lock::recipe::prefix_end;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use crate::proto::mvccpb::KeyValue;
use crate::proto::v1::{StoredEvent, StoredSnapshot};

/// Events one Range asks for. A page of events at the payload limit does
/// not fit one response; such a page is asked again in [`SMALL_PAGE`]s.
const PAGE: usize = 128;
const SMALL_PAGE: usize = 16;

/// The range of keys starting with `prefix`.
fn prefixed(prefix: Vec<u8>) -> RangeRequest {
    RangeRequest {
        range_end: prefix_end(&prefix),
        key: prefix,
        ..RangeRequest::default()
    }
}

fn storage(reason: String) -> StoreError {
    StoreError::Storage { reason }
}

/// A response too large for one message: asked again in smaller pages.
fn too_large(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange)
}

impl EtcdEventStore {
    /// Decodes one event key and value.
    pub(crate) fn decode(&self, kv: &KeyValue) -> Result<RecordedEvent> {
        let key = String::from_utf8_lossy(&kv.key);
        let (stream, version) = self
            .layout
            .parse_event(&kv.key)
            .ok_or_else(|| storage(format!("{key} is not an event key")))?;
        let stored = StoredEvent::decode(kv.value.as_slice())
            .map_err(|err| storage(format!("{key}: not a stored event: {err}")))?;
        let position = Position::from_revision(kv.mod_revision as u64, stored.batch_index as usize)
            .ok_or_else(|| storage(format!("{key}: batch index {}", stored.batch_index)))?;
        Ok(RecordedEvent {
            stream,
            version,
            position,
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            payload: stored.payload,
        })
    }

    /// A Range, with a member's refusal mapped onto the store's errors.
    pub(crate) async fn range(&self, range: RangeRequest) -> Result<RangeResponse> {
        self.endpoints
            .range(range)
            .await
            .map_err(|status| unavailable(&status))
    }

    /// The stream's version (its last key) and the revision it was read at.
    pub(crate) async fn head_of(&self, stream: &StreamName) -> Result<(Version, i64)> {
        let response = self
            .range(RangeRequest {
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Key as i32,
                keys_only: true,
                ..prefixed(self.layout.stream(stream))
            })
            .await?;
        let revision = response.header.map_or(0, |h| h.revision);
        let version = match response.kvs.first() {
            None => Version::NONE,
            Some(kv) => {
                self.layout
                    .parse_event(&kv.key)
                    .ok_or_else(|| storage("a stream's last key is not an event".into()))?
                    .1
            }
        };
        Ok((version, revision))
    }

    pub(crate) async fn read_stream_after(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let max = read_limit(max)?;
        let (current, _) = self.head_of(stream).await?;
        check_read_after(stream, after, current)?;
        let end = prefix_end(&self.layout.stream(stream));
        let mut events = Vec::new();
        let mut page = PAGE;
        while events.len() < max {
            let next = Version(after.0 + events.len() as u64).next();
            if next > current {
                break;
            }
            let want = (max - events.len()).min(page);
            let range = RangeRequest {
                key: self.layout.event(stream, next),
                range_end: end.clone(),
                limit: want as i64,
                ..RangeRequest::default()
            };
            let response = match self.endpoints.range(range).await {
                Ok(response) => response,
                Err(status) if too_large(&status) && page > SMALL_PAGE => {
                    page = SMALL_PAGE;
                    continue;
                }
                Err(status) => return Err(unavailable(&status)),
            };
            let read = response.kvs.len();
            for kv in &response.kvs {
                events.push(self.decode(kv)?);
            }
            if read < want {
                break;
            }
        }
        Ok(events)
    }

    /// Up to `max` events after `after`, in global order; and, when they
    /// reach the end of the store, the revision that end was read at (a
    /// watch from the next one misses nothing).
    pub(crate) async fn read_all_after(
        &self,
        after: Position,
        max: usize,
    ) -> Result<(Vec<RecordedEvent>, Option<i64>)> {
        let max = read_limit(max)?;
        let per_revision = MAX_EVENTS_PER_APPEND as u64;
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut last = after;
        // Revisions below this one hold nothing after `last`.
        let mut from_revision = (after.0 / per_revision).max(1);
        let mut page = PAGE;
        loop {
            let range = RangeRequest {
                min_mod_revision: from_revision as i64,
                limit: page as i64 + 1,
                sort_order: SortOrder::Ascend as i32,
                sort_target: SortTarget::Mod as i32,
                ..prefixed(self.layout.events())
            };
            let response = match self.endpoints.range(range).await {
                Ok(response) => response,
                Err(status) if too_large(&status) && page > SMALL_PAGE => {
                    page = SMALL_PAGE;
                    continue;
                }
                Err(status) => return Err(unavailable(&status)),
            };
            let read_at = response.header.map_or(0, |h| h.revision);
            let mut batch = response
                .kvs
                .iter()
                .map(|kv| self.decode(kv))
                .collect::<Result<Vec<_>>>()?;
            // etcd orders keys of one revision arbitrarily; the batch
            // index orders them.
            batch.sort_by_key(|event| event.position);
            let revision_of = |event: &RecordedEvent| event.position.0 / per_revision;
            let more = response.more;
            if more {
                // The page may have cut the last revision's events in
                // two, keeping an arbitrary part of them: drop that
                // revision (the next page starts with it) — unless nothing
                // else is new, then read that one revision whole.
                let cut = batch.last().map_or(from_revision, revision_of);
                batch.retain(|event| revision_of(event) != cut);
                if batch.iter().any(|event| event.position > last) {
                    from_revision = cut;
                } else {
                    batch = self.revision_events(cut as i64).await?;
                    from_revision = cut + 1;
                }
            }
            for event in batch {
                if event.position > last && events.len() < max {
                    last = event.position;
                    events.push(event);
                }
            }
            if events.len() >= max {
                return Ok((events, None));
            }
            if !more {
                return Ok((events, Some(read_at)));
            }
        }
    }

    /// Every event written at `revision` (one append: at most
    /// `MAX_EVENTS_PER_APPEND`, so one response holds them).
    async fn revision_events(&self, revision: i64) -> Result<Vec<RecordedEvent>> {
        let response = self
            .range(RangeRequest {
                min_mod_revision: revision,
                max_mod_revision: revision,
                ..prefixed(self.layout.events())
            })
            .await?;
        let mut events = response
            .kvs
            .iter()
            .map(|kv| self.decode(kv))
            .collect::<Result<Vec<_>>>()?;
        events.sort_by_key(|event| event.position);
        Ok(events)
    }

    /// The last event's position: its revision's last batch index.
    pub(crate) async fn global_head(&self) -> Result<Position> {
        let newest = self
            .range(RangeRequest {
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Mod as i32,
                keys_only: true,
                ..prefixed(self.layout.events())
            })
            .await?;
        let Some(revision) = newest.kvs.first().map(|kv| kv.mod_revision) else {
            return Ok(Position::START);
        };
        let events = self.revision_events(revision).await?;
        Ok(events.last().map_or(Position::START, |e| e.position))
    }

    pub(crate) async fn put_snapshot(&self, stream: &StreamName, snapshot: Snapshot) -> Result<()> {
        let (current, _) = self.head_of(stream).await?;
        check_snapshot(stream, &snapshot, current)?;
        let value = StoredSnapshot {
            version: snapshot.version.0,
            schema_version: snapshot.schema_version,
            state: snapshot.state,
        }
        .encode_to_vec();
        let put = PutRequest {
            key: self.layout.snapshot(stream),
            value,
            ..PutRequest::default()
        };
        // A Put is idempotent: retried like a read.
        let mut attempt = 0;
        loop {
            match self.endpoints.put(put.clone()).await {
                Ok(()) => return Ok(()),
                Err(status)
                    if super::is_transient(&status)
                        && attempt + 1 < super::endpoints::READ_ATTEMPTS =>
                {
                    attempt += 1;
                    self.endpoints.pause().await;
                }
                Err(status) => return Err(unavailable(&status)),
            }
        }
    }

    pub(crate) async fn get_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>> {
        let response = self
            .range(RangeRequest {
                key: self.layout.snapshot(stream),
                ..RangeRequest::default()
            })
            .await?;
        let Some(kv) = response.kvs.first() else {
            return Ok(None);
        };
        let stored = StoredSnapshot::decode(kv.value.as_slice())
            .map_err(|err| storage(format!("the snapshot of {stream}: {err}")))?;
        Ok(Some(Snapshot {
            version: Version(stored.version),
            schema_version: stored.schema_version,
            state: stored.state,
        }))
    }
}
