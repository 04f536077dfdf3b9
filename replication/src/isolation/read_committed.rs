//! The broken twin: read committed with no conflict check at all.

use super::core::{Abort, Committed, Key, Running, TransactionalStore, TxnHandle};

/// Every read returns the latest committed list; commit installs the
/// buffered appends without looking. No dirty reads (G1 stays out), but
/// two transactions that read x, then append to x based on what they
/// read, both commit: a lost update (G-single).
#[derive(Debug, Default)]
pub struct NaiveReadCommittedStore {
    committed: Committed,
    running: Running,
}

impl NaiveReadCommittedStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl TransactionalStore for NaiveReadCommittedStore {
    fn begin(&mut self) -> TxnHandle {
        self.running.begin(self.committed.clock)
    }

    fn read(&mut self, txn: TxnHandle, key: Key) -> Result<Vec<i64>, Abort> {
        let latest = self.committed.latest(key);
        Ok(self.running.get(txn)?.with_own(key, latest))
    }

    fn append(&mut self, txn: TxnHandle, key: Key, element: i64) -> Result<(), Abort> {
        self.running.get(txn)?.appends.push((key, element));
        Ok(())
    }

    fn commit(&mut self, txn: TxnHandle) -> Result<(), Abort> {
        // Pitfall: no validation here is the whole bug. Compare
        // `SerializableStore::commit`.
        let pending = self.running.finish(txn)?;
        self.committed.apply(&pending.appends);
        Ok(())
    }
}
