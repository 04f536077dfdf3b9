//! Which service a span belongs to, when one process hosts several.
//!
//! A collector groups spans by the `service.name` of the resource that
//! exported them, and draws one box per service. A real deployment has
//! one process per service, so one resource is enough. The in-process
//! demos run three relays in one process; exported with one resource they
//! would draw as a single service talking to itself. So every span names
//! its service in the attribute [`SERVICE_ATTRIBUTE`] — a server span
//! the service its [`RpcServer`](crate::rpc::RpcServer) was given, a
//! client span the service whose handler made the call — and the exporter
//! ([`super::export`]) sends each span under its own service's resource,
//! removing the attribute on the way out.
//!
//! Why not a tracer provider per hop, as one would configure one per
//! process: `tracing` spans reach OpenTelemetry through a single
//! `tracing-opentelemetry` layer, which holds a single tracer, and two such
//! layers on one subscriber would overwrite each other's per-span state.
//! Routing spans to per-hop providers would need a tracer that dispatches
//! on the span's service — and would then cut a trace's in-process spans
//! apart, though the demos want to read (and the tail sampler to judge)
//! each trace whole. On the wire the result is the same: one OTLP client
//! per service, each with its own resource, so a collector sees exactly
//! what it would from one process per service. What differs is only what
//! real processes would not share: one sampler and one batch queue.

use std::future::Future;
use std::sync::Arc;

/// The span attribute that carries a span's service until export.
pub const SERVICE_ATTRIBUTE: &str = "dslab.service";

tokio::task_local! {
    static SERVICE: Arc<str>;
}

/// The service whose request is being handled on this task, if any.
pub fn current() -> Option<Arc<str>> {
    SERVICE.try_with(Arc::clone).ok()
}

/// Runs `future` as part of `service`: calls it makes are that service's.
pub async fn scope<F: Future>(service: Option<Arc<str>>, future: F) -> F::Output {
    match service {
        Some(service) => SERVICE.scope(service, future).await,
        None => future.await,
    }
}
