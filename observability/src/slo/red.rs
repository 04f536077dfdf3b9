//! The SLI from the RED counters every dslab server already keeps.

use tonic::Code;

use crate::metrics::{MethodSnapshot, RedMetrics};

use super::core::WindowCounts;

/// Whether a final status spends error budget: the codes gRPC maps to
/// HTTP 5xx (the server failed). A client's own mistakes — `NotFound`,
/// `InvalidArgument`, `PermissionDenied`, or a call it cancelled — were
/// answered correctly, so they count as good; so does `ResourceExhausted`
/// (HTTP 429), which a well-behaved client backs off from.
pub fn is_server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::DataLoss
            | Code::Unimplemented
    )
}

/// Cumulative good and total events for `method` (`package.Service/Method`),
/// or for every method when `None`. A method not called yet has none.
pub fn availability(snapshot: &[MethodSnapshot], method: Option<&str>) -> WindowCounts {
    let mut counts = WindowCounts { good: 0, total: 0 };
    for m in snapshot
        .iter()
        .filter(|m| method.is_none_or(|wanted| m.method == wanted))
    {
        let bad: u64 = m
            .by_code
            .iter()
            .filter(|(code, _)| is_server_fault(*code))
            .map(|(_, n)| n)
            .sum();
        counts.total += m.requests;
        counts.good += m.requests.saturating_sub(bad);
    }
    counts
}

/// Reads a server's counters for one method: what an alert policy's
/// `observe` takes, scraped from [`RedMetrics`] like Prometheus would.
pub fn read(metrics: &RedMetrics, method: Option<&str>) -> WindowCounts {
    availability(&metrics.snapshot(), method)
}
