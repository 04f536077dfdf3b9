//! The methods a server really hosts, read from its protobuf descriptors.
//!
//! A request names its method in the HTTP/2 path, and the path is
//! whatever the client typed. Anything keyed by it — a metrics label, a
//! per-method limit — must be keyed by the server's own table of methods
//! instead, or one scanner sending made-up names creates a new entry per
//! name. The table also says each method's shape: a unary call is capped
//! in time, a stream is bounded by idleness instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;

use crate::{Error, Result};

/// How a method moves messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Unary,
    ClientStreaming,
    ServerStreaming,
    Bidirectional,
}

impl RouteKind {
    pub fn is_streaming(self) -> bool {
        self != RouteKind::Unary
    }
}

/// One hosted method and its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `package.Service/Method`, the span name and metrics label.
    pub name: Arc<str>,
    pub kind: RouteKind,
    /// Unary calls: the longest a call may run, whatever deadline the
    /// client sent (or did not send). `None`: the server's default.
    pub max_duration: Option<Duration>,
    /// Streams: how long both directions may stay silent before the
    /// server ends the call. `None`: the server's default.
    pub idle_timeout: Option<Duration>,
}

/// Every method a server hosts, by HTTP/2 path (`/package.Service/Method`).
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: HashMap<Box<str>, Route>,
}

impl RouteTable {
    /// The methods of `services` (fully qualified names), as described by
    /// `descriptor_sets` (encoded `FileDescriptorSet`s).
    pub fn from_descriptors(services: &[&str], descriptor_sets: &[&[u8]]) -> Result<Self> {
        let mut routes = HashMap::new();
        for set in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*set)
                .map_err(|err| Error::Descriptor(err.to_string()))?;
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    let full = if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    };
                    if !services.contains(&full.as_str()) {
                        continue;
                    }
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => RouteKind::Unary,
                            (true, false) => RouteKind::ClientStreaming,
                            (false, true) => RouteKind::ServerStreaming,
                            (true, true) => RouteKind::Bidirectional,
                        };
                        let name: Arc<str> = format!("{full}/{}", method.name()).into();
                        routes.insert(
                            format!("/{name}").into_boxed_str(),
                            Route {
                                name,
                                kind,
                                max_duration: None,
                                idle_timeout: None,
                            },
                        );
                    }
                }
            }
        }
        // A service missing from its descriptors would be answered
        // "unknown service" on every call: refuse to build that server.
        for service in services {
            let prefix = format!("/{service}/");
            if !routes.keys().any(|path| path.starts_with(&prefix)) {
                return Err(Error::Descriptor(format!(
                    "service {service} is not in its descriptor set"
                )));
            }
        }
        Ok(Self { routes })
    }

    /// The route a request path names, if the server hosts it.
    pub fn get(&self, path: &str) -> Option<&Route> {
        self.routes.get(path)
    }

    /// The route's mutable limits; an error names a path nobody hosts.
    pub(crate) fn get_mut(&mut self, path: &str) -> Result<&mut Route> {
        self.routes
            .get_mut(path)
            .ok_or_else(|| Error::UnknownRoute(path.to_owned()))
    }

    /// Whether any route belongs to `service` (`package.Service`).
    pub fn hosts_service(&self, service: &str) -> bool {
        self.routes.values().any(|route| {
            route
                .name
                .split_once('/')
                .is_some_and(|(s, _)| s == service)
        })
    }

    /// Every route's name (`package.Service/Method`).
    /// Every hosted method.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }

    /// Every route's name (`package.Service/Method`).
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.routes.values().map(|route| &route.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_descriptors_with_their_shapes() {
        let table = RouteTable::from_descriptors(
            &["observability.v1.Relay", "grpc.health.v1.Health"],
            &[
                crate::relay::proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
        )
        .expect("valid descriptors");
        let forward = table
            .get("/observability.v1.Relay/Forward")
            .expect("hosted");
        assert_eq!(
            (&*forward.name, forward.kind),
            ("observability.v1.Relay/Forward", RouteKind::Unary)
        );
        let watch = table.get("/grpc.health.v1.Health/Watch").expect("hosted");
        assert_eq!(watch.kind, RouteKind::ServerStreaming);
        assert!(table.get("/observability.v1.Relay/Made-Up").is_none());
        assert!(table.get("/grpc.health.v1.Health").is_none());
    }

    /// A service whose descriptor set does not describe it would answer
    /// every call "unknown service": it is refused when the server is built.
    #[test]
    fn routes_refuse_a_service_missing_from_its_descriptors() {
        let missing = RouteTable::from_descriptors(
            &["observability.v1.Relay", "observability.v1.Nowhere"],
            &[crate::relay::proto::FILE_DESCRIPTOR_SET],
        );
        assert!(matches!(missing, Err(Error::Descriptor(text)) if text.contains("Nowhere")));
    }
}
