//! The closed forms: M/M/1, M/M/c (Erlang C), G/G/1 (Kingman) and Little's law.
//!
//! Notation, as in the episode: λ arrivals per second, μ services per
//! second per server, c servers, ρ = λ / (c μ) the utilisation. Every
//! function checks its input and returns a typed error rather than a NaN
//! or a negative wait: a formula fed ρ ≥ 1 has no steady state to
//! describe, and saying so is the lesson.

use std::time::Duration;

use crate::error::{Error, Result};

/// The steady state of a queue: how busy, how long, how many.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueMetrics {
    /// ρ: the fraction of time each server is busy.
    pub utilisation: f64,
    /// The probability that an arrival has to wait at all.
    pub wait_probability: f64,
    /// Wq: mean time in the queue, before service starts.
    pub mean_wait: Duration,
    /// W = Wq + 1/μ: mean time in the system, queue plus service.
    pub mean_response: Duration,
    /// Lq = λ Wq: mean number waiting.
    pub mean_queue_length: f64,
    /// L = λ W: mean number in the system (Little's law).
    pub mean_in_system: f64,
}

fn check_rate(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidRate { name, value })
    }
}

fn check_scv(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidVariability { name, value })
    }
}

/// Seconds as a `Duration`; callers pass finite, non-negative values.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

/// ρ = λ / (c μ), refused when it is not below 1.
fn stable_utilisation(arrival_rate: f64, service_rate: f64, servers: u32) -> Result<f64> {
    let arrival_rate = check_rate("arrival rate", arrival_rate)?;
    let service_rate = check_rate("service rate", service_rate)?;
    if servers == 0 {
        return Err(Error::NoServers);
    }
    let utilisation = arrival_rate / (servers as f64 * service_rate);
    // Pitfall: at ρ = 1 the formulas divide by zero and at ρ > 1 they
    // return negative waits. Neither is a number to print: the queue
    // grows without bound and has no mean.
    if utilisation >= 1.0 {
        return Err(Error::Unstable { utilisation });
    }
    Ok(utilisation)
}

fn metrics(
    arrival_rate: f64,
    service_rate: f64,
    utilisation: f64,
    wait_probability: f64,
    wait_seconds: f64,
) -> QueueMetrics {
    let response_seconds = wait_seconds + 1.0 / service_rate;
    QueueMetrics {
        utilisation,
        wait_probability,
        mean_wait: seconds(wait_seconds),
        mean_response: seconds(response_seconds),
        mean_queue_length: arrival_rate * wait_seconds,
        mean_in_system: arrival_rate * response_seconds,
    }
}

/// M/M/1: Poisson arrivals, exponential service, one server.
/// W = 1 / (μ − λ); Wq = ρ / (μ − λ). The 1/(1 − ρ) factor is the knee:
/// at ρ = 0.5 a call takes twice its service time, at 0.9 ten times, at
/// 0.99 a hundred.
pub fn mm1(arrival_rate: f64, service_rate: f64) -> Result<QueueMetrics> {
    let rho = stable_utilisation(arrival_rate, service_rate, 1)?;
    let wait = rho / (service_rate - arrival_rate);
    Ok(metrics(arrival_rate, service_rate, rho, rho, wait))
}

/// Erlang's C formula: the probability that an arrival at an M/M/c queue
/// finds every server busy, for offered load `a = λ/μ` Erlangs.
///
/// Pitfall: the textbook form sums aᵏ/k! terms that overflow an f64 by
/// c ≈ 170. The Erlang B recursion B(k) = a·B(k−1) / (k + a·B(k−1)) stays
/// between 0 and 1 for any c, and C = B / (1 − ρ (1 − B)).
fn erlang_c(offered_load: f64, servers: u32) -> f64 {
    let mut blocking = 1.0;
    for k in 1..=servers {
        blocking = offered_load * blocking / (k as f64 + offered_load * blocking);
    }
    let rho = offered_load / servers as f64;
    blocking / (1.0 - rho * (1.0 - blocking))
}

/// M/M/c: Poisson arrivals, exponential service, `servers` servers
/// sharing one queue. Wq = C(c, a) / (c μ − λ), where C is Erlang's C.
/// With c = 1 it is exactly [`mm1`].
pub fn mmc(arrival_rate: f64, service_rate: f64, servers: u32) -> Result<QueueMetrics> {
    let rho = stable_utilisation(arrival_rate, service_rate, servers)?;
    let waits = erlang_c(arrival_rate / service_rate, servers);
    let wait = waits / (servers as f64 * service_rate - arrival_rate);
    Ok(metrics(arrival_rate, service_rate, rho, waits, wait))
}

/// G/G/1 by Kingman's approximation:
/// Wq ≈ ρ/(1 − ρ) · (c²ₐ + c²ₛ)/2 · 1/μ,
/// where c²ₐ and c²ₛ are the squared coefficients of variation of the
/// inter-arrival and service times (variance / mean²; 1 for exponential,
/// 0 for constant). Utilisation sets the knee, variability scales it:
/// halve the variability and the wait halves at any load.
///
/// Exact for M/M/1 and (Pollaczek–Khinchine) for any M/G/1; for other
/// arrival processes it is a heavy-traffic approximation, tightest as
/// ρ → 1. The simulator measures how far off it is.
///
/// `wait_probability` is reported as ρ, which is exact only for Poisson
/// arrivals.
pub fn gg1_kingman(
    arrival_rate: f64,
    service_rate: f64,
    arrival_scv: f64,
    service_scv: f64,
) -> Result<QueueMetrics> {
    let rho = stable_utilisation(arrival_rate, service_rate, 1)?;
    let variability = (check_scv("arrival variability", arrival_scv)?
        + check_scv("service variability", service_scv)?)
        / 2.0;
    let wait = rho / (1.0 - rho) * variability / service_rate;
    Ok(metrics(arrival_rate, service_rate, rho, rho, wait))
}

/// Little's law, L = λ W: the mean number in a system equals its
/// throughput times the mean time each item spends in it. It assumes
/// nothing about arrivals, service or order — only that the system is
/// stable (what enters leaves) — which is why it is the one law that also
/// holds for a real service measured from outside.
pub fn littles_law_in_system(throughput: f64, mean_time: Duration) -> Result<f64> {
    let throughput = check_rate("throughput", throughput)?;
    Ok(throughput * mean_time.as_secs_f64())
}

/// Little's law solved for W = L / λ: how long items stay, from how many
/// there are and how fast they leave.
pub fn littles_law_time(in_system: f64, throughput: f64) -> Result<Duration> {
    let throughput = check_rate("throughput", throughput)?;
    if !(in_system.is_finite() && in_system >= 0.0) {
        return Err(Error::InvalidCount {
            name: "items in system",
            value: in_system,
        });
    }
    Ok(seconds(in_system / throughput))
}
