//! The one RPC stack every dslab service is served and dialed through.
//!
//! Episode: 31, "Distributed Tracing Systems" (also 4)
//! Pattern: observability / trace context propagation
//! Try it:  cargo run -- demo trace-propagation
//! Test it: cargo test -p observability rpc
//!
//! A request that crosses three services is one story told by three
//! processes. For the story to be readable afterwards, every hop must carry
//! the same trace id and name its parent; for it to end on time, every hop
//! must carry the caller's remaining deadline. Doing that by hand in each
//! service is how it gets forgotten, so here it is done once: services are
//! plain tonic services, and [`RpcServer`] / [`ClientBuilder`] wrap them.
//!
//! - [`Net`] decides whether bytes travel over TCP or turmoil's simulated
//!   network; nothing else in the workspace opens a socket.
//! - servers continue the caller's trace, record RED metrics, serve
//!   health and reflection, bound what a client can make them hold
//!   ([`limits`]: message sizes, connections, streams, call durations,
//!   idle streams), and shut down gracefully;
//! - clients open a span per call, inject `traceparent`, and always send a
//!   deadline.
//!
//! Simplified: plaintext HTTP/2 only (no TLS), one channel per peer.

pub mod client;
pub mod closable;
pub mod deadline;
pub mod limits;
pub mod message_limit;
pub mod method;
pub mod net;
pub mod outcome;
pub mod peer_secret;
pub mod routes;
pub mod server;
pub mod server_layer;
#[cfg(any(test, feature = "sim"))]
pub mod sim_adapter;
pub mod stream_guard;
#[cfg(test)]
mod tests;
pub mod trace_context;

pub use client::{ClientBuilder, RpcChannel};
pub use limits::ServerLimits;
pub use method::RpcMethod;
pub use net::{Net, peer_uri, tcp_uri};
pub use server::{BoundServer, RpcServer, ServerHandle};
