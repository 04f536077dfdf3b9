//! The gRPC method a request names, in OpenTelemetry's RPC vocabulary.

use std::fmt;

/// `package.Service/Method`, parsed from an HTTP/2 `:path` of
/// `/package.Service/Method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcMethod {
    /// Fully qualified service, e.g. `observability.v1.Relay` (`rpc.service`).
    pub service: String,
    /// Method name, e.g. `Forward` (`rpc.method`).
    pub method: String,
}

impl RpcMethod {
    /// Parses a request path. Anything that is not `/service/method` keeps
    /// the raw path as the service so it still shows up somewhere.
    pub fn from_path(path: &str) -> Self {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        match trimmed.split_once('/') {
            Some((service, method)) if !service.is_empty() && !method.contains('/') => Self {
                service: service.to_owned(),
                method: method.to_owned(),
            },
            _ => Self {
                service: trimmed.to_owned(),
                method: String::new(),
            },
        }
    }

    /// Stands for every path a server does not host.
    pub fn unknown() -> Self {
        Self {
            service: crate::metrics::UNKNOWN_METHOD.to_owned(),
            method: crate::metrics::UNKNOWN_METHOD.to_owned(),
        }
    }
}

/// The span name OpenTelemetry's RPC conventions ask for: `package.Service/Method`.
impl fmt::Display for RpcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_method_parses_grpc_paths() {
        let m = RpcMethod::from_path("/observability.v1.Relay/Forward");
        assert_eq!(m.service, "observability.v1.Relay");
        assert_eq!(m.method, "Forward");
        assert_eq!(m.to_string(), "observability.v1.Relay/Forward");
        let odd = RpcMethod::from_path("/a/b/c");
        assert_eq!(odd.service, "a/b/c");
        assert!(odd.method.is_empty());
    }
}
