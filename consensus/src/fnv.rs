//! FNV-1a (64-bit): a hash that is the same in every process and every
//! release, for ids and digests that replicas and restarts must agree on
//! (std's hasher is seeded per process on purpose; these must not be).

/// An FNV-1a hash being computed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn mix(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}
