//! Asking the standard gRPC health service, as a load balancer would.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::core::HealthStatus;
use crate::rpc::RpcChannel;

/// `grpc.health.v1.Health/Check` for `service` (`""`: the whole server).
/// An error, an unknown service or no answer within `timeout` is
/// [`HealthStatus::Unknown`]: a prober that cannot get an answer cannot
/// vouch for the server.
pub async fn check_health(channel: RpcChannel, service: &str, timeout: Duration) -> HealthStatus {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await;
    match answer {
        Ok(Ok(reply)) => match ServingStatus::try_from(reply.into_inner().status) {
            Ok(ServingStatus::Serving) => HealthStatus::Serving,
            Ok(ServingStatus::NotServing) => HealthStatus::NotServing,
            _ => HealthStatus::Unknown,
        },
        Ok(Err(_)) | Err(_) => HealthStatus::Unknown,
    }
}
