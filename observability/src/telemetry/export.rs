//! OTLP export, one resource per service, that never takes the program
//! down with it.
//!
//! Spans go to an OTLP/gRPC collector through OpenTelemetry's batch
//! processor (a background thread, so exporting never blocks a request).
//! Each span is sent under the resource of the service it belongs to (see
//! [`super::service`]): the process's own resource — `service.name` from
//! `OTEL_SERVICE_NAME` or the command's default, other attributes from
//! `OTEL_RESOURCE_ATTRIBUTES` — with the service name replaced.
//!
//! Pitfall: a collector that is down must cost a warning, not the
//! program. An export that fails is logged once (not per batch, which
//! would flood stderr) and dropped; the batch processor's queue is
//! bounded (2048 spans), and shutting down waits at most
//! [`FLUSH_TIMEOUT`] for the last batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::service::SERVICE_ATTRIBUTE;
use crate::{Error, Result};

/// The longest a shutdown waits for spans still to be exported.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The most distinct services one process exports as (one OTLP client
/// each); spans of further services go out under the process's own.
pub const MAX_SERVICES: usize = 32;

/// Exports each span under its own service's resource.
#[derive(Debug)]
pub struct PerServiceExporter {
    endpoint: String,
    /// The process's resource; each service's is this with its name.
    base: Resource,
    default_service: String,
    /// Exporters are made inside the tokio runtime (tonic's channel
    /// spawns its connection task there), and export runs on the batch
    /// processor's own thread.
    runtime: tokio::runtime::Handle,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
    warned: AtomicBool,
}

impl PerServiceExporter {
    /// An exporter to `endpoint` (`http://host:port`). Call inside a tokio
    /// runtime; the first service's client is built now, so a malformed
    /// endpoint is refused here rather than silently later.
    pub fn new(endpoint: &str, base: Resource, default_service: String) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Telemetry("OTLP export must be set up inside a tokio runtime".into())
        })?;
        let exporter = Self {
            endpoint: endpoint.to_owned(),
            base,
            default_service,
            runtime,
            exporters: Mutex::default(),
            warned: AtomicBool::new(false),
        };
        let default_service = exporter.default_service.clone();
        exporter.exporter_for(&default_service)?;
        Ok(exporter)
    }

    fn exporter_for(&self, service: &str) -> Result<Arc<opentelemetry_otlp::SpanExporter>> {
        let mut exporters = self
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(exporter) = exporters.get(service) {
            return Ok(exporter.clone());
        }
        let service = if exporters.len() >= MAX_SERVICES {
            self.default_service.as_str()
        } else {
            service
        };
        if let Some(exporter) = exporters.get(service) {
            return Ok(exporter.clone());
        }
        let _inside = self.runtime.enter();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&self.endpoint)
            .build()
            .map_err(|err| {
                Error::Telemetry(format!("OTLP exporter for {}: {err}", self.endpoint))
            })?;
        let resource = Resource::builder_empty()
            .with_attributes(
                self.base
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_service_name(service.to_owned())
            .build();
        exporter.set_resource(&resource);
        let exporter = Arc::new(exporter);
        exporters.insert(service.to_owned(), exporter.clone());
        Ok(exporter)
    }

    fn warn_once(&self, err: &dyn std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = %self.endpoint,
                "cannot export spans to the OTLP collector ({err}); carrying on without them"
            );
        }
    }
}

/// Splits `batch` by service, taking the service attribute off each span.
fn by_service(batch: Vec<SpanData>, default: &str) -> HashMap<String, Vec<SpanData>> {
    let mut groups: HashMap<String, Vec<SpanData>> = HashMap::new();
    for mut span in batch {
        let at = span
            .attributes
            .iter()
            .position(|kv| kv.key.as_str() == SERVICE_ATTRIBUTE);
        let service = match at {
            Some(at) => span.attributes.swap_remove(at).value.as_str().into_owned(),
            None => default.to_owned(),
        };
        groups.entry(service).or_default().push(span);
    }
    groups
}

impl SpanExporter for PerServiceExporter {
    /// Each service's spans go out at once, side by side: a collector that
    /// is down then costs one round of retries, not one per service.
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let exports =
            by_service(batch, &self.default_service)
                .into_iter()
                .map(|(service, spans)| {
                    let exporter = self.exporter_for(&service);
                    async move {
                        match exporter {
                            Ok(exporter) => exporter.export(spans).await,
                            Err(err) => Err(OTelSdkError::InternalFailure(err.to_string())),
                        }
                    }
                });
        let mut failure = None;
        for exported in futures_util::future::join_all(exports).await {
            if let Err(err) = exported {
                self.warn_once(&err);
                failure = Some(err);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let exporters: Vec<_> = self
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for exporter in exporters {
            let _ = exporter.shutdown_with_timeout(timeout);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry::{InstrumentationScope, Value};

    use super::*;

    fn span(service: Option<&str>) -> SpanData {
        let mut attributes = vec![KeyValue::new("rpc.system", "grpc")];
        if let Some(service) = service {
            attributes.push(KeyValue::new(SERVICE_ATTRIBUTE, service.to_owned()));
        }
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "x".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("dslab").build(),
        }
    }

    #[test]
    fn telemetry_spans_are_grouped_by_service_without_the_marker() {
        let groups = by_service(
            vec![
                span(Some("relay-hop-1")),
                span(None),
                span(Some("relay-hop-1")),
            ],
            "dslab",
        );
        assert_eq!(groups["relay-hop-1"].len(), 2);
        assert_eq!(groups["dslab"].len(), 1);
        for spans in groups.values() {
            for span in spans {
                assert!(
                    span.attributes
                        .iter()
                        .all(|kv| kv.key.as_str() != SERVICE_ATTRIBUTE)
                );
                assert_eq!(span.attributes[0].value, Value::from("grpc"));
            }
        }
    }
}
