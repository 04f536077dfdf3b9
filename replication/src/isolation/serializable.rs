//! The correct store: optimistic concurrency control with backward
//! validation, which makes every history serializable.

use super::core::{Abort, Committed, Key, Running, TransactionalStore, TxnHandle};

/// Reads the latest committed data and remembers when each key it read
/// was last written; commit succeeds only if none of them changed since.
#[derive(Debug, Default)]
pub struct SerializableStore {
    committed: Committed,
    running: Running,
}

impl SerializableStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl TransactionalStore for SerializableStore {
    fn begin(&mut self) -> TxnHandle {
        self.running.begin(self.committed.clock)
    }

    fn read(&mut self, txn: TxnHandle, key: Key) -> Result<Vec<i64>, Abort> {
        let written = self.committed.written_at(key);
        let latest = self.committed.latest(key);
        let pending = self.running.get(txn)?;
        pending.reads.push((key, written));
        Ok(pending.with_own(key, latest))
    }

    fn append(&mut self, txn: TxnHandle, key: Key, element: i64) -> Result<(), Abort> {
        self.running.get(txn)?.appends.push((key, element));
        Ok(())
    }

    fn commit(&mut self, txn: TxnHandle) -> Result<(), Abort> {
        let pending = self.running.finish(txn)?;
        // Pitfall: validating only the keys a transaction *writes* is
        // snapshot isolation's first-committer-wins, and lets write skew
        // through. Serializability needs the *read* set validated: if
        // every read is still current, the whole transaction could have
        // run at this one instant.
        for (key, seen) in &pending.reads {
            if self.committed.written_at(*key) != *seen {
                return Err(Abort::Conflict {
                    key: *key,
                    reason: "read it",
                });
            }
        }
        self.committed.apply(&pending.appends);
        Ok(())
    }
}
