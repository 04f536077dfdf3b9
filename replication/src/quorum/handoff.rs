//! The handoff loop: a stand-in offers the writes it holds as hints to
//! their owners until they take them (see [`super::hints`]).

use std::sync::Weak;

use super::MAX_BATCH_KEYS;
use super::node::Inner;

/// Offers every pending hint to its owner, in batches, until the node is
/// dropped. A hint is removed only when the owner took the state it had
/// when sent (see `Hints::delivered`).
pub(super) async fn handoff_loop(node: Weak<Inner>) {
    let interval = match node.upgrade() {
        Some(inner) => inner.config.handoff_interval,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = node.upgrade() else {
            return;
        };
        let batches = inner.store.lock().hints.batches(MAX_BATCH_KEYS);
        for (owner, hinted) in batches {
            let request = inner.replicate_request(hinted.iter().map(|(key, _)| key.as_str()));
            let sent = inner.send_replicate(owner, request).await;
            if sent.is_ok() {
                inner.store.lock().hints.delivered(owner, &hinted);
            }
        }
    }
}
