//! A write's context is client input: one "from the future" must not make
//! later acknowledged writes vanish, nor push a dot past the wire bound.

use std::collections::BTreeMap;

use tonic::Code;

use super::store::Store;
use super::version::{self, Stored};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot, Siblings};
use crate::clock::vector::VersionVector;

const A: ReplicaId = ReplicaId(1 << 40 | 1);
const B: ReplicaId = ReplicaId(2 << 40 | 1);

fn stored(value: &str) -> Stored {
    Stored {
        value: value.as_bytes().to_vec(),
        stamp_ms: 0,
    }
}

fn context(entries: &[(ReplicaId, u64)]) -> VersionVector {
    let mut context = VersionVector::new();
    for &(actor, count) in entries {
        context.observe(actor, count);
    }
    context
}

fn values(store: &Store, key: &str) -> Vec<String> {
    store.get(key).map_or_else(Vec::new, |state| {
        state
            .values()
            .map(|stored| String::from_utf8_lossy(&stored.value).into_owned())
            .collect()
    })
}

/// The review's repro, as stores: node 2 coordinates with a context that
/// claims 1,000 writes of node 1's actor; node 1's next write, merged on
/// node 2, must survive.
#[test]
fn quorum_context_from_the_future_cannot_hide_later_writes() {
    let (mut n1, mut n2) = (Store::default(), Store::default());
    let first = n1
        .coordinate(A, "p", &VersionVector::new(), stored("first"))
        .expect("within bounds");
    n2.merge("p", &first).expect("within bounds");
    let poison = n2
        .coordinate(B, "p", &context(&[(A, 1000)]), stored("poison"))
        .expect("a context ahead of another actor is clamped, not refused");
    assert_eq!(poison.context().highest(A), 1, "clamped to what n2 saw");

    let victim = n1
        .coordinate(A, "p", &version::client_context(&first), stored("victim"))
        .expect("within bounds");
    n2.merge("p", &victim).expect("within bounds");
    n1.merge("p", &poison).expect("within bounds");
    let mut on_n2 = values(&n2, "p");
    on_n2.sort();
    assert_eq!(on_n2, ["poison", "victim"], "the acknowledged write stays");
    assert_eq!(values(&n1, "p"), values(&n2, "p"));
}

/// A context claiming more of the coordinator's own writes than it made
/// is refused with InvalidArgument; the key is untouched.
#[test]
fn quorum_context_ahead_of_the_coordinator_is_refused() {
    let mut store = Store::default();
    store
        .coordinate(A, "k", &VersionVector::new(), stored("v"))
        .expect("within bounds");
    let err = store
        .coordinate(A, "k", &context(&[(A, 2)]), stored("w"))
        .expect_err("A made one write to k");
    assert_eq!(tonic::Status::from(err).code(), Code::InvalidArgument);
    assert_eq!(values(&store, "k"), ["v"]);
    store
        .coordinate(A, "k", &context(&[(A, 1)]), stored("w"))
        .expect("a context it issued");
    assert_eq!(values(&store, "k"), ["w"]);
}

/// A key whose dots for this actor reached the last counter the wire
/// accepts takes no further write from it: refused, not a dot peers
/// would reject as malformed.
#[test]
fn quorum_next_dot_never_passes_the_wire_bound() {
    let last = version::MAX_COUNTER - 1;
    let dot = Dot {
        replica: A,
        counter: last,
    };
    let state = Siblings::from_parts(
        BTreeMap::from([(dot, stored("old"))]),
        CausalContext::from_parts(VersionVector::new(), [dot]),
    );
    let mut store = Store::default();
    store.merge("k", &state).expect("within bounds");
    let err = store
        .coordinate(A, "k", &context(&[(A, last)]), stored("new"))
        .expect_err("the next dot would be past the bound");
    assert_eq!(tonic::Status::from(err).code(), Code::OutOfRange);
    assert_eq!(values(&store, "k"), ["old"]);
}
