//! Compacting the embedded store's log: superseded snapshots dropped.
//!
//! Every saved snapshot is a full record (up to [`MAX_SNAPSHOT_BYTES`]),
//! and only the latest per stream is ever read. Once superseded snapshots
//! make up half of what the log holds, the writer rewrites it — every
//! event, in global order, then the latest snapshot of each stream — with
//! [`crate::log::DurableLog::rewrite`], which is atomic: a crash keeps the
//! old log or the new one. Halving the dead bytes before each rewrite
//! keeps its cost proportional to what was written since the last one.
//!
//! Replay needs nothing new: positions are the events' places in the log
//! and versions are checked per stream, and both survive regrouping the
//! events into new records.

use super::codec::Record;
use super::embedded::Index;
use super::{MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND, NewEvent, RecordedEvent};

#[cfg(doc)]
use super::MAX_SNAPSHOT_BYTES;

impl Index {
    /// Whether superseded snapshots are half of what the log holds.
    pub(super) fn worth_compacting(&self) -> bool {
        self.superseded > 0 && self.superseded.saturating_mul(2) >= self.bytes
    }

    /// The log without superseded snapshots: runs of one stream's events
    /// (each within one append's bounds), then the latest snapshots.
    pub(super) fn compacted(&self) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let mut run: Vec<&RecordedEvent> = Vec::new();
        let mut run_bytes = 0;
        for event in &self.events {
            let joins = run
                .first()
                .is_some_and(|first| first.stream == event.stream)
                && run.len() < MAX_EVENTS_PER_APPEND
                && run_bytes + event.payload.len() <= MAX_APPEND_BYTES;
            if !joins && !run.is_empty() {
                records.push(append_record(&run));
                run.clear();
                run_bytes = 0;
            }
            run_bytes += event.payload.len();
            run.push(event);
        }
        if !run.is_empty() {
            records.push(append_record(&run));
        }
        for (stream, snapshot) in &self.snapshots {
            let record = Record::Snapshot {
                stream: stream.clone(),
                snapshot: snapshot.clone(),
            };
            records.push(record.encode());
        }
        records
    }

    /// The log was rewritten: the superseded snapshots are gone from it.
    pub(super) fn compacted_done(&mut self) {
        self.bytes = self.bytes.saturating_sub(self.superseded);
        self.superseded = 0;
    }
}

fn append_record(run: &[&RecordedEvent]) -> Vec<u8> {
    let first = run[0];
    Record::Append {
        stream: first.stream.clone(),
        first_version: first.version,
        events: run
            .iter()
            .map(|event| NewEvent {
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
            })
            .collect(),
    }
    .encode()
}
