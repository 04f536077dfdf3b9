//! Append: one conditional Txn per try, and the retry that recognises its
//! own events.

use prost::Message as _;
use rand::Rng as _;
use replication::event_sourcing::{
    Appended, ExpectedVersion, NewEvent, Position, Result, StoreError, StreamName, Version,
    check_expected_version, validate_append,
};

use super::{APPEND_ATTEMPTS, EtcdEventStore, unavailable};
use crate::lock::recipe::prefix_end;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use crate::proto::v1::StoredEvent;

/// What one try of the Txn found.
enum Try {
    /// Applied at this revision.
    Won(i64),
    /// The compare failed; the stream is at this version.
    Lost(Version),
    /// No answer: applied or not, nobody knows yet.
    Unknown(tonic::Status),
}

fn compare_create(key: Vec<u8>, result: CompareResult) -> Compare {
    Compare {
        result: result as i32,
        target: CompareTarget::Create as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(0)),
    }
}

impl EtcdEventStore {
    pub(crate) async fn append_events(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended> {
        validate_append(&events)?;
        let append_id = format!("{:032x}", rand::rng().random::<u128>());
        let count = events.len() as u64;
        // The version the Txn expects: the caller's, or (Any) the head.
        let mut at = match expected {
            ExpectedVersion::Exact(version) => version,
            ExpectedVersion::Any => self.head_of(stream).await?.0,
        };
        let mut last_error = None;
        // A try at `at` got no answer: it may yet be applied. Until that
        // is settled, `at` must not move — a try at a later version could
        // then succeed too, and the events would be in the stream twice.
        let mut unsettled = false;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                self.endpoints.pause().await;
            }
            if unsettled {
                match self.written_after(stream, at, &append_id).await {
                    Err(err) => {
                        last_error = Some(err);
                        continue;
                    }
                    Ok(Written::Ours(revision)) => return Ok(appended(at, count, revision)),
                    // Another writer holds `at + 1`: the earlier try can
                    // never apply now.
                    Ok(Written::Theirs) => {
                        unsettled = false;
                        let (current, _) = self.head_of(stream).await?;
                        match expected {
                            ExpectedVersion::Exact(_) => {
                                check_expected_version(stream, expected, current)?;
                            }
                            ExpectedVersion::Any => at = current,
                        }
                    }
                    // Not (yet) applied: trying again at the same version
                    // is safe, since the compare lets only one try apply.
                    Ok(Written::Nothing) => {}
                }
            }
            match self.try_append(stream, at, &events, &append_id).await {
                Try::Won(revision) => return Ok(appended(at, count, revision)),
                // The winner may be an earlier try of this append: the
                // next round settles it.
                Try::Lost(_) if unsettled => {}
                Try::Lost(current) => match expected {
                    ExpectedVersion::Exact(_) => {
                        check_expected_version(stream, expected, current)?;
                        // The compare failed, yet the head read in the
                        // same Txn matches: never report a success that
                        // did not happen.
                        last_error = Some(StoreError::Storage {
                            reason: format!("{stream}: the append's compare failed at {current}"),
                        });
                    }
                    // No condition but "at the end": aim at the new end.
                    ExpectedVersion::Any => at = current,
                },
                Try::Unknown(status) => {
                    unsettled = true;
                    last_error = Some(unavailable(&status));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Unavailable {
            reason: format!("{APPEND_ATTEMPTS} tries failed"),
        }))
    }

    /// One Txn: if the stream is at `at`, put the events after it; else
    /// read its head, atomically.
    async fn try_append(
        &self,
        stream: &StreamName,
        at: Version,
        events: &[NewEvent],
        append_id: &str,
    ) -> Try {
        let mut compare = vec![compare_create(
            self.layout.event(stream, at.next()),
            CompareResult::Equal,
        )];
        if at > Version::NONE {
            compare.push(compare_create(
                self.layout.event(stream, at),
                CompareResult::Greater,
            ));
        }
        let success = events
            .iter()
            .enumerate()
            .map(|(index, event)| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: self.layout.event(stream, Version(at.0 + index as u64 + 1)),
                    value: StoredEvent {
                        event_type: event.event_type.clone(),
                        schema_version: event.schema_version,
                        payload: event.payload.clone(),
                        batch_index: index as u32,
                        append_id: append_id.to_owned(),
                    }
                    .encode_to_vec(),
                    ..PutRequest::default()
                })),
            })
            .collect();
        let prefix = self.layout.stream(stream);
        let failure = vec![RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                range_end: prefix_end(&prefix),
                key: prefix,
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Key as i32,
                keys_only: true,
                ..RangeRequest::default()
            })),
        }];
        let txn = TxnRequest {
            compare,
            success,
            failure,
        };
        let response = match self.endpoints.txn_once(txn).await {
            Ok(response) => response,
            Err(status) => return Try::Unknown(status),
        };
        if response.succeeded {
            return Try::Won(response.header.map_or(0, |h| h.revision));
        }
        let head = response
            .responses
            .into_iter()
            .find_map(|r| match r.response {
                Some(OpResponse::ResponseRange(range)) => Some(range),
                _ => None,
            });
        let version = head
            .and_then(|range| range.kvs.into_iter().next())
            .and_then(|kv| self.layout.parse_event(&kv.key))
            .map_or(Version::NONE, |(_, version)| version);
        Try::Lost(version)
    }

    /// Who wrote the event right after `at`, by a linearizable read.
    async fn written_after(
        &self,
        stream: &StreamName,
        at: Version,
        append_id: &str,
    ) -> Result<Written> {
        let response = self
            .endpoints
            .range(RangeRequest {
                key: self.layout.event(stream, at.next()),
                ..RangeRequest::default()
            })
            .await
            .map_err(|status| unavailable(&status))?;
        let Some(kv) = response.kvs.first() else {
            return Ok(Written::Nothing);
        };
        let stored =
            StoredEvent::decode(kv.value.as_slice()).map_err(|err| StoreError::Storage {
                reason: format!("{stream} {}: {err}", at.next()),
            })?;
        Ok(if stored.append_id == append_id {
            Written::Ours(kv.mod_revision)
        } else {
            Written::Theirs
        })
    }
}

/// The event after the expected version, as a retry finds it.
enum Written {
    Nothing,
    /// This append's, applied at this revision.
    Ours(i64),
    Theirs,
}

/// What an append of `count` events after `at`, applied at `revision`,
/// wrote.
fn appended(at: Version, count: u64, revision: i64) -> Appended {
    let position = |index: u64| {
        Position::from_revision(revision as u64, index as usize).unwrap_or(Position(u64::MAX))
    };
    Appended {
        first_version: at.next(),
        last_version: Version(at.0 + count),
        first_position: position(0),
        last_position: position(count - 1),
    }
}
