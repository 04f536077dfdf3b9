//! The resilience layers as Prometheus metrics.
//!
//! Episode: 32, "Metrics & Monitoring" (also 37, 38, 41, 42)
//! Pattern: observability / metrics for local refusals
//! Try it:  cargo run -- serve flaky --error-rate 0.2 --metrics-listen 127.0.0.1:9464
//! Test it: cargo test -p resilience resilience_metrics
//!
//! A breaker, a bulkhead or a limiter refuses calls *locally*: the backend
//! never sees them, so its own metrics cannot show them. Each layer is
//! therefore a collector of its own, registered once into the process's
//! [`MetricsRegistry`], and read at scrape time:
//!
//! | metric | type | answers |
//! |---|---|---|
//! | `circuit_breaker_state{breaker, state}` | gauge, 1 for the current state | is it open now? |
//! | `circuit_breaker_transitions_total{breaker, from, to}` | counter | is it flapping? |
//! | `circuit_breaker_calls_total{breaker, outcome}` | counter | what did it count, and refuse (`not_permitted`)? |
//! | `bulkhead_in_flight`, `bulkhead_capacity{bulkhead}` | gauges | how full is the pool? |
//! | `bulkhead_refused_total{bulkhead}` | counter | who was turned away? |
//! | `rate_limiter_refused_total{limiter}` | counter | how much is over the quota? |
//! | `concurrency_limit`, `concurrency_in_flight{limiter}` | gauges | where has the adaptive limit settled? |
//! | `concurrency_shed_total`, `concurrency_served_total{limiter}` | counters | how much load is shed? |
//! | `flaky_calls_total{backend, outcome}`, `flaky_in_flight{backend}` | counter, gauge | what the scripted backend did |
//!
//! An enum state is exported the Prometheus way — one series per state,
//! 1 for the current one — so `circuit_breaker_state{state="OPEN"} == 1`
//! is an alert rule, and a graph shows when each state held.
//!
//! Bound: labels are the names given in code or on the command line
//! (escaped) and fixed sets (states, outcomes); nothing from a request
//! becomes a label.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::adaptive::LimiterHandle;
use crate::bulkhead::Bulkhead;
use crate::circuit_breaker::{CircuitBreaker, State};
use crate::flaky::Flaky;
use crate::rate_limit::RateLimitLayer;

pub use observability::metrics::MetricsRegistry;
use observability::metrics::exposition::escape_label;

type Encoded = Result<(), std::fmt::Error>;

/// One metric family: a descriptor, then one sample per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, M)>,
) -> Encoded {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(n: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for CircuitBreaker {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        let name = escape_label(self.name());
        let name = name.as_ref();
        let metrics = self.metrics();
        let states: Vec<String> = State::ALL.iter().map(State::to_string).collect();
        family(
            &mut encoder,
            "circuit_breaker_state",
            "1 for the breaker's current state, 0 for the others.",
            State::ALL.iter().zip(&states).map(|(state, label)| {
                (
                    vec![("breaker", name), ("state", label.as_str())],
                    gauge(u64::from(*state == metrics.state)),
                )
            }),
        )?;
        let transitions: Vec<(String, String, u64)> = self
            .transition_counts()
            .into_iter()
            .map(|(from, to, n)| (from.to_string(), to.to_string(), n))
            .collect();
        family(
            &mut encoder,
            "circuit_breaker_transitions",
            "State transitions since the breaker was built.",
            transitions.iter().map(|(from, to, n)| {
                (
                    vec![
                        ("breaker", name),
                        ("from", from.as_str()),
                        ("to", to.as_str()),
                    ],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        let c = metrics.counters;
        family(
            &mut encoder,
            "circuit_breaker_calls",
            "Calls by what the breaker made of them; not_permitted never reached the backend.",
            [
                ("successful", c.successful),
                ("failed", c.failed),
                ("slow", c.slow),
                ("ignored", c.ignored),
                ("not_permitted", c.not_permitted),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("breaker", name), ("outcome", outcome)],
                    ConstCounter::new(n),
                )
            }),
        )
    }
}

impl Collector for Bulkhead {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        let name = escape_label(self.name());
        let labels = || vec![("bulkhead", name.as_ref())];
        family(
            &mut encoder,
            "bulkhead_in_flight",
            "Slots in use.",
            [(labels(), gauge(self.in_use() as u64))],
        )?;
        family(
            &mut encoder,
            "bulkhead_capacity",
            "Slots in all.",
            [(labels(), gauge(self.capacity() as u64))],
        )?;
        family(
            &mut encoder,
            "bulkhead_refused",
            "Calls refused because every slot was taken.",
            [(labels(), ConstCounter::new(self.refused()))],
        )
    }
}

/// A rate limit layer under the name it is exported as.
#[derive(Clone, Debug)]
pub struct NamedRateLimit {
    pub name: String,
    pub layer: RateLimitLayer,
}

impl Collector for NamedRateLimit {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        family(
            &mut encoder,
            "rate_limiter_refused",
            "Calls refused for being over the quota.",
            [(
                vec![("limiter", self.name.as_str())],
                ConstCounter::new(self.layer.refused()),
            )],
        )
    }
}

/// An adaptive concurrency limiter under the name it is exported as.
#[derive(Clone, Debug)]
pub struct NamedConcurrencyLimit {
    pub name: String,
    pub handle: LimiterHandle,
}

impl Collector for NamedConcurrencyLimit {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        let name = escape_label(&self.name);
        let labels = || vec![("limiter", name.as_ref())];
        let h = &self.handle;
        family(
            &mut encoder,
            "concurrency_limit",
            "The adaptive limit now.",
            [(labels(), gauge(h.limit() as u64))],
        )?;
        family(
            &mut encoder,
            "concurrency_in_flight",
            "Calls admitted and not finished.",
            [(labels(), gauge(h.inflight() as u64))],
        )?;
        family(
            &mut encoder,
            "concurrency_shed",
            "Calls shed at the limit.",
            [(labels(), ConstCounter::new(h.shed()))],
        )?;
        family(
            &mut encoder,
            "concurrency_served",
            "Calls admitted and finished.",
            [(labels(), ConstCounter::new(h.served()))],
        )
    }
}

impl Collector for Flaky {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        let stats = self.stats();
        let name = escape_label(self.name());
        let name = name.as_ref();
        family(
            &mut encoder,
            "flaky_calls",
            "Calls by what the script did with them.",
            [
                ("served", stats.served),
                ("failed", stats.failed),
                ("rejected", stats.rejected),
                // Calls whose caller gave up (deadline, cancel) before the
                // script finished with them.
                (
                    "abandoned",
                    stats.calls.saturating_sub(
                        stats.served + stats.failed + stats.rejected + u64::from(stats.in_flight),
                    ),
                ),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("backend", name), ("outcome", outcome)],
                    ConstCounter::new(n),
                )
            }),
        )?;
        family(
            &mut encoder,
            "flaky_in_flight",
            "Calls in service now.",
            [(vec![("backend", name)], gauge(u64::from(stats.in_flight)))],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::time::Duration;

    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::bulkhead::BulkheadConfig;
    use crate::circuit_breaker::{BreakerConfig, SlidingWindow};
    use crate::flaky::Behaviour;
    use crate::flaky::proto::CallRequest;
    use crate::flaky::proto::flaky_server::Flaky as _;
    use crate::rate_limit::{Quota, TokenBucket};

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[tokio::test]
    async fn resilience_metrics_show_state_transitions_and_refusals() {
        let registry = MetricsRegistry::new();
        let breaker = CircuitBreaker::new(BreakerConfig {
            sliding_window: SlidingWindow::Count(4),
            minimum_number_of_calls: 4,
            ..BreakerConfig::new("payments")
        })
        .expect("valid");
        registry.register_collector(breaker.clone());
        let bulkhead = Bulkhead::new(BulkheadConfig {
            name: "db".into(),
            max_concurrent: 2,
            max_wait: Duration::ZERO,
        })
        .expect("valid");
        registry.register_collector(bulkhead.clone());
        let limit = RateLimitLayer::new(Arc::new(TokenBucket::new(
            Quota::per_second(1).expect("valid"),
        )));
        registry.register_collector(NamedRateLimit {
            name: "api".into(),
            layer: limit.clone(),
        });
        let flaky = Flaky::new("backend-1", Behaviour::healthy());
        registry.register_collector(flaky.clone());

        let before = registry.encode();
        assert!(
            has(
                &before,
                r#"circuit_breaker_state{breaker="payments",state="CLOSED"} 1"#
            ),
            "{before}"
        );
        assert!(
            !before.contains("circuit_breaker_transitions_total"),
            "no transition yet"
        );

        for _ in 0..4 {
            breaker.try_acquire().expect("closed").failure();
        }
        assert!(breaker.try_acquire().is_err(), "open now");
        breaker
            .transition_to(State::ForcedOpen)
            .expect("an operator may force it");
        let _slot = bulkhead.acquire().await.expect("free");
        let _slot2 = bulkhead.acquire().await.expect("free");
        assert!(bulkhead.acquire().await.is_err(), "full");
        let service = limit.layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(()))
        }));
        for _ in 0..3 {
            let _ = service.clone().oneshot(http::Request::new(())).await;
        }
        flaky
            .call(tonic::Request::new(CallRequest::default()))
            .await
            .expect("healthy");

        let after = registry.encode();
        for line in [
            r#"circuit_breaker_state{breaker="payments",state="CLOSED"} 0"#,
            r#"circuit_breaker_state{breaker="payments",state="FORCED_OPEN"} 1"#,
            r#"circuit_breaker_transitions_total{breaker="payments",from="CLOSED",to="OPEN"} 1"#,
            r#"circuit_breaker_transitions_total{breaker="payments",from="OPEN",to="FORCED_OPEN"} 1"#,
            r#"circuit_breaker_calls_total{breaker="payments",outcome="failed"} 4"#,
            r#"circuit_breaker_calls_total{breaker="payments",outcome="not_permitted"} 1"#,
            r#"bulkhead_in_flight{bulkhead="db"} 2"#,
            r#"bulkhead_capacity{bulkhead="db"} 2"#,
            r#"bulkhead_refused_total{bulkhead="db"} 1"#,
            r#"rate_limiter_refused_total{limiter="api"} 2"#,
            r#"flaky_calls_total{backend="backend-1",outcome="served"} 1"#,
            r#"flaky_in_flight{backend="backend-1"} 0"#,
        ] {
            assert!(has(&after, line), "missing {line:?} in\n{after}");
        }
    }
}
