//! Where bytes travel: real sockets, or turmoil's simulated network.
//!
//! A service never binds a socket or dials a peer itself; it asks a `Net`.
//! That one indirection is what lets the same code run across machines
//! (`dslab serve`), in the in-process tour, and in seeded simulations where
//! a test can partition, delay and crash hosts.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

/// Where bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// Real TCP sockets.
    Tcp,
    /// turmoil's simulated network, for deterministic fault-injection tests.
    #[cfg(any(test, feature = "sim"))]
    Sim,
}

/// Parses a peer address: `http://host:port`, or a bare `host:port`.
pub fn peer_uri(addr: &str) -> Result<Uri> {
    let with_scheme = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let uri: Uri =
        with_scheme
            .parse()
            .map_err(|err: http::uri::InvalidUri| Error::InvalidPeerAddress {
                addr: addr.to_owned(),
                reason: err.to_string(),
            })?;
    let invalid = |reason: &str| Error::InvalidPeerAddress {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// is supported"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.port_u16().is_none() {
        return Err(invalid("no port"));
    }
    Ok(uri)
}

/// The URI clients use to reach a server listening on `addr` over TCP.
pub fn tcp_uri(addr: SocketAddr) -> Uri {
    format!("http://{addr}")
        .parse()
        .expect("a socket address forms a valid authority")
}

impl Net {
    /// A lazily connecting channel to `uri`: it dials on first use and
    /// redials after failures, so a client can exist before its server.
    pub(crate) fn channel(
        self,
        uri: Uri,
        connect_timeout: Duration,
        keepalive: Duration,
    ) -> Channel {
        // Pitfall: after a partition heals, a connection whose packets were
        // lost can stay wedged — no error, no progress, every call on it
        // timing out. HTTP/2 pings with a timeout notice the silence and
        // close it, so the next call dials afresh.
        let endpoint = Endpoint::from(uri)
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(keepalive)
            .keep_alive_timeout(keepalive)
            .keep_alive_while_idle(false);
        match self {
            Net::Tcp => endpoint.connect_lazy(),
            #[cfg(any(test, feature = "sim"))]
            Net::Sim => endpoint.connect_with_connector_lazy(super::sim_adapter::connector()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_uri_accepts_host_port_and_rejects_the_rest() {
        assert_eq!(
            peer_uri("127.0.0.1:50051").expect("valid").to_string(),
            "http://127.0.0.1:50051/"
        );
        assert_eq!(
            peer_uri("http://n2:9000").expect("valid").port_u16(),
            Some(9000)
        );
        for bad in ["", "n2", "https://n2:9000", "http://:9000", "not a uri"] {
            assert!(
                matches!(peer_uri(bad), Err(Error::InvalidPeerAddress { .. })),
                "{bad:?} must be refused"
            );
        }
    }
}
