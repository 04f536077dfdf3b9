//! The checks etcd makes on a request before it reaches Raft
//! (`etcdserver/api/v3rpc/key.go`): a refused request is never proposed,
//! so it costs the cluster nothing and changes nothing.

use std::collections::HashSet;

use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::{Error, Result};

/// The most operations one `Txn` (each branch, and its compares) may hold,
/// etcd's `--max-txn-ops` default.
pub const MAX_TXN_OPS: usize = 128;

pub fn range(request: &RangeRequest) -> Result<()> {
    if request.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

pub fn put(request: &PutRequest) -> Result<()> {
    if request.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

pub fn delete_range(request: &DeleteRangeRequest) -> Result<()> {
    if request.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// A transaction: within its operation budget (nested transactions get
/// what is left of it), no empty keys, no empty operations, and no key
/// written twice where both writes could run.
pub fn txn(request: &TxnRequest) -> Result<()> {
    txn_within(request, MAX_TXN_OPS)?;
    intervals(&request.success)?;
    intervals(&request.failure)?;
    Ok(())
}

fn txn_within(request: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if ops > max_ops {
        return Err(Error::TooManyOps);
    }
    if request.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in request.success.iter().chain(&request.failure) {
        request_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn request_op(op: &RequestOp, max_ops: usize) -> Result<()> {
    match &op.request {
        Some(Request::RequestRange(r)) => range(r),
        Some(Request::RequestPut(r)) => put(r),
        Some(Request::RequestDeleteRange(r)) => delete_range(r),
        Some(Request::RequestTxn(r)) => txn_within(r, max_ops),
        // etcd's own answer to an operation with nothing in it.
        None => Err(Error::KeyNotFound),
    }
}

/// A key range a delete covers: `[start, end)`, `None` for a single key,
/// `Some(None)` for everything from `start` on.
#[derive(Clone)]
struct Deleted {
    start: Vec<u8>,
    end: Option<Option<Vec<u8>>>,
}

impl Deleted {
    fn covers(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(None) => key >= self.start.as_slice(),
            Some(Some(end)) => key >= self.start.as_slice() && key < end.as_slice(),
        }
    }
}

/// etcd's `checkIntervals`: two puts of one key, or a put into a range the
/// same level deletes, would leave the key's fate to the order of
/// operations; the two branches of a nested transaction are exclusive, so
/// they may write the same key. Returns this level's puts and deletes.
fn intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Deleted>)> {
    let mut deletes: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                start: d.key.clone(),
                end: match d.range_end.as_slice() {
                    [] => None,
                    [0] => Some(None),
                    end => Some(Some(end.to_vec())),
                },
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, deletes_then) = intervals(&nested.success)?;
        let (puts_else, deletes_else) = intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deletes.iter().any(|d| d.covers(key)) {
                return Err(Error::DuplicateKey);
            }
        }
        for key in &puts_else {
            let clash = puts.contains(key) && !puts_then.contains(key);
            if clash || deletes.iter().any(|d| d.covers(key)) {
                return Err(Error::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if puts.contains(&put.key) || deletes.iter().any(|d| d.covers(&put.key)) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, deletes))
}
