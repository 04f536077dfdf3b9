//! What every store shares: the transaction interface, committed data
//! with commit timestamps, and a pending transaction's buffered state.

use std::collections::HashMap;

/// A key of the store.
pub type Key = u64;

/// A running transaction, as handed out by `begin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxnHandle(pub u64);

/// Why a transaction did not commit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Abort {
    #[error("conflict on key {key}: it changed after this transaction {reason}")]
    Conflict { key: Key, reason: &'static str },
    #[error("no running transaction {0:?}")]
    UnknownTxn(TxnHandle),
}

/// A multi-key store of lists with transactions.
pub trait TransactionalStore {
    /// Starts a transaction.
    fn begin(&mut self) -> TxnHandle;
    /// `key`'s list as this transaction sees it.
    fn read(&mut self, txn: TxnHandle, key: Key) -> Result<Vec<i64>, Abort>;
    /// Buffers an append; visible to others only after commit.
    fn append(&mut self, txn: TxnHandle, key: Key, element: i64) -> Result<(), Abort>;
    /// Commits, or aborts with the reason.
    fn commit(&mut self, txn: TxnHandle) -> Result<(), Abort>;
}

/// Committed lists; each element remembers the commit that added it, so a
/// snapshot at timestamp `t` is the prefix committed at or before `t`.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    lists: HashMap<Key, Vec<(i64, u64)>>,
    /// The last commit timestamp handed out.
    pub clock: u64,
}

impl Committed {
    pub fn latest(&self, key: Key) -> Vec<i64> {
        self.at(key, u64::MAX)
    }

    /// The list as of commit timestamp `ts`.
    pub fn at(&self, key: Key, ts: u64) -> Vec<i64> {
        let list = self.lists.get(&key).map_or(&[][..], Vec::as_slice);
        let end = list.partition_point(|(_, committed)| *committed <= ts);
        list[..end].iter().map(|(e, _)| *e).collect()
    }

    /// When `key` was last written (0: never).
    pub fn written_at(&self, key: Key) -> u64 {
        self.lists
            .get(&key)
            .and_then(|l| l.last())
            .map_or(0, |(_, ts)| *ts)
    }

    /// Installs `appends` as one commit.
    pub fn apply(&mut self, appends: &[(Key, i64)]) {
        self.clock += 1;
        for (key, element) in appends {
            self.lists
                .entry(*key)
                .or_default()
                .push((*element, self.clock));
        }
    }
}

/// A running transaction: when it began, what it read (and when that key
/// had last been written), and its buffered appends.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub start: u64,
    pub reads: Vec<(Key, u64)>,
    pub appends: Vec<(Key, i64)>,
}

impl Pending {
    /// `base` plus this transaction's own appends to `key`: a transaction
    /// always sees its own writes.
    pub fn with_own(&self, key: Key, mut base: Vec<i64>) -> Vec<i64> {
        base.extend(
            self.appends
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, e)| *e),
        );
        base
    }
}

/// The running transactions of a store, by handle.
#[derive(Debug, Default)]
pub(crate) struct Running {
    next: u64,
    txns: HashMap<TxnHandle, Pending>,
}

impl Running {
    pub fn begin(&mut self, start: u64) -> TxnHandle {
        self.next += 1;
        let handle = TxnHandle(self.next);
        self.txns.insert(
            handle,
            Pending {
                start,
                ..Pending::default()
            },
        );
        handle
    }

    pub fn get(&mut self, txn: TxnHandle) -> Result<&mut Pending, Abort> {
        self.txns.get_mut(&txn).ok_or(Abort::UnknownTxn(txn))
    }

    /// Ends `txn` (commit or abort), handing back its state.
    pub fn finish(&mut self, txn: TxnHandle) -> Result<Pending, Abort> {
        self.txns.remove(&txn).ok_or(Abort::UnknownTxn(txn))
    }
}
