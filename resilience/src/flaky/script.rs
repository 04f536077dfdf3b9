//! The pure part of `Flaky`: what a given call should do.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use tonic::Code;

use super::gray::GrayFailure;
use super::proto::{self, Distribution};
use crate::error::{Result, invalid};

/// The longest latency or outage a script may ask for.
pub const MAX_SCRIPTED_DURATION: Duration = Duration::from_secs(3600);
/// Bounds on capacity, queue and the script's lists: every call copies
/// the script, so its size is bounded too.
pub const MAX_CAPACITY: u32 = 100_000;
pub const MAX_PER_CALL: usize = 10_000;
pub const MAX_ERROR_CODES: usize = 64;
pub const MAX_OUTAGES: usize = 1_000;

/// A validated script.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    pub error_rate: f64,
    pub error_codes: Vec<Code>,
    pub latency_base: Duration,
    pub latency_jitter: Duration,
    pub exponential: bool,
    /// `[start, end)` since the script was installed, and the code to fail with.
    pub outages: Vec<(Duration, Duration, Code)>,
    pub capacity: u32,
    pub queue: u32,
    pub per_call: Vec<Code>,
    pub seed: u64,
    /// Failures only some callers see (Episode 11).
    pub gray: Option<GrayFailure>,
}

/// What one call does: wait, then succeed or fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub outcome: Result<(), Code>,
    /// The failure came from the gray-failure script.
    pub gray: bool,
}

fn code(value: i32, field: &'static str) -> Result<Code> {
    match value {
        1..=16 => Ok(Code::from_i32(value)),
        _ => Err(invalid(
            "flaky",
            field,
            format!("{value} is not a gRPC error code (1..=16)"),
        )),
    }
}

impl Behaviour {
    /// A healthy backend: instant, never failing.
    pub fn healthy() -> Self {
        Self::from_script(&proto::Script::default()).expect("the empty script is valid")
    }

    /// Validates a script from the wire.
    pub fn from_script(script: &proto::Script) -> Result<Self> {
        if !(0.0..=1.0).contains(&script.error_rate) {
            return Err(invalid(
                "flaky",
                "error_rate",
                format!("must be in [0, 1], got {}", script.error_rate),
            ));
        }
        if script.error_codes.len() > MAX_ERROR_CODES || script.outages.len() > MAX_OUTAGES {
            return Err(invalid(
                "flaky",
                "error_codes",
                format!("at most {MAX_ERROR_CODES} codes and {MAX_OUTAGES} outages"),
            ));
        }
        let mut error_codes = script
            .error_codes
            .iter()
            .map(|&c| code(c, "error_codes"))
            .collect::<Result<Vec<_>>>()?;
        if error_codes.is_empty() {
            error_codes.push(Code::Unavailable);
        }
        let latency = script.latency.unwrap_or_default();
        let (base, jitter) = (
            Duration::from_micros(latency.base_micros),
            Duration::from_micros(latency.jitter_micros),
        );
        if base > MAX_SCRIPTED_DURATION || jitter > MAX_SCRIPTED_DURATION {
            return Err(invalid("flaky", "latency", "longer than an hour"));
        }
        let exponential = Distribution::try_from(latency.distribution).map_err(|_| {
            invalid(
                "flaky",
                "latency.distribution",
                format!("unknown value {}", latency.distribution),
            )
        })? == Distribution::Exponential;
        let outages = script
            .outages
            .iter()
            .map(|o| {
                let (start, end) = (
                    Duration::from_millis(o.start_millis),
                    Duration::from_millis(o.end_millis),
                );
                if start >= end {
                    return Err(invalid(
                        "flaky",
                        "outages",
                        "a window must start before it ends",
                    ));
                }
                if end > MAX_SCRIPTED_DURATION * 24 {
                    return Err(invalid(
                        "flaky",
                        "outages",
                        "window ends more than a day out",
                    ));
                }
                let failing = if o.code == 0 {
                    Code::Unavailable
                } else {
                    code(o.code, "outages.code")?
                };
                Ok((start, end, failing))
            })
            .collect::<Result<Vec<_>>>()?;
        if script.capacity > MAX_CAPACITY || script.queue > MAX_CAPACITY {
            return Err(invalid(
                "flaky",
                "capacity",
                format!("and queue must each be at most {MAX_CAPACITY}"),
            ));
        }
        if script.per_call.len() > MAX_PER_CALL {
            return Err(invalid(
                "flaky",
                "per_call",
                format!("at most {MAX_PER_CALL} entries"),
            ));
        }
        let per_call = script
            .per_call
            .iter()
            .map(|&c| {
                if c == 0 {
                    Ok(Code::Ok)
                } else {
                    code(c, "per_call")
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            error_rate: script.error_rate,
            error_codes,
            latency_base: base,
            latency_jitter: jitter,
            exponential,
            outages,
            capacity: script.capacity,
            queue: script.queue,
            per_call,
            seed: script.seed,
            gray: script
                .gray
                .as_ref()
                .map(GrayFailure::from_proto)
                .transpose()?,
        })
    }

    /// The script back in wire form.
    pub fn to_script(&self) -> proto::Script {
        proto::Script {
            error_rate: self.error_rate,
            error_codes: self.error_codes.iter().map(|&c| c as i32).collect(),
            latency: Some(proto::Latency {
                base_micros: self.latency_base.as_micros() as u64,
                jitter_micros: self.latency_jitter.as_micros() as u64,
                distribution: if self.exponential {
                    Distribution::Exponential
                } else {
                    Distribution::Uniform
                } as i32,
            }),
            outages: self
                .outages
                .iter()
                .map(|&(start, end, code)| proto::Outage {
                    start_millis: start.as_millis() as u64,
                    end_millis: end.as_millis() as u64,
                    code: code as i32,
                })
                .collect(),
            capacity: self.capacity,
            queue: self.queue,
            per_call: self.per_call.iter().map(|&c| c as i32).collect(),
            seed: self.seed,
            gray: self.gray.as_ref().map(GrayFailure::to_proto),
        }
    }

    /// Whether `since_install` falls in an outage window, and its code.
    pub fn outage_at(&self, since_install: Duration) -> Option<Code> {
        self.outages
            .iter()
            .find(|(start, end, _)| since_install >= *start && since_install < *end)
            .map(|o| o.2)
    }

    /// What call number `index`, arriving `since_install` after the script
    /// was installed, does.
    pub fn decide(&self, index: u64, since_install: Duration, rng: &mut SmallRng) -> Decision {
        self.decide_for(None, index, since_install, rng)
    }

    /// [`Self::decide`] for a call from `caller`: an outage hits everyone,
    /// then a gray failure hits the callers it names, then the per-call
    /// outcomes and the error rate apply to the rest.
    pub fn decide_for(
        &self,
        caller: Option<&str>,
        index: u64,
        since_install: Duration,
        rng: &mut SmallRng,
    ) -> Decision {
        if let Some(code) = self.outage_at(since_install) {
            // A backend that is down answers fast: connection refused, not
            // a hang. (Script a hang with latency instead.)
            return Decision {
                delay: Duration::ZERO,
                outcome: Err(code),
                gray: false,
            };
        }
        let delay = self.latency_base + self.draw_jitter(rng);
        if let (Some(gray), Some(caller)) = (&self.gray, caller)
            && gray.hits(caller)
            && (gray.error_rate >= 1.0 || rng.random_bool(gray.error_rate))
        {
            return Decision {
                delay,
                outcome: Err(gray.code),
                gray: true,
            };
        }
        let outcome = match self.per_call.get(index as usize) {
            Some(Code::Ok) => Ok(()),
            Some(&code) => Err(code),
            None if self.error_rate > 0.0 && rng.random_bool(self.error_rate) => {
                Err(self.error_codes[rng.random_range(0..self.error_codes.len())])
            }
            None => Ok(()),
        };
        Decision {
            delay,
            outcome,
            gray: false,
        }
    }

    fn draw_jitter(&self, rng: &mut SmallRng) -> Duration {
        let jitter = self.latency_jitter.as_secs_f64();
        if jitter == 0.0 {
            return Duration::ZERO;
        }
        let seconds = if self.exponential {
            // Inverse transform: -mean × ln(U), U in (0, 1].
            -jitter * (1.0 - rng.random::<f64>()).ln()
        } else {
            rng.random_range(0.0..=jitter)
        };
        Duration::from_secs_f64(seconds.min(MAX_SCRIPTED_DURATION.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn script() -> proto::Script {
        proto::Script {
            per_call: vec![0, 14, 0],
            outages: vec![proto::Outage {
                start_millis: 1000,
                end_millis: 2000,
                code: 0,
            }],
            latency: Some(proto::Latency {
                base_micros: 5000,
                jitter_micros: 0,
                distribution: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn flaky_script_plays_per_call_outcomes_then_outages() {
        let behaviour = Behaviour::from_script(&script()).expect("valid");
        let mut rng = SmallRng::seed_from_u64(1);
        let at = Duration::from_millis(10);
        let outcomes: Vec<_> = (0..4)
            .map(|i| behaviour.decide(i, at, &mut rng).outcome)
            .collect();
        assert_eq!(outcomes, [Ok(()), Err(Code::Unavailable), Ok(()), Ok(())]);
        assert_eq!(
            behaviour.decide(0, at, &mut rng).delay,
            Duration::from_millis(5)
        );
        let down = behaviour.decide(9, Duration::from_millis(1500), &mut rng);
        assert_eq!(
            down,
            Decision {
                delay: Duration::ZERO,
                outcome: Err(Code::Unavailable),
                gray: false,
            }
        );
        assert_eq!(
            Behaviour::from_script(&behaviour.to_script()).expect("round trip"),
            behaviour
        );
    }

    #[test]
    fn flaky_error_rate_is_honoured() {
        let behaviour = Behaviour::from_script(&proto::Script {
            error_rate: 0.3,
            error_codes: vec![13],
            ..Default::default()
        })
        .expect("valid");
        let mut rng = SmallRng::seed_from_u64(3);
        let failed = (0..10_000)
            .filter(|&i| {
                behaviour.decide(i, Duration::ZERO, &mut rng).outcome == Err(Code::Internal)
            })
            .count();
        assert!((2_800..3_200).contains(&failed), "{failed}");
    }

    #[test]
    fn flaky_rejects_invalid_scripts() {
        let bad = [
            proto::Script {
                error_rate: 1.5,
                ..Default::default()
            },
            proto::Script {
                error_rate: f64::NAN,
                ..Default::default()
            },
            proto::Script {
                error_codes: vec![0],
                ..Default::default()
            },
            proto::Script {
                error_codes: vec![17],
                ..Default::default()
            },
            proto::Script {
                per_call: vec![-1],
                ..Default::default()
            },
            proto::Script {
                outages: vec![proto::Outage {
                    start_millis: 5,
                    end_millis: 5,
                    code: 0,
                }],
                ..Default::default()
            },
            proto::Script {
                capacity: MAX_CAPACITY + 1,
                ..Default::default()
            },
            proto::Script {
                error_codes: vec![14; MAX_ERROR_CODES + 1],
                ..Default::default()
            },
            proto::Script {
                latency: Some(proto::Latency {
                    base_micros: u64::MAX,
                    jitter_micros: 0,
                    distribution: 0,
                }),
                ..Default::default()
            },
            proto::Script {
                latency: Some(proto::Latency {
                    base_micros: 0,
                    jitter_micros: 0,
                    distribution: 9,
                }),
                ..Default::default()
            },
        ];
        for script in bad {
            assert!(Behaviour::from_script(&script).is_err(), "{script:?}");
        }
    }
}
