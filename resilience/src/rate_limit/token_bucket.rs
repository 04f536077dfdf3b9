//! The classic token bucket.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Limiter, Quota};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// `burst` tokens, one more every `period`; a call takes one.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    period: Duration,
    bucket: Mutex<Bucket>,
}

impl TokenBucket {
    pub fn new(quota: Quota) -> Self {
        Self {
            capacity: f64::from(quota.burst),
            period: quota.period,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(quota.burst),
                refilled: Instant::now(),
            }),
        }
    }

    pub fn check_at(&self, now: Instant) -> Result<(), Duration> {
        // The bucket is two numbers; a panic cannot leave them torn.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let dripped = now.saturating_duration_since(bucket.refilled).as_secs_f64()
            / self.period.as_secs_f64();
        bucket.tokens = (bucket.tokens + dripped).min(self.capacity);
        bucket.refilled = bucket.refilled.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.period.mul_f64(1.0 - bucket.tokens))
        }
    }
}

impl Limiter for TokenBucket {
    fn check(&self, _key: Option<&str>) -> Result<(), Duration> {
        self.check_at(Instant::now())
    }
}
