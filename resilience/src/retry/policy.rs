//! What a retry layer retries: attempts, backoff, codes, methods, budget.

use std::time::Duration;

use rand::Rng;
use tonic::Code;

use super::backoff::{Backoff, Jitter};
use super::budget::RetryBudget;
use crate::error::{Result, invalid};

/// The most attempts (first call included) a policy may allow.
pub const MAX_ATTEMPTS: u32 = 10;
/// The largest request a retry layer will buffer for replay.
pub const MAX_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Which methods are safe to send twice.
///
/// Pitfall: a retried `Transfer` whose first attempt did reach the server
/// (and only its response was lost) moves the money twice. Only methods
/// whose repetition is harmless — reads, puts of a whole value, calls
/// carrying an idempotency key — may be retried after a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Every method is idempotent (a read-only service).
    AllMethods,
    /// Only these full method paths, e.g. `/resilience.v1.Flaky/Call`.
    Methods(Vec<String>),
}

impl Idempotency {
    pub fn allows(&self, path: &str) -> bool {
        match self {
            Idempotency::AllMethods => true,
            Idempotency::Methods(paths) => paths.iter().any(|p| p == path),
        }
    }
}

/// A retry budget's parameters (see [`super::budget`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    pub max_tokens: f64,
    pub token_ratio: f64,
}

/// The full retry policy.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts including the first, 1..=10.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Codes worth retrying. `Unavailable` means the call almost certainly
    /// did not run; anything else deserves thought before adding it.
    pub retryable_codes: Vec<Code>,
    pub idempotency: Idempotency,
    /// `None` is the broken twin: retries without any cap on their share.
    pub budget: Option<BudgetConfig>,
    /// Requests larger than this are sent once, never buffered for replay.
    pub buffer_limit: usize,
    /// Seeds the jitter, so a simulation replays exactly.
    pub seed: u64,
}

impl RetryPolicy {
    /// Three attempts, 50 ms doubling with full jitter, `Unavailable`
    /// only, and gRPC's suggested budget (10 tokens, ratio 0.1).
    pub fn new(idempotency: Idempotency) -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::new(),
            retryable_codes: vec![Code::Unavailable],
            idempotency,
            budget: Some(BudgetConfig {
                max_tokens: 10.0,
                token_ratio: 0.1,
            }),
            buffer_limit: 64 * 1024,
            seed: 0,
        }
    }

    /// The broken twin: no jitter, no budget, every method retried. Each
    /// client's retries are well spaced; together they arrive in waves.
    pub fn naive(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            backoff: Backoff {
                jitter: Jitter::None,
                ..Backoff::new()
            },
            budget: None,
            ..Self::new(Idempotency::AllMethods)
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(invalid(
                "retry",
                "max_attempts",
                format!("must be in 1..=10, got {}", self.max_attempts),
            ));
        }
        self.backoff.validate()?;
        if self.retryable_codes.contains(&Code::Ok) {
            return Err(invalid("retry", "retryable_codes", "cannot contain OK"));
        }
        if self.buffer_limit > MAX_BUFFER_BYTES {
            return Err(invalid(
                "retry",
                "buffer_limit",
                format!("must be at most {MAX_BUFFER_BYTES} bytes"),
            ));
        }
        if let Some(budget) = self.budget {
            super::budget::RetryBudget::new(budget.max_tokens, budget.token_ratio)?;
        }
        Ok(())
    }

    pub fn is_retryable(&self, code: Code) -> bool {
        self.retryable_codes.contains(&code)
    }
}

/// What to do after an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// The call is finished (succeeded, or failed in a way not worth retrying).
    Finish,
    /// Send attempt number `attempt + 1` after this delay.
    RetryAfter(Duration),
    /// A retry was warranted but is not allowed.
    GiveUp(GiveUpReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    AttemptsExhausted,
    BudgetDrained,
    DeadlineTooClose,
    /// The server said not to retry (a negative or unreadable
    /// `grpc-retry-pushback-ms`).
    ServerPushback,
}

/// What a server said about retrying, in `grpc-retry-pushback-ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// Retry after exactly this long, in place of the backoff.
    After(Duration),
    /// Do not retry.
    Stop,
}

/// The header a server uses to tell clients when to retry (gRFC A6).
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

impl Pushback {
    /// Reads `grpc-retry-pushback-ms`: a non-negative integer of
    /// milliseconds is a delay; anything else present means stop.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let raw = headers.get(RETRY_PUSHBACK)?;
        Some(
            raw.to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(Pushback::Stop, |millis| {
                    Pushback::After(Duration::from_millis(millis))
                }),
        )
    }
}

impl RetryPolicy {
    /// Records a call's final status in the budget, as gRFC A6 counts:
    /// a success earns tokens back, a retryable failure costs one, and
    /// anything else (a caller's mistake) counts for nothing.
    pub fn account(&self, code: Code, budget: Option<&RetryBudget>) {
        if code == Code::Ok {
            budget.inspect(|b| b.on_success());
        } else if self.is_retryable(code) {
            budget.inspect(|b| b.on_failure());
        }
    }

    /// The one retry decision, shared by the tower layer and the storm
    /// simulation: records the outcome in the budget, then decides.
    /// `attempt` is 1 for the first; `remaining` is the time left before
    /// the call's deadline, if it has one; `pushback` is what the server
    /// said, if anything.
    #[allow(clippy::too_many_arguments)]
    pub fn next_step(
        &self,
        code: Code,
        attempt: u32,
        previous_delay: Duration,
        budget: Option<&RetryBudget>,
        remaining: Option<Duration>,
        pushback: Option<Pushback>,
        rng: &mut impl Rng,
    ) -> NextStep {
        self.account(code, budget);
        if !self.is_retryable(code) {
            return NextStep::Finish;
        }
        if attempt >= self.max_attempts {
            return NextStep::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        if budget.is_some_and(|b| !b.allows_retry()) {
            return NextStep::GiveUp(GiveUpReason::BudgetDrained);
        }
        // The server knows its own recovery better than any backoff curve —
        // within reason: a pushback longer than the policy's longest
        // backoff means "not now", and the call gives up rather than
        // sleep for whatever a server wrote.
        let delay = match pushback {
            Some(Pushback::Stop) => return NextStep::GiveUp(GiveUpReason::ServerPushback),
            Some(Pushback::After(delay)) if delay > self.backoff.max => {
                return NextStep::GiveUp(GiveUpReason::ServerPushback);
            }
            Some(Pushback::After(delay)) => delay,
            None => self.backoff.delay(attempt, previous_delay, rng),
        };
        if remaining.is_some_and(|left| delay >= left) {
            return NextStep::GiveUp(GiveUpReason::DeadlineTooClose);
        }
        NextStep::RetryAfter(delay)
    }
}
