//! A gray failure for Flaky: only some callers see it.
//!
//! Episode 11. Real gray failures pick their victims by something the
//! server does not think about — the network path, the client's zone, one
//! replica's bad disk — and the health check, which asks about the
//! server as a whole, is never among them. Here the victims are chosen by
//! the caller's name: listed, or a stable share of all names by hash. The
//! health service is untouched and keeps answering SERVING.

use std::collections::BTreeSet;

use tonic::Code;

use super::proto;
use crate::error::{Result, invalid};

/// The request header that names a caller; without it, its IP address does.
pub const CALLER_HEADER: &str = "dslab-caller";
/// Bounds on the list of callers a script names.
pub const MAX_GRAY_CALLERS: usize = 1_024;
pub const MAX_CALLER_BYTES: usize = 128;

/// A validated gray-failure script.
#[derive(Clone, Debug, PartialEq)]
pub struct GrayFailure {
    pub callers: BTreeSet<String>,
    pub caller_fraction: f64,
    pub error_rate: f64,
    pub code: Code,
}

/// Where a caller's name falls in [0, 1), the same in every process and
/// run: FNV-1a, then MurmurHash3's finalizer so that names differing in
/// their last character spread over the whole range. (std's hasher is
/// seeded per process: a caller would land in and out of the failing
/// share from one restart to the next.)
pub fn caller_position(caller: &str) -> f64 {
    let mut hash = caller
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    for multiplier in [0xff51_afd7_ed55_8ccd_u64, 0xc4ce_b9fe_1a85_ec53] {
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(multiplier);
    }
    hash ^= hash >> 33;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

impl GrayFailure {
    /// Validates the wire form.
    pub fn from_proto(gray: &proto::GrayFailure) -> Result<Self> {
        for (field, value) in [
            ("gray.caller_fraction", gray.caller_fraction),
            ("gray.error_rate", gray.error_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    "flaky",
                    field,
                    format!("must be in [0, 1], got {value}"),
                ));
            }
        }
        if gray.callers.len() > MAX_GRAY_CALLERS {
            return Err(invalid(
                "flaky",
                "gray.callers",
                format!("at most {MAX_GRAY_CALLERS} names"),
            ));
        }
        if let Some(name) = gray
            .callers
            .iter()
            .find(|c| c.is_empty() || c.len() > MAX_CALLER_BYTES)
        {
            return Err(invalid(
                "flaky",
                "gray.callers",
                format!(
                    "names must be 1 to {MAX_CALLER_BYTES} bytes, got {}",
                    name.len()
                ),
            ));
        }
        if gray.callers.is_empty() && gray.caller_fraction == 0.0 {
            return Err(invalid(
                "flaky",
                "gray",
                "hits nobody: name callers or set a caller_fraction",
            ));
        }
        let code = match gray.code {
            0 => Code::Unavailable,
            1..=16 => Code::from_i32(gray.code),
            other => {
                return Err(invalid(
                    "flaky",
                    "gray.code",
                    format!("{other} is not a gRPC error code (1..=16)"),
                ));
            }
        };
        Ok(Self {
            callers: gray.callers.iter().cloned().collect(),
            caller_fraction: gray.caller_fraction,
            error_rate: if gray.error_rate == 0.0 {
                1.0
            } else {
                gray.error_rate
            },
            code,
        })
    }

    /// The script back in wire form.
    pub fn to_proto(&self) -> proto::GrayFailure {
        proto::GrayFailure {
            callers: self.callers.iter().cloned().collect(),
            caller_fraction: self.caller_fraction,
            error_rate: self.error_rate,
            code: self.code as i32,
        }
    }

    /// Whether calls from `caller` are hit.
    pub fn hits(&self, caller: &str) -> bool {
        self.callers.contains(caller) || caller_position(caller) < self.caller_fraction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaky_gray_hits_the_named_callers_and_a_stable_share() {
        let named = GrayFailure::from_proto(&proto::GrayFailure {
            callers: vec!["caller-03".into()],
            ..Default::default()
        })
        .expect("valid");
        assert!(named.hits("caller-03") && !named.hits("caller-04"));
        assert_eq!((named.error_rate, named.code), (1.0, Code::Unavailable));
        assert_eq!(GrayFailure::from_proto(&named.to_proto()), Ok(named));

        let tenth = GrayFailure::from_proto(&proto::GrayFailure {
            caller_fraction: 0.1,
            error_rate: 0.5,
            code: 13,
            ..Default::default()
        })
        .expect("valid");
        let hit = (0..10_000)
            .filter(|i| tenth.hits(&format!("client-{i}")))
            .count();
        assert!((900..1_100).contains(&hit), "{hit} of 10000");
        assert_eq!(caller_position("client-7"), caller_position("client-7"));
    }

    #[test]
    fn flaky_gray_rejects_invalid_scripts() {
        let bad = [
            proto::GrayFailure::default(),
            proto::GrayFailure {
                caller_fraction: 1.5,
                ..Default::default()
            },
            proto::GrayFailure {
                caller_fraction: f64::NAN,
                ..Default::default()
            },
            proto::GrayFailure {
                callers: vec!["a".into()],
                error_rate: -0.1,
                ..Default::default()
            },
            proto::GrayFailure {
                callers: vec!["a".into()],
                code: 17,
                ..Default::default()
            },
            proto::GrayFailure {
                callers: vec![String::new()],
                ..Default::default()
            },
            proto::GrayFailure {
                callers: vec!["x".repeat(MAX_CALLER_BYTES + 1)],
                ..Default::default()
            },
            proto::GrayFailure {
                callers: vec!["a".into(); MAX_GRAY_CALLERS + 1],
                ..Default::default()
            },
        ];
        for gray in bad {
            assert!(GrayFailure::from_proto(&gray).is_err(), "{gray:?}");
        }
    }
}
