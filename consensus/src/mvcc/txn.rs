//! `Txn`: compare, then run one branch, as one revision.
//!
//! etcd evaluates every compare — including those of nested transactions
//! on the path that will run — against the store as it was before the
//! transaction, checks the operations of that path (a put that needs its
//! key, a read of a compacted revision), and only then applies them, so a
//! failing transaction changes nothing. Operations run in order and later
//! ones see earlier writes: etcd's lock recipe puts its key and then reads
//! the queue in one transaction.

use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeResponse, PutResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use crate::{Error, Result};

use super::{MAX_RANGE_RESPONSE_BYTES, MAX_REQUEST_BYTES, Mvcc, Write, header};

impl Mvcc {
    /// `Txn` as one transaction: one new revision if it wrote anything.
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse> {
        let mut path = Vec::new();
        // All the transaction's ranges together must fit in a response,
        // with room for its own writes (at most one request's worth).
        let mut budget = MAX_RANGE_RESPONSE_BYTES - MAX_REQUEST_BYTES;
        self.choose(request, &mut path, &mut budget)?;
        let mut write = self.write();
        let mut path = path.into_iter();
        let mut response = write.run(request, &mut path);
        response.header = Some(header(write.finish()));
        Ok(response)
    }

    /// A transaction that only reads (every operation a range, no nested
    /// transactions), answered without a write.
    pub fn read_only_txn(&self, request: &TxnRequest) -> Result<TxnResponse> {
        let succeeded = self.compares_hold(&request.compare);
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut budget = MAX_RANGE_RESPONSE_BYTES;
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            let Some(Request::RequestRange(range)) = &op.request else {
                return Err(Error::Unsupported("writes in a read-only transaction"));
            };
            let at = self.read_revision(range.revision)?;
            let found = self.range_at(range, at, budget)?;
            let bytes: usize = found
                .kvs
                .iter()
                .map(|kv| kv.key.len() + kv.value.len())
                .sum();
            budget -= bytes.min(budget);
            responses.push(ResponseOp {
                response: Some(Response::ResponseRange(found)),
            });
        }
        Ok(TxnResponse {
            header: Some(header(self.revision)),
            succeeded,
            responses,
        })
    }

    /// Whether every compare holds now. An empty list holds.
    fn compares_hold(&self, compares: &[Compare]) -> bool {
        compares.iter().all(|compare| self.compare_holds(compare))
    }

    /// A compare holds when every key in its range satisfies it. With no
    /// key, a value compare is false whatever its operator; the others
    /// compare against a key that never existed (all zeros).
    fn compare_holds(&self, compare: &Compare) -> bool {
        let target = CompareTarget::try_from(compare.target).unwrap_or(CompareTarget::Version);
        let live: Vec<_> = self
            .scan(&compare.key, &compare.range_end)
            .filter_map(|(_, versions)| Mvcc::visible(versions, self.revision))
            .collect();
        if live.is_empty() {
            if target == CompareTarget::Value {
                return false;
            }
            return holds(compare, target, None);
        }
        live.into_iter()
            .all(|version| holds(compare, target, Some(version)))
    }

    /// Decides the branch of `request` (and of the transactions nested in
    /// it) and checks the operations that will run; `path` collects the
    /// decisions in the order the operations will meet them.
    fn choose(&self, request: &TxnRequest, path: &mut Vec<bool>, budget: &mut usize) -> Result<()> {
        let succeeded = self.compares_hold(&request.compare);
        path.push(succeeded);
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        for op in branch {
            match &op.request {
                Some(Request::RequestRange(range)) => {
                    // Checked now, so that running the branch cannot fail
                    // halfway through its writes.
                    let at = self.read_revision(range.revision)?;
                    let found = self.range_at(range, at, *budget)?;
                    let bytes: usize = found
                        .kvs
                        .iter()
                        .map(|kv| kv.key.len() + kv.value.len())
                        .sum();
                    *budget -= bytes.min(*budget);
                }
                Some(Request::RequestPut(put)) => {
                    let exists = self
                        .keys
                        .get(&put.key)
                        .and_then(|versions| Mvcc::visible(versions, self.revision))
                        .is_some();
                    if (put.ignore_value || put.ignore_lease) && !exists {
                        return Err(Error::KeyNotFound);
                    }
                    if put.lease != 0 && !self.leases.contains(put.lease) {
                        return Err(Error::LeaseNotFound);
                    }
                }
                Some(Request::RequestDeleteRange(_)) => {}
                Some(Request::RequestTxn(nested)) => self.choose(nested, path, budget)?,
                None => return Err(Error::KeyNotFound),
            }
        }
        Ok(())
    }
}

/// How `version` (or a key that does not exist) compares with the target.
fn holds(compare: &Compare, target: CompareTarget, version: Option<&super::Version>) -> bool {
    let ordering = match target {
        CompareTarget::Value => {
            let given: &[u8] = match &compare.target_union {
                Some(TargetUnion::Value(value)) => value,
                _ => &[],
            };
            version.map_or(&[][..], |v| &v.value[..]).cmp(given)
        }
        CompareTarget::Version
        | CompareTarget::Create
        | CompareTarget::Mod
        | CompareTarget::Lease => {
            let stored = version.map_or(0, |v| match target {
                CompareTarget::Version => v.version,
                CompareTarget::Create => v.create_revision,
                CompareTarget::Mod => v.mod_revision,
                _ => v.lease,
            });
            let given = match (&compare.target_union, target) {
                (Some(TargetUnion::Version(n)), CompareTarget::Version)
                | (Some(TargetUnion::CreateRevision(n)), CompareTarget::Create)
                | (Some(TargetUnion::ModRevision(n)), CompareTarget::Mod)
                | (Some(TargetUnion::Lease(n)), CompareTarget::Lease) => *n,
                _ => 0,
            };
            stored.cmp(&given)
        }
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Err(_) => true,
    }
}

impl Write<'_> {
    /// Runs the branch `path` chose, nested transactions included.
    fn run(&mut self, request: &TxnRequest, path: &mut impl Iterator<Item = bool>) -> TxnResponse {
        let succeeded = path.next().unwrap_or(false);
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let responses = branch
            .iter()
            .map(|op| ResponseOp {
                response: self.run_op(op, path),
            })
            .collect();
        TxnResponse {
            header: Some(header(self.read_revision())),
            succeeded,
            responses,
        }
    }

    fn run_op(
        &mut self,
        op: &RequestOp,
        path: &mut impl Iterator<Item = bool>,
    ) -> Option<Response> {
        Some(match op.request.as_ref()? {
            Request::RequestRange(range) => {
                let at = if range.revision > 0 {
                    range.revision
                } else {
                    self.read_revision()
                };
                // Revision and size were checked when the branch was
                // chosen, with room for this transaction's own writes.
                let mut response = self
                    .store
                    .range_at(range, at, usize::MAX)
                    .unwrap_or_default();
                response.header = Some(header(self.read_revision()));
                Response::ResponseRange(response)
            }
            Request::RequestPut(put) => {
                let prev = self.put(put);
                Response::ResponsePut(PutResponse {
                    header: Some(header(self.read_revision())),
                    prev_kv: prev,
                })
            }
            Request::RequestDeleteRange(delete) => {
                let (deleted, prev_kvs) = self.delete_range(delete);
                Response::ResponseDeleteRange(DeleteRangeResponse {
                    header: Some(header(self.read_revision())),
                    deleted,
                    prev_kvs,
                })
            }
            Request::RequestTxn(nested) => Response::ResponseTxn(self.run(nested, path)),
        })
    }
}
