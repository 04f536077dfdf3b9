//! Lamport's logical clock (1978): one counter per process.
//!
//! The rule is two lines. Tick before every local event and send; on
//! receipt, jump past the sender's time. Then `a → b` (a happened before
//! b) implies `L(a) < L(b)`. The converse does not hold: `L(a) < L(b)`
//! says nothing when a and b are concurrent, which is why
//! [`super::vector`] exists.

use serde::{Deserialize, Serialize};

/// A Lamport clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The time of the last event this process saw.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// A local event (including a send): its timestamp.
    pub fn tick(&mut self) -> u64 {
        // Pitfall: a counter that wraps would order a late event first.
        // 2^64 events is unreachable; saturating at least never goes back.
        self.time = self.time.saturating_add(1);
        self.time
    }

    /// Receiving a message stamped `remote`: the receive event's timestamp,
    /// later than both the sender's send and everything seen here.
    pub fn receive(&mut self, remote: u64) -> u64 {
        self.time = self.time.max(remote);
        self.tick()
    }
}
