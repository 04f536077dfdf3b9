//! Snapshots of the state machine, taken and installed by the Ready loop.
//!
//! A snapshot folds the log into the state it produced, so the log can be
//! cut behind it: the log stays short, and a follower too far behind
//! catches up from the snapshot instead of replaying entries the leader no
//! longer has. Taking one copies the state (a memory copy) on the loop and
//! encodes and writes it off the loop; installing one from the leader
//! replaces the log and the state before anything else in that Ready.

use super::*;

impl Loop {
    pub(super) fn install_snapshot(&mut self, snapshot: raft::eraftpb::Snapshot) -> Result<()> {
        let index = snapshot.get_metadata().index;
        let state = StateMachine::decode(&snapshot.data, index)?;
        self.raw.mut_store().install_snapshot(&snapshot)?;
        self.cluster_id.store(state.cluster_id, Ordering::Release);
        *lock(&self.state) = state;
        self.snapshot_index = index;
        self.sync_peers();
        tracing::info!(
            node = self.id,
            index,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    /// Snapshots the state machine every so many entries (or log
    /// megabytes), so the log — and the memory holding it — stays short;
    /// and when a follower needs a newer snapshot than the latest.
    ///
    /// Encoding a large store and writing it take a while, and every
    /// request waits for this loop: the loop only copies the state (a
    /// memory copy); the blocking pool encodes it and writes its file
    /// ([`observability::offload`]; inline in a simulation); the loop then
    /// records it in the log's metadata.
    pub(super) fn maybe_snapshot(&mut self) -> Result<()> {
        if self.encoding {
            return Ok(());
        }
        let applied = read(&self.state).applied;
        let requested = self.raw.store().take_snapshot_request();
        let due = applied >= self.snapshot_index + self.settings.snapshot_entries
            || ((requested || self.raw.store().log_bytes() > self.settings.max_log_bytes)
                && applied > self.snapshot_index);
        if !due {
            return Ok(());
        }
        let state = read(&self.state).clone();
        let mut meta = raft::eraftpb::SnapshotMetadata {
            index: state.applied,
            term: self.raw.raft.raft_log.term(state.applied).unwrap_or(0),
            ..Default::default()
        };
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        self.encoding = true;
        let events = self.own_events.clone();
        let files = self.raw.store().snapshot_files();
        let node = self.id;
        tokio::spawn(async move {
            let encoded = observability::offload::cpu(move || {
                let data = state.encode();
                // The file too, if the disk keeps files; if this fails the
                // loop writes it when it records the snapshot.
                if let Some(files) = files
                    && let Err(err) = files.write(&meta, &data)
                {
                    tracing::warn!(node, %err, "writing a snapshot file off the loop");
                }
                (meta, data)
            });
            // Whatever happens, the loop hears back: a snapshot that never
            // reported would stop all later ones.
            let encoded = std::panic::AssertUnwindSafe(encoded).catch_unwind().await;
            let encoded = match encoded {
                Ok(Ok(snapshot)) => Some(snapshot),
                _ => None,
            };
            let _ = events.send(Event::SnapshotEncoded(encoded)).await;
        });
        Ok(())
    }

    /// Writes an encoded snapshot and cuts the log behind it.
    pub(super) fn record_snapshot(
        &mut self,
        meta: raft::eraftpb::SnapshotMetadata,
        data: Vec<u8>,
    ) -> Result<()> {
        self.encoding = false;
        let index = meta.index;
        // A snapshot from the leader may have overtaken this one.
        if index <= self.snapshot_index {
            return Ok(());
        }
        let started = Instant::now();
        let keep = self.settings.keep_entries;
        self.raw.mut_store().record_snapshot(meta, data, keep)?;
        self.snapshot_index = index;
        let took = started.elapsed();
        tracing::debug!(
            node = self.id,
            index,
            ?took,
            "snapshot written; log truncated"
        );
        if took > SLOW_STEP {
            tracing::warn!(
                node = self.id,
                index,
                ?took,
                "writing a snapshot held up the Raft loop"
            );
        }
        Ok(())
    }
}
