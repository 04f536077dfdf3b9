//! The lock and election recipes over any [`Etcd`]: etcd 3.4's
//! `concurrency.Mutex` and `concurrency.Election`, step for step, plus one
//! check 3.4 lacks (the waiter's own key must still exist once its turn
//! comes: a lease that ran out while waiting is not a lock).

use tonic::Status;

use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

/// What the recipes need from an etcd endpoint.
#[tonic::async_trait]
pub trait Etcd: Send + Sync {
    async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status>;
    async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status>;
    /// Returns once `key` has been deleted at a revision after `after`
    /// (at once if it is already gone).
    async fn wait_deleted(&self, key: &[u8], after: i64) -> Result<(), Status>;
    /// Releases `held` in the background: what a waiter that gave up (or
    /// whose caller went away) leaves behind must not block the queue.
    fn release_later(&self, held: Held);
}

/// Takes a queued key out of the queue unless the wait succeeds — also
/// when the waiting future is dropped, as a cancelled call's is.
struct Queued<'a> {
    etcd: &'a dyn Etcd,
    held: Option<Held>,
}

impl Queued<'_> {
    fn keep(mut self) {
        self.held = None;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            self.etcd.release_later(held);
        }
    }
}

/// A lock or a leadership, held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The ownership key, `NAME/LEASE` (the lease in hex).
    pub key: Vec<u8>,
    /// The key's creation revision: the fencing token, larger for every
    /// later holder.
    pub revision: i64,
    pub lease: i64,
    /// The store's revision when the wait ended.
    pub header_revision: i64,
}

/// The key a contender with `lease` puts to queue for `name`.
pub fn ownership_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// The election's or lock's prefix: its name and a slash.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The end of the range of keys starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: every key from the prefix on.
    vec![0]
}

fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

fn get(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        })),
    }
}

/// The first-created key under `prefix` (etcd's `WithFirstCreate`).
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

fn range_of(response: &TxnResponse, at: usize) -> Option<&RangeResponse> {
    match response.responses.get(at)?.response.as_ref()? {
        OpResponse::ResponseRange(range) => Some(range),
        _ => None,
    }
}

fn malformed() -> Status {
    Status::internal("the store answered the lock transaction in an unexpected shape")
}

/// Joins the queue for `name` with `lease` (a no-op if this lease already
/// queues) and waits for its turn. `value` is what the key holds (empty
/// for a lock, the candidate's proclamation for an election).
pub async fn acquire(
    etcd: &dyn Etcd,
    name: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<Held, Status> {
    let key = ownership_key(name, lease);
    let prefix = prefix(name);
    let response = etcd
        .txn(TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key.clone(),
                        value: value.to_vec(),
                        lease,
                        ..PutRequest::default()
                    })),
                },
                RequestOp {
                    request: Some(Op::RequestRange(first_created(&prefix))),
                },
            ],
            failure: vec![
                get(&key),
                RequestOp {
                    request: Some(Op::RequestRange(first_created(&prefix))),
                },
            ],
        })
        .await?;
    let revision = if response.succeeded {
        response.header.as_ref().map_or(0, |h| h.revision)
    } else {
        let mine = range_of(&response, 0)
            .and_then(|r| r.kvs.first())
            .ok_or_else(malformed)?;
        if mine.value != value {
            // An election re-joined with a new value proclaims it.
            proclaim(etcd, &key, mine.create_revision, value).await?;
        }
        mine.create_revision
    };
    let owner = range_of(&response, 1).ok_or_else(malformed)?;
    let mut header_revision = response.header.as_ref().map_or(0, |h| h.revision);
    // From here on, failing or being cancelled leaves the queue rather
    // than block it until the lease runs out (etcd's `Mutex.Lock` unlocks
    // on both too).
    let queued = Queued {
        etcd,
        held: Some(Held {
            key: key.clone(),
            revision,
            lease,
            header_revision,
        }),
    };
    if owner
        .kvs
        .first()
        .is_some_and(|kv| kv.create_revision != revision)
    {
        header_revision = wait_for_turn(etcd, &prefix, revision).await?;
        // 3.4 stops here; but the lease may have run out while we waited,
        // taking our key with it — then we hold nothing.
        let still = etcd.range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        });
        let still = still.await?;
        if still
            .kvs
            .first()
            .is_none_or(|kv| kv.create_revision != revision)
        {
            return Err(Status::failed_precondition(
                "session: expired (the lease ran out while waiting; the lock key is gone)",
            ));
        }
    }
    queued.keep();
    Ok(Held {
        key,
        revision,
        lease,
        header_revision,
    })
}

/// Waits until no key under `prefix` was created before `revision`: one
/// predecessor at a time, the latest first (etcd's `waitDeletes`).
async fn wait_for_turn(etcd: &dyn Etcd, prefix: &[u8], revision: i64) -> Result<i64, Status> {
    loop {
        let ahead = etcd
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision: revision - 1,
                ..RangeRequest::default()
            })
            .await?;
        let header = ahead.header.as_ref().map_or(0, |h| h.revision);
        let Some(last) = ahead.kvs.first() else {
            return Ok(header);
        };
        etcd.wait_deleted(&last.key, header).await?;
    }
}

/// Releases a lock or resigns a leadership: deletes the key if it is
/// still the one this holder created.
pub async fn release(etcd: &dyn Etcd, held: &Held) -> Result<bool, Status> {
    let response = etcd
        .txn(TxnRequest {
            compare: vec![created_at(&held.key, held.revision)],
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: held.key.clone(),
                    ..DeleteRangeRequest::default()
                })),
            }],
            failure: Vec::new(),
        })
        .await?;
    Ok(response.succeeded)
}

/// Updates a leader's value, if it still leads.
pub async fn proclaim(
    etcd: &dyn Etcd,
    key: &[u8],
    revision: i64,
    value: &[u8],
) -> Result<(), Status> {
    let response = etcd
        .txn(TxnRequest {
            compare: vec![created_at(key, revision)],
            // The key keeps the lease it was created with, whatever the
            // caller says: a proclamation must not outlive the leadership.
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    ignore_lease: true,
                    ..PutRequest::default()
                })),
            }],
            failure: Vec::new(),
        })
        .await?;
    if response.succeeded {
        Ok(())
    } else {
        Err(Status::failed_precondition(NOT_LEADER))
    }
}

/// etcd's texts for the election errors.
pub const NOT_LEADER: &str = "election: not leader";
pub const NO_LEADER: &str = "election: no leader";

/// The current leader of election `name`: its first-created key.
pub async fn leader(etcd: &dyn Etcd, name: &[u8]) -> Result<(KeyValue, i64), Status> {
    let response = etcd.range(first_created(&prefix(name))).await?;
    let header = response.header.as_ref().map_or(0, |h| h.revision);
    response
        .kvs
        .into_iter()
        .next()
        .map(|kv| (kv, header))
        .ok_or_else(|| Status::not_found(NO_LEADER))
}
