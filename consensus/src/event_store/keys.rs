//! Where events live in the key space.
//!
//! ```text
//! {prefix}s/{stream}/{version:020}   one event: a StoredEvent
//! {prefix}snap/{stream}              the stream's latest snapshot
//! ```
//!
//! Stream names never contain `/` ([`StreamName`] refuses it): otherwise
//! the range of stream `a` (`…s/a/`) would also hold every event of a
//! stream called `a/b`. Versions are zero-padded so that key order is
//! version order, which is what lets a single Range with a descending key
//! sort and a limit of one find a stream's head.

use replication::event_sourcing::{StreamName, Version};

/// The key prefix every event store key starts with, unless configured.
pub const DEFAULT_PREFIX: &str = "/dslab/events/";

/// Digits of a version in a key: enough for every `u64`.
const VERSION_DIGITS: usize = 20;

/// The key layout under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: Vec<u8>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Layout {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    /// The prefix of every event key (of every stream).
    pub fn events(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(b"s/");
        key
    }

    /// The prefix of the keys of `stream`'s events.
    pub fn stream(&self, stream: &StreamName) -> Vec<u8> {
        let mut key = self.events();
        key.extend_from_slice(stream.as_str().as_bytes());
        key.push(b'/');
        key
    }

    /// The key of `stream`'s event at `version` (1 for the first).
    pub fn event(&self, stream: &StreamName, version: Version) -> Vec<u8> {
        let mut key = self.stream(stream);
        key.extend_from_slice(format!("{:0VERSION_DIGITS$}", version.0).as_bytes());
        key
    }

    /// The key of `stream`'s snapshot.
    pub fn snapshot(&self, stream: &StreamName) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(b"snap/");
        key.extend_from_slice(stream.as_str().as_bytes());
        key
    }

    /// The stream and version an event key names; `None` for any other key.
    pub fn parse_event(&self, key: &[u8]) -> Option<(StreamName, Version)> {
        let rest = key.strip_prefix(self.events().as_slice())?;
        let slash = rest.iter().rposition(|&b| b == b'/')?;
        let (stream, version) = (&rest[..slash], &rest[slash + 1..]);
        if version.len() != VERSION_DIGITS {
            return None;
        }
        let version = std::str::from_utf8(version).ok()?.parse().ok()?;
        let stream = StreamName::new(std::str::from_utf8(stream).ok()?).ok()?;
        Some((stream, Version(version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> StreamName {
        StreamName::new(text).expect("a valid name")
    }

    #[test]
    fn event_store_keys_round_trip_in_version_order() {
        let layout = Layout::default();
        for stream in ["account-42", "a", "a.b:c@d_e"] {
            let key = layout.event(&name(stream), Version(7));
            assert_eq!(layout.parse_event(&key), Some((name(stream), Version(7))));
        }
        // Stream `a`'s range holds none of stream `ab`'s keys.
        assert!(
            !layout
                .event(&name("ab"), Version(1))
                .starts_with(&layout.stream(&name("a")))
        );
        // Key order is version order.
        assert!(layout.event(&name("s"), Version(9)) < layout.event(&name("s"), Version(10)));
        assert_eq!(layout.parse_event(&layout.snapshot(&name("s"))), None);
    }
}
