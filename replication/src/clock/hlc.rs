//! Hybrid logical clocks (Kulkarni, Demirbas et al., 2014).
//!
//! A timestamp is `(wall_ns, logical)`: the largest physical time this
//! node has heard of, and a counter that orders events sharing it. The
//! two rules mirror Lamport's. A local event takes `max(last, physical
//! now)`, bumping the counter if physical time has not moved past it; a
//! receive takes the max of its own, the message's and physical time.
//! So `a → b` implies `hlc(a) < hlc(b)` — causality, like a Lamport
//! clock — while `wall_ns` never strays from physical time by more than
//! the real clocks disagree: timestamps stay meaningful to humans and
//! usable for "read as of 10:00" snapshots (CockroachDB, YugabyteDB,
//! MongoDB).
//!
//! Pitfall: one node with a clock an hour fast would, through the
//! receive rule, drag every clock in the cluster an hour ahead — forever.
//! So a remote timestamp more than `max_offset` ahead of local physical
//! time is refused ([`Error::ClockTooFarAhead`]); CockroachDB does the
//! same (and shuts the node whose own clock is off).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::physical::PhysicalClock;
use crate::{Error, Result};

/// A hybrid timestamp; ordered by wall time, then by the counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HlcTimestamp {
    pub wall_ns: u64,
    pub logical: u32,
}

/// A hybrid logical clock over an injected physical clock.
#[derive(Debug)]
pub struct HybridClock<C> {
    physical: C,
    max_offset: Duration,
    last: HlcTimestamp,
}

impl<C: PhysicalClock> HybridClock<C> {
    /// A clock that refuses remote timestamps more than `max_offset`
    /// ahead of its physical clock.
    pub fn new(physical: C, max_offset: Duration) -> Self {
        Self {
            physical,
            max_offset,
            last: HlcTimestamp::default(),
        }
    }

    /// The last timestamp issued or received.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// The physical clock underneath.
    pub fn physical(&self) -> &C {
        &self.physical
    }

    /// A timestamp for a local event or a send.
    pub fn now(&mut self) -> Result<HlcTimestamp> {
        let physical_ns = self.physical.now_ns();
        self.last = if physical_ns > self.last.wall_ns {
            HlcTimestamp {
                wall_ns: physical_ns,
                logical: 0,
            }
        } else {
            self.bumped(self.last)?
        };
        Ok(self.last)
    }

    /// Receiving a message stamped `remote`: a timestamp after both the
    /// send and everything seen here — unless `remote` is too far ahead.
    pub fn update(&mut self, remote: HlcTimestamp) -> Result<HlcTimestamp> {
        let physical_ns = self.check(remote)?;
        let wall_ns = physical_ns.max(self.last.wall_ns).max(remote.wall_ns);
        self.last = if wall_ns == physical_ns
            && physical_ns > self.last.wall_ns
            && physical_ns > remote.wall_ns
        {
            HlcTimestamp {
                wall_ns,
                logical: 0,
            }
        } else {
            // The largest of the timestamps sharing `wall_ns`, plus one.
            let logical = [self.last, remote]
                .iter()
                .filter(|stamp| stamp.wall_ns == wall_ns)
                .map(|stamp| stamp.logical)
                .max()
                .unwrap_or(0);
            self.bumped(HlcTimestamp { wall_ns, logical })?
        };
        Ok(self.last)
    }

    /// Refuses `remote` if it is more than the maximum offset ahead of
    /// physical time, changing nothing; returns the physical reading.
    pub fn check(&self, remote: HlcTimestamp) -> Result<u64> {
        let physical_ns = self.physical.now_ns();
        let ahead_ns = remote.wall_ns.saturating_sub(physical_ns);
        let max_offset_ns = u64::try_from(self.max_offset.as_nanos()).unwrap_or(u64::MAX);
        if ahead_ns > max_offset_ns {
            return Err(Error::ClockTooFarAhead {
                ahead: Duration::from_nanos(ahead_ns),
                max_offset: self.max_offset,
            });
        }
        Ok(physical_ns)
    }

    /// `stamp` with its counter advanced by one.
    fn bumped(&self, stamp: HlcTimestamp) -> Result<HlcTimestamp> {
        // Pitfall: the counter grows only while physical time stands
        // still relative to `wall_ns`; four billion events inside one
        // nanosecond tick means a stuck clock, reported rather than wrapped.
        let logical = stamp
            .logical
            .checked_add(1)
            .ok_or(Error::LogicalClockExhausted {
                wall_ns: stamp.wall_ns,
            })?;
        Ok(HlcTimestamp {
            wall_ns: stamp.wall_ns,
            logical,
        })
    }
}
