//! etcd's MVCC semantics, case by case (each observed against etcd 3.4).

use super::*;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{Compare, RequestOp, TxnRequest};

fn put(store: &mut Mvcc, key: &str, value: &str) -> i64 {
    store
        .put(&PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        })
        .expect("put")
        .header
        .expect("header")
        .revision
}

fn get(store: &Mvcc, key: &str, revision: i64) -> Result<Vec<(String, String, i64)>> {
    Ok(store
        .range(&RangeRequest {
            key: key.into(),
            revision,
            ..RangeRequest::default()
        })?
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.version,
            )
        })
        .collect())
}

fn prefix(key: &str) -> Vec<u8> {
    let mut end = key.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Episode 13. A new store is at revision 1; each write makes the next
/// revision; a key's version counts its changes and restarts after a
/// delete, with a new create revision.
#[test]
fn mvcc_revisions_and_versions_follow_etcd() {
    let mut store = Mvcc::new();
    assert_eq!(store.revision(), 1);
    assert_eq!(put(&mut store, "k", "a"), 2);
    assert_eq!(put(&mut store, "k", "b"), 3);
    let kv = &store
        .range(&RangeRequest {
            key: b"k".to_vec(),
            ..RangeRequest::default()
        })
        .expect("range")
        .kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let deleted = store
        .delete_range(&DeleteRangeRequest {
            key: b"k".to_vec(),
            prev_kv: true,
            ..DeleteRangeRequest::default()
        })
        .expect("delete");
    assert_eq!(deleted.deleted, 1);
    assert_eq!(deleted.prev_kvs[0].value, b"b");
    assert_eq!(deleted.header.expect("header").revision, 4);
    // Deleting nothing makes no revision.
    let nothing = store
        .delete_range(&DeleteRangeRequest {
            key: b"k".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .expect("delete");
    assert_eq!(
        (nothing.deleted, nothing.header.expect("h").revision),
        (0, 4)
    );
    assert_eq!(put(&mut store, "k", "c"), 5);
    let kv = &store
        .range(&RangeRequest {
            key: b"k".to_vec(),
            ..RangeRequest::default()
        })
        .expect("range")
        .kvs[0];
    assert_eq!((kv.create_revision, kv.version), (5, 1), "a fresh life");
}

/// Old revisions stay readable until compacted; reading *at* the
/// compaction revision still works; the future is refused.
#[test]
fn mvcc_history_reads_and_compaction() {
    let mut store = Mvcc::new();
    put(&mut store, "k", "v1"); // 2
    put(&mut store, "k", "v2"); // 3
    put(&mut store, "other", "x"); // 4
    assert_eq!(get(&store, "k", 2).expect("ok")[0].1, "v1");
    assert_eq!(get(&store, "k", 3).expect("ok")[0].1, "v2");
    assert_eq!(get(&store, "k", 5), Err(Error::FutureRevision));
    store
        .compact(&CompactionRequest {
            revision: 3,
            physical: true,
        })
        .expect("compact");
    assert_eq!(get(&store, "k", 2), Err(Error::Compacted));
    assert_eq!(get(&store, "k", 3).expect("ok")[0].1, "v2");
    assert_eq!(
        store.compact(&CompactionRequest {
            revision: 3,
            physical: false
        }),
        Err(Error::Compacted)
    );
    assert_eq!(
        store.compact(&CompactionRequest {
            revision: 99,
            physical: false
        }),
        Err(Error::FutureRevision)
    );
}

/// Compaction drops keys whose latest version is a deletion, and frees
/// what they held.
#[test]
fn mvcc_compaction_frees_deleted_keys() {
    let mut store = Mvcc::new();
    put(&mut store, "gone", &"x".repeat(1000));
    store
        .delete_range(&DeleteRangeRequest {
            key: b"gone".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .expect("delete");
    let before = store.bytes();
    store
        .compact(&CompactionRequest {
            revision: store.revision(),
            physical: false,
        })
        .expect("compact");
    assert!(
        store.bytes() < before - 1000,
        "{} vs {before}",
        store.bytes()
    );
    assert_eq!(store.bytes(), 0);
}

/// Ranges: prefixes, `"\0"` for everything from a key, an end before the
/// start (empty, not an error), limits with `more` and `count` counting
/// every key in range.
#[test]
fn mvcc_ranges_count_limit_and_encode_ends() {
    let mut store = Mvcc::new();
    for key in ["a", "s/a", "s/b", "s/c", "t"] {
        put(&mut store, key, key);
    }
    let range = |key: &str, end: &[u8], limit: i64| {
        store
            .range(&RangeRequest {
                key: key.into(),
                range_end: end.to_vec(),
                limit,
                ..RangeRequest::default()
            })
            .expect("range")
    };
    let all = range("s/", &prefix("s/"), 0);
    assert_eq!((all.kvs.len(), all.count, all.more), (3, 3, false));
    let limited = range("s/", &prefix("s/"), 1);
    assert_eq!(
        (limited.kvs.len(), limited.count, limited.more),
        (1, 3, true)
    );
    assert_eq!(range("s/b", &[0], 0).kvs.len(), 3, "s/b, s/c, t");
    assert!(range("s/c", b"s/a", 0).kvs.is_empty());
    let count_only = store
        .range(&RangeRequest {
            key: b"\0".to_vec(),
            range_end: vec![0],
            count_only: true,
            ..RangeRequest::default()
        })
        .expect("range");
    assert_eq!((count_only.count, count_only.kvs.len()), (5, 0));
}

/// etcd's quirk, kept: a sort target without an order sorts ascending,
/// but only the first limit + 1 keys in key order.
#[test]
fn mvcc_sort_without_order_sorts_only_the_limited_keys() {
    let mut store = Mvcc::new();
    // s/a has version 3, s/b version 2, s/c version 1.
    for (key, times) in [("s/a", 3), ("s/b", 2), ("s/c", 1)] {
        for _ in 0..times {
            put(&mut store, key, "v");
        }
    }
    let first = |order: SortOrder| {
        store
            .range(&RangeRequest {
                key: b"s/".to_vec(),
                range_end: prefix("s/"),
                limit: 1,
                sort_target: SortTarget::Version as i32,
                sort_order: order as i32,
                ..RangeRequest::default()
            })
            .expect("range")
            .kvs[0]
            .key
            .clone()
    };
    assert_eq!(first(SortOrder::None), b"s/b");
    assert_eq!(first(SortOrder::Ascend), b"s/c");
    assert_eq!(first(SortOrder::Descend), b"s/a");
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        })),
    }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        })),
    }
}

fn version_is(key: &str, version: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Version as i32,
        key: key.into(),
        target_union: Some(TargetUnion::Version(version)),
        ..Compare::default()
    }
}

/// A transaction: compares against the state before it, one revision for
/// all its writes, later operations see earlier ones; a missing key
/// compares as version 0 and its value compare is false.
#[test]
fn mvcc_txn_compares_then_writes_one_revision() {
    let mut store = Mvcc::new();
    let create_if_absent = TxnRequest {
        compare: vec![version_is("lock", 0)],
        success: vec![op_put("lock", "me"), op_put("owner", "me"), op_get("lock")],
        failure: vec![op_get("lock")],
    };
    let first = store.txn(&create_if_absent).expect("txn");
    assert!(first.succeeded);
    assert_eq!(first.header.expect("header").revision, 2, "one revision");
    let Some(Response::ResponseRange(seen)) = &first.responses[2].response else {
        panic!("a range response")
    };
    assert_eq!(
        seen.kvs[0].value, b"me",
        "the put is visible later in the txn"
    );
    let second = store.txn(&create_if_absent).expect("txn");
    assert!(!second.succeeded);
    assert_eq!(second.header.expect("header").revision, 2, "read-only path");
    let value_of_missing = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::NotEqual as i32,
            target: CompareTarget::Value as i32,
            key: b"missing".to_vec(),
            target_union: Some(TargetUnion::Value(b"x".to_vec())),
            ..Compare::default()
        }],
        ..TxnRequest::default()
    };
    assert!(!store.txn(&value_of_missing).expect("txn").succeeded);
}

/// A failing check on the branch that would run leaves the store as it
/// was: nothing of the transaction is applied.
#[test]
fn mvcc_txn_that_fails_its_checks_changes_nothing() {
    let mut store = Mvcc::new();
    let before = store.clone();
    let txn = TxnRequest {
        success: vec![
            op_put("a", "1"),
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: b"missing".to_vec(),
                    ignore_value: true,
                    ..PutRequest::default()
                })),
            },
        ],
        ..TxnRequest::default()
    };
    assert_eq!(store.txn(&txn), Err(Error::KeyNotFound));
    assert_eq!(store, before);
    let future = TxnRequest {
        success: vec![
            op_put("a", "1"),
            RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: b"a".to_vec(),
                    revision: 50,
                    ..RangeRequest::default()
                })),
            },
        ],
        ..TxnRequest::default()
    };
    assert_eq!(store.txn(&future), Err(Error::FutureRevision));
    assert_eq!(store, before);
}

/// The request checks etcd makes before proposing.
#[test]
fn mvcc_validation_refuses_what_etcd_refuses() {
    assert_eq!(
        validate::range(&RangeRequest::default()),
        Err(Error::EmptyKey)
    );
    assert_eq!(
        validate::put(&PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..PutRequest::default()
        }),
        Err(Error::ValueProvided)
    );
    let many = TxnRequest {
        success: (0..129).map(|i| op_put(&format!("k{i}"), "v")).collect(),
        ..TxnRequest::default()
    };
    assert_eq!(validate::txn(&many), Err(Error::TooManyOps));
    let twice = TxnRequest {
        success: vec![op_put("d1", "a"), op_put("d1", "b")],
        ..TxnRequest::default()
    };
    assert_eq!(validate::txn(&twice), Err(Error::DuplicateKey));
    let put_into_delete = TxnRequest {
        success: vec![
            op_put("d1", "a"),
            RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: b"d".to_vec(),
                    range_end: prefix("d"),
                    ..DeleteRangeRequest::default()
                })),
            },
        ],
        ..TxnRequest::default()
    };
    assert_eq!(validate::txn(&put_into_delete), Err(Error::DuplicateKey));
    let exclusive_branches = TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                success: vec![op_put("x", "1")],
                failure: vec![op_put("x", "2")],
                ..TxnRequest::default()
            })),
        }],
        ..TxnRequest::default()
    };
    assert_eq!(validate::txn(&exclusive_branches), Ok(()));
    let empty_op = TxnRequest {
        success: vec![RequestOp { request: None }],
        ..TxnRequest::default()
    };
    assert_eq!(validate::txn(&empty_op), Err(Error::KeyNotFound));
}

/// A snapshot round trip gives the same store, history included.
#[test]
fn mvcc_snapshot_round_trips() {
    let mut store = Mvcc::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    put(&mut store, "b", "3");
    store
        .delete_range(&DeleteRangeRequest {
            key: b"b".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .expect("delete");
    let copy = Mvcc::from_histories(
        store.revision(),
        store.compact_revision(),
        store.to_histories(),
        store.to_lease_entries(),
    );
    assert_eq!(copy, store);
}

/// A delete asked to return what it deletes refuses, before deleting
/// anything, when that would not fit one response; without `prev_kv` the
/// same delete goes through.
#[test]
fn mvcc_delete_returning_too_much_is_refused_whole() {
    let mut store = Mvcc::default();
    let value = "v".repeat(1024 * 1024);
    for i in 0..(MAX_RANGE_RESPONSE_BYTES / value.len() + 1) {
        put(&mut store, &format!("big/{i:03}"), &value);
    }
    let revision = store.revision();
    let everything = DeleteRangeRequest {
        key: b"big/".to_vec(),
        range_end: prefix("big/"),
        prev_kv: true,
    };
    assert!(matches!(
        store.delete_range(&everything),
        Err(Error::RangeTooLarge { .. })
    ));
    assert_eq!(store.revision(), revision, "nothing was deleted");
    let deleted = store
        .delete_range(&DeleteRangeRequest {
            prev_kv: false,
            ..everything
        })
        .expect("deletes");
    assert_eq!(deleted.deleted, 65);
    assert!(deleted.prev_kvs.is_empty());
}

/// Episode 16. A lease carries the keys put with it and loses those put
/// again without it or deleted; revoking it deletes what it still carries
/// in one revision — and a watcher asking for fewer changes than that
/// revision holds gets the whole revision, from the recent window and
/// from the histories alike.
#[test]
fn mvcc_lease_revoke_is_one_revision_and_watchers_see_it_whole() {
    let mut store = Mvcc::new();
    store
        .grant(&LeaseGrantRequest { ttl: 10, id: 7 })
        .expect("grant");
    for n in 0..1500 {
        store
            .put(&PutRequest {
                key: format!("/svc/{n:04}").into_bytes(),
                value: b"up".to_vec(),
                lease: 7,
                ..PutRequest::default()
            })
            .expect("put with the lease");
    }
    put(&mut store, "/svc/0000", "no lease now");
    store
        .delete_range(&DeleteRangeRequest {
            key: b"/svc/0001".to_vec(),
            ..DeleteRangeRequest::default()
        })
        .expect("delete");
    assert_eq!(store.leases().get(7).map(|l| l.keys.len()), Some(1498));
    let before = store.revision();
    store.revoke(&LeaseRevokeRequest { id: 7 }).expect("revoke");
    assert_eq!(store.revision(), before + 1, "one revision for every key");
    assert!(store.leases().get(7).is_none());
    assert_eq!(get(&store, "/svc/0000", 0).expect("read").len(), 1);
    let end = prefix("/svc/");
    let revoked = store.changes_since(b"/svc/", &end, (before + 1, 0), 1000, false);
    assert_eq!(revoked.len(), 1498, "the revision is not cut at 1000");
    assert!(revoked.iter().all(|c| c.version.is_tombstone()));
    // The histories give what the window gives, in the same order.
    let window: Vec<(Vec<u8>, i64, i64)> = store
        .changes_since(b"/svc/", &end, (1, 0), 2000, false)
        .into_iter()
        .map(|c| (c.key, c.version.mod_revision, c.version.mod_sub))
        .collect();
    let histories: Vec<(Vec<u8>, i64, i64)> = store
        .catch_up(b"/svc/", &end, (1, 0), 2000)
        .into_iter()
        .map(|(key, v)| (key, v.mod_revision, v.mod_sub))
        .collect();
    assert_eq!(window.len(), 1500 + 2 + 1498);
    assert_eq!(histories, window);
}
