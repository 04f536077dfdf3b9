//! `Relay`: a hop that forwards each request to the next hop in a chain.
//!
//! Episode: 31, "Distributed Tracing Systems"
//! Pattern: observability / trace context propagation
//! Try it:  cargo run -- demo trace-propagation
//! Test it: cargo test -p observability relay_
//!
//! Three relays in a row are the smallest system where tracing earns its
//! keep: one request becomes six spans in three processes, and only the
//! `traceparent` header carried between them lets a collector stitch them
//! into one tree. The relay itself knows nothing about tracing — it is a
//! plain tonic service; the RPC stack does the carrying.
//!
//! Pitfall: a misconfigured chain (`a → b → a`) would recurse until some
//! deadline or stack gives out. Each request carries the hops it visited,
//! and a relay that finds itself there refuses with `InvalidArgument`.
//!
//! Bounds: at most [`MAX_HOPS`] visited hops of at most
//! [`MAX_HOP_NAME_BYTES`] each, so the path a relay echoes into an error
//! stays small; the payload is bounded by the stack's message limit.

mod demo;
mod slow_hop;
#[cfg(test)]
pub(crate) mod tests;

pub use demo::trace_propagation;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Error;
use crate::rpc::RpcChannel;

/// The relay's generated types live with the crate's other protos.
pub use crate::proto;

use proto::relay_client::RelayClient;
use proto::relay_server::RelayServer;
use proto::{ForwardReply, ForwardRequest, Hop};

/// The longest chain a relay will take part in.
pub const MAX_HOPS: usize = 32;
/// The longest hop name a request may carry.
pub const MAX_HOP_NAME_BYTES: usize = 255;

/// One relay: its name and, unless it ends the chain, the next hop.
#[derive(Clone, Debug)]
pub struct Relay {
    name: Arc<str>,
    next: Option<RelayClient<RpcChannel>>,
    work: Duration,
}

impl Relay {
    /// A relay called `name` that forwards to `next`, or ends the chain.
    pub fn new(name: impl Into<String>, next: Option<RpcChannel>) -> Self {
        Self {
            name: name.into().into(),
            next: next.map(RelayClient::new),
            work: Duration::ZERO,
        }
    }

    /// Spends `work` on each request before forwarding it: a stand-in for
    /// the hop's own work (a slow query, a cold cache), so that the
    /// critical-path demo has a slow hop to find.
    pub fn with_work(mut self, work: Duration) -> Self {
        self.work = work;
        self
    }

    /// The tonic service to host on an [`crate::rpc::RpcServer`].
    pub fn into_service(self) -> RelayServer<Self> {
        RelayServer::new(self)
    }
}

#[tonic::async_trait]
impl proto::relay_server::Relay for Relay {
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let arrived = Instant::now();
        let ForwardRequest {
            payload,
            mut visited,
        } = request.into_inner();
        if visited.len() >= MAX_HOPS {
            return Err(Error::RelayTooLong { max: MAX_HOPS }.into());
        }
        if let Some(long) = visited.iter().find(|hop| hop.len() > MAX_HOP_NAME_BYTES) {
            return Err(Error::HopNameTooLong {
                bytes: long.len(),
                max: MAX_HOP_NAME_BYTES,
            }
            .into());
        }
        if visited.iter().any(|hop| **hop == *self.name) {
            return Err(Error::RelayLoop {
                path: visited.join(" -> "),
                hop: self.name.to_string(),
            }
            .into());
        }
        visited.push(self.name.to_string());
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }

        let mut path = match &self.next {
            // A downstream error comes back to the caller with its code
            // intact: `Unavailable` from hop 3 is still `Unavailable` at hop 1.
            Some(next) => {
                let forwarded = ForwardRequest {
                    payload: payload.clone(),
                    visited,
                };
                next.clone().forward(forwarded).await?.into_inner().path
            }
            None => Vec::new(),
        };
        let trace_id = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id();
        path.insert(
            0,
            Hop {
                name: self.name.to_string(),
                elapsed_micros: u64::try_from(arrived.elapsed().as_micros()).unwrap_or(u64::MAX),
                trace_id: trace_id.to_string(),
            },
        );
        Ok(Response::new(ForwardReply { payload, path }))
    }
}
