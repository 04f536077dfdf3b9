//! Deadlines that travel with a call (`grpc-timeout`) and follow it across hops.
//!
//! A client sends how long it is still willing to wait; the server turns
//! that into an absolute deadline on its own clock and keeps it in a task
//! local while the handler runs. Any call the handler makes through the
//! stack then carries the *remaining* time, never a fresh default: a chain
//! of hops cannot outlive the caller who started it.
//!
//! Pitfall: propagating the original timeout instead of the remainder lets
//! every hop wait the full budget again, so a three-hop chain can run three
//! times longer than its caller waits — work nobody will read.

use std::future::Future;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

/// The gRPC header that carries a call's timeout.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline of the request being handled on this task, if it set one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Time left before the current request's deadline (zero once it passed).
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `future` with `deadline` as the current deadline, so outgoing calls
/// made inside it inherit the remaining time.
pub async fn scope<F: Future>(deadline: Option<Instant>, future: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, future).await,
        None => future.await,
    }
}

/// Parses a `grpc-timeout` header: up to 8 digits and a unit
/// (`H`ours, `M`inutes, `S`econds, `m`illis, `u`micros, `n`anos).
/// Absent or malformed headers give `None`.
pub fn parse(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.checked_mul(3600)?),
        "M" => Duration::from_secs(value.checked_mul(60)?),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// Encodes `timeout` in the finest unit that fits gRPC's 8 digits,
/// rounding up so a server never sees less time than the client has left.
pub fn encode(timeout: Duration) -> HeaderValue {
    const MAX_DIGITS: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(per_unit, unit)| (nanos.div_ceil(per_unit), unit))
        .find(|&(value, _)| value <= MAX_DIGITS)
        .unwrap_or((MAX_DIGITS, 'H'));
    HeaderValue::from_str(&format!("{value}{unit}"))
        .expect("digits and a letter are valid header text")
}

/// Writes `timeout` into `headers` as the call's `grpc-timeout`.
pub fn set(headers: &mut HeaderMap, timeout: Duration) {
    headers.insert(GRPC_TIMEOUT, encode(timeout));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, value.parse().expect("ascii"));
        headers
    }

    #[test]
    fn deadline_header_parses_every_unit() {
        assert_eq!(parse(&header("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(parse(&header("3M")), Some(Duration::from_secs(180)));
        assert_eq!(parse(&header("5S")), Some(Duration::from_secs(5)));
        assert_eq!(parse(&header("250m")), Some(Duration::from_millis(250)));
        assert_eq!(parse(&header("7u")), Some(Duration::from_micros(7)));
        assert_eq!(parse(&header("9n")), Some(Duration::from_nanos(9)));
    }

    #[test]
    fn deadline_header_rejects_malformed_values() {
        for bad in ["", "m", "12", "1x", "-1S", "123456789S", "1.5S", " 1S"] {
            assert_eq!(parse(&header(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn deadline_encoding_rounds_up_and_round_trips() {
        for timeout in [
            Duration::from_nanos(1),
            Duration::from_millis(250),
            Duration::from_secs(3) + Duration::from_nanos(1),
            Duration::from_secs(86_400 * 365),
        ] {
            let mut headers = HeaderMap::new();
            set(&mut headers, timeout);
            let parsed = parse(&headers).expect("encoded value parses");
            assert!(parsed >= timeout, "{timeout:?} encoded as {parsed:?}");
        }
        assert_eq!(encode(Duration::from_millis(250)), "250000u");
        assert_eq!(encode(Duration::from_secs(100)), "100000m");
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_scope_is_visible_to_nested_calls_only() {
        assert_eq!(current(), None);
        let deadline = Instant::now() + Duration::from_secs(1);
        let seen = scope(Some(deadline), async { (current(), remaining()) }).await;
        assert_eq!(seen, (Some(deadline), Some(Duration::from_secs(1))));
        assert_eq!(current(), None);
    }
}
