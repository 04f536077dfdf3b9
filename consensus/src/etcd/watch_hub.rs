//! Which watch streams a new revision concerns.
//!
//! A stream that woke on every applied entry to find nothing for its
//! watchers would cost every write a task wake-up per open stream:
//! thousands of idle watches would slow the cluster down. One task per
//! member (the hub) reads each new revision's changes once from the recent
//! window and wakes only the streams with a watcher whose range holds a
//! changed key — the job etcd's interval tree of watchers does.
//!
//! Bounds: one registration per stream (at most `MAX_WATCH_STREAMS`);
//! when a round would read more than [`MAX_CHANGES_PER_ROUND`] changes,
//! or the window no longer holds them, every stream is woken instead and
//! finds its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::mvcc::changes::in_range;
use crate::raft::RaftNode;

/// The most changes the hub reads in one round.
pub const MAX_CHANGES_PER_ROUND: usize = 10_000;

/// One stream's key ranges, and how to wake it.
#[derive(Debug)]
struct Entry {
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Registry {
    streams: HashMap<u64, Entry>,
    next_id: u64,
}

/// The member's hub. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct WatchHub {
    registry: Arc<Mutex<Registry>>,
}

/// A stream's place in the hub; leaving it unregisters the stream.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    hub: WatchHub,
    pub wake: Arc<Notify>,
}

impl Registration {
    /// The ranges this stream's watchers cover now.
    pub fn set_ranges(&self, ranges: Vec<(Vec<u8>, Vec<u8>)>) {
        if let Some(entry) = self.hub.registry().streams.get_mut(&self.id) {
            entry.ranges = ranges;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.registry().streams.remove(&self.id);
    }
}

impl WatchHub {
    /// The hub of `node`, its task running until the node stops.
    pub fn start(node: RaftNode) -> Self {
        let hub = Self {
            registry: Arc::default(),
        };
        tokio::spawn(hub.clone().run(node));
        hub
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn register(&self) -> Registration {
        let wake = Arc::new(Notify::new());
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.streams.insert(
            id,
            Entry {
                ranges: Vec::new(),
                wake: wake.clone(),
            },
        );
        Registration {
            id,
            hub: self.clone(),
            wake,
        }
    }

    fn wake_all(&self) {
        for entry in self.registry().streams.values() {
            entry.wake.notify_one();
        }
    }

    async fn run(self, node: RaftNode) {
        let mut status = node.watch_status();
        let mut seen = status.borrow().revision;
        loop {
            if status.changed().await.is_err() || status.borrow().stopped {
                // Every stream learns it from its own look at the node.
                self.wake_all();
                return;
            }
            let revision = status.borrow().revision;
            if revision <= seen {
                continue;
            }
            let changed: Option<Vec<Vec<u8>>> = node.read_state(|state| {
                if seen + 1 < state.mvcc.window_starts_at() {
                    return None;
                }
                let changes = state.mvcc.changes_since(
                    &[0],
                    &[0],
                    (seen + 1, 0),
                    MAX_CHANGES_PER_ROUND,
                    false,
                );
                (changes.len() < MAX_CHANGES_PER_ROUND)
                    .then(|| changes.into_iter().map(|c| c.key).collect())
            });
            seen = revision;
            let Some(keys) = changed else {
                self.wake_all();
                continue;
            };
            for entry in self.registry().streams.values() {
                let concerned = entry
                    .ranges
                    .iter()
                    .any(|(start, end)| keys.iter().any(|key| in_range(key, start, end)));
                if concerned {
                    entry.wake.notify_one();
                }
            }
        }
    }
}
