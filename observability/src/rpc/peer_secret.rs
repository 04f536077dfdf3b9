//! A secret the members of a cluster share, to tell peers from anyone
//! else who can reach the port.
//!
//! Peer RPCs (Raft messages, CRDT gossip) share a port with the client
//! API, and a forged peer message can do anything a member can. Each
//! member sends the secret as gRPC metadata with every peer call, and a
//! peer service refuses calls without it (`Unauthenticated`). Without a
//! secret — the default, as etcd's peer port without TLS — any caller is
//! believed.
//!
//! Simplified: the secret travels in the clear (no TLS), so it keeps out
//! strangers on the network, not someone who can read its traffic.

use std::sync::Arc;

use tonic::{Request, Status};

/// Metadata carrying the secret.
pub const SECRET_HEADER: &str = "dslab-peer-secret";

/// A secret shared by a cluster's members.
#[derive(Clone)]
pub struct PeerSecret(Arc<str>);

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(…)")
    }
}

/// A secret too short, or not sendable as metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a peer secret is at least {min_bytes} visible ASCII characters")]
pub struct InvalidPeerSecret {
    pub min_bytes: usize,
}

impl PeerSecret {
    /// The shortest secret accepted.
    pub const MIN_BYTES: usize = 16;

    /// A secret of at least [`Self::MIN_BYTES`] visible ASCII characters
    /// (it travels as gRPC metadata).
    pub fn new(secret: &str) -> Result<Self, InvalidPeerSecret> {
        if secret.len() < Self::MIN_BYTES || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidPeerSecret {
                min_bytes: Self::MIN_BYTES,
            });
        }
        Ok(Self(secret.into()))
    }

    /// Adds the secret to an outgoing peer call.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        let value = self
            .0
            .parse()
            .expect("`new` admits only visible ASCII, which is valid metadata");
        request.metadata_mut().insert(SECRET_HEADER, value);
    }

    /// Compares in time independent of where the bytes differ.
    fn matches(&self, given: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        ours.len() == given.len()
            && ours
                .iter()
                .zip(given)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    /// Refuses a peer call without the cluster's secret, if it has one.
    pub fn authenticate<T>(secret: Option<&Self>, request: &Request<T>) -> Result<(), Status> {
        let Some(secret) = secret else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get(SECRET_HEADER)
            .map_or(&[][..], |value| value.as_bytes());
        if secret.matches(given) {
            Ok(())
        } else {
            Err(Status::unauthenticated("not a peer of this cluster"))
        }
    }
}
