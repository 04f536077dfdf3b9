//! Snapshot isolation: the twin that shows write skew (G2-item).

use super::core::{Abort, Committed, Key, Running, TransactionalStore, TxnHandle};

/// Reads from the snapshot taken at begin; at commit, aborts only when a
/// key this transaction *writes* was committed by someone else after the
/// snapshot (first committer wins). Not broken — it is what many
/// databases call "serializable" — but write skew passes: two
/// transactions that read x and y and each append to a different one
/// both commit.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    committed: Committed,
    running: Running,
}

impl SnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl TransactionalStore for SnapshotStore {
    fn begin(&mut self) -> TxnHandle {
        self.running.begin(self.committed.clock)
    }

    fn read(&mut self, txn: TxnHandle, key: Key) -> Result<Vec<i64>, Abort> {
        let pending = self.running.get(txn)?;
        let snapshot = self.committed.at(key, pending.start);
        Ok(pending.with_own(key, snapshot))
    }

    fn append(&mut self, txn: TxnHandle, key: Key, element: i64) -> Result<(), Abort> {
        self.running.get(txn)?.appends.push((key, element));
        Ok(())
    }

    fn commit(&mut self, txn: TxnHandle) -> Result<(), Abort> {
        let pending = self.running.finish(txn)?;
        // First committer wins: this is what rules out lost updates.
        // Try: delete this loop and the SI tests start finding
        // `lost-update` too.
        for (key, _) in &pending.appends {
            if self.committed.written_at(*key) > pending.start {
                return Err(Abort::Conflict {
                    key: *key,
                    reason: "took its snapshot",
                });
            }
        }
        self.committed.apply(&pending.appends);
        Ok(())
    }
}
