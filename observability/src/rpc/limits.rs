//! What one client may make a server hold: the limits every dslab server
//! enforces, and their defaults.
//!
//! A server that answers the network must decide, for every resource a
//! request can grow, where the growth stops. These are the stack's own
//! bounds; each service adds its own (keys, values, tracked items) and
//! documents them in its module.
//!
//! | resource | bound | default |
//! |---|---|---|
//! | request message size | `RpcServer::max_message_bytes` → `ResourceExhausted` | 4 MiB |
//! | connections | [`ServerLimits::max_connections`]: the server stops accepting until one closes | 1024 |
//! | a silent connection | [`ServerLimits::first_byte_timeout`]: closed if it sends nothing | 10 s |
//! | a connection's age | [`ServerLimits::max_connection_age`]: then GOAWAY, and the client reconnects | 30 min |
//! | streams per connection | [`ServerLimits::max_concurrent_streams`] (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`) | 256 |
//! | a unary call's duration | [`ServerLimits::max_unary_duration`], whatever `grpc-timeout` says; per route with `RpcServer::route_max_duration` | 30 s |
//! | a silent stream | [`ServerLimits::stream_idle_timeout`]: no message either way for this long ends it (`Cancelled`); per route with `RpcServer::route_idle_timeout` | 10 min |
//! | a dead peer | HTTP/2 keepalive pings every [`ServerLimits::keepalive_interval`], answered within [`ServerLimits::keepalive_timeout`] | 10 s, 10 s |
//! | status messages | [`MAX_STATUS_MESSAGE_BYTES`], truncated on the way out | 1 KiB |
//! | undecodable requests | answered `InvalidArgument` (see [`sanitize_status`]) | — |
//! | metrics labels | one per hosted method, plus `unknown` | — |
//!
//! Pitfall: HTTP/2 carries a status message in a header, and peers refuse
//! header blocks beyond a few KiB by resetting the stream. A handler that
//! echoes client input into an error message would turn a precise
//! `InvalidArgument` into an opaque reset; truncating keeps the code.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The longest status message a server sends, in bytes (before
/// percent-encoding, which can triple it).
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;

/// The stack's limits on what clients may make a server hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// A connection that sends nothing for this long after it is accepted
    /// is closed (it would hold a connection slot for nothing).
    pub first_byte_timeout: Duration,
    /// A connection older than this is asked to go away (HTTP/2 GOAWAY)
    /// and closed after its calls finish, so idle but live connections do
    /// not keep their slots forever; clients simply reconnect.
    pub max_connection_age: Duration,
    pub max_concurrent_streams: u32,
    pub max_unary_duration: Duration,
    pub stream_idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            first_byte_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(30 * 60),
            max_concurrent_streams: 256,
            max_unary_duration: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(600),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// The start of every message prost gives a message it cannot parse.
///
/// Simplified: the text does not say whose message failed. A handler that
/// passes on a downstream peer's undecodable *reply* unchanged is read as
/// a caller's bad request too; handlers that call peers should say whose
/// fault it was (the Relay and Flaky pass the status on as it came).
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// Makes the status in `headers` (response headers or trailers) fit to
/// send: a request that does not parse is the caller's mistake, and long
/// messages are truncated.
///
/// tonic answers bytes that are not the method's protobuf message with
/// `Internal`, after gRPC's status-code table. dslab answers
/// `InvalidArgument`, as Google's API guidelines and etcd do: `Internal`
/// says "the server is broken", which makes clients' breakers and
/// retry budgets punish a healthy server for one client's garbage.
pub fn sanitize_status(headers: &mut HeaderMap) {
    let decode_failure = headers.get("grpc-status").is_some_and(|code| code == "13")
        && headers
            .get("grpc-message")
            .and_then(|raw| raw.to_str().ok())
            .is_some_and(|raw| {
                raw.starts_with("failed%20to%20decode%20Protobuf")
                    || raw.starts_with(DECODE_FAILURE)
            });
    if decode_failure && let Some(status) = Status::from_header_map(headers) {
        let caller_error = Status::invalid_argument(format!(
            "the request is not a valid message for this method ({})",
            status.message()
        ));
        headers.remove("grpc-message");
        let _ = caller_error.add_header(headers);
    }
    truncate_status_message(headers);
}

/// Shortens the `grpc-message` in `headers` (response headers or
/// trailers) to [`MAX_STATUS_MESSAGE_BYTES`], keeping its code.
pub fn truncate_status_message(headers: &mut HeaderMap) {
    // Percent-encoding at most triples a message: anything shorter on
    // the wire is within the limit already.
    let short = headers
        .get("grpc-message")
        .is_none_or(|raw| raw.len() <= MAX_STATUS_MESSAGE_BYTES);
    if short {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let message = status.message();
    if message.len() <= MAX_STATUS_MESSAGE_BYTES {
        return;
    }
    let mut end = MAX_STATUS_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let shortened = Status::new(
        status.code(),
        format!("{}… ({} bytes, truncated)", &message[..end], message.len()),
    );
    headers.remove("grpc-message");
    // Only fails for messages that cannot be percent-encoded, and every
    // string can.
    let _ = shortened.add_header(headers);
}

/// Accepts a connection only while fewer than `max` are open: each one
/// carries a permit that its connection task holds until it closes.
/// At the limit the server stops accepting, and new clients wait in the
/// operating system's accept queue (or time out), rather than each
/// costing a task and buffers here.
pub fn gate_connections<S, IO, E>(
    incoming: S,
    max: usize,
) -> impl Stream<Item = Result<(IO, OwnedSemaphorePermit), E>>
where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max.max(1)));
    futures_util::stream::unfold(
        (Box::pin(incoming), slots),
        |(mut incoming, slots)| async move {
            // The semaphore is never closed.
            let permit = slots.clone().acquire_owned().await.ok()?;
            let next = incoming.next().await?;
            Some((next.map(|io| (io, permit)), (incoming, slots)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_long_status_messages_are_truncated_keeping_the_code() {
        let mut headers = HeaderMap::new();
        let long = "ü".repeat(3000);
        Status::invalid_argument(long.clone())
            .add_header(&mut headers)
            .expect("encodable");
        truncate_status_message(&mut headers);
        let status = Status::from_header_map(&headers).expect("a status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() < MAX_STATUS_MESSAGE_BYTES + 64);
        assert!(status.message().ends_with("(6000 bytes, truncated)"));
        assert!(status.message().starts_with("üü"));

        let mut short = HeaderMap::new();
        Status::not_found("k").add_header(&mut short).expect("ok");
        let before = short.clone();
        truncate_status_message(&mut short);
        assert_eq!(short, before);
    }
}
