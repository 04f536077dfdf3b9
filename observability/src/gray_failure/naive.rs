//! The broken twin: monitoring by health check alone.

use super::core::{HealthStatus, Verdict};

/// "The load balancer's health check is green, so the service is up." The
/// health check asks the server about itself — over a different method,
/// often a different code path, from one prober — so it cannot see a
/// failure that only some callers, some methods or some network paths
/// suffer. During a gray failure this monitor stays green for as long as
/// the server can answer `Check`; it only ever sees failures that are
/// already black and white.
#[derive(Clone, Copy, Debug)]
pub struct NaiveHealthMonitor {
    health: HealthStatus,
}

impl Default for NaiveHealthMonitor {
    fn default() -> Self {
        Self {
            health: HealthStatus::Unknown,
        }
    }
}

impl NaiveHealthMonitor {
    /// What the health check answered last.
    pub fn set_health(&mut self, health: HealthStatus) {
        self.health = health;
    }

    /// Healthy exactly when the health check says SERVING.
    pub fn evaluate(&self) -> Verdict {
        match self.health {
            HealthStatus::Serving => Verdict::Healthy,
            other => Verdict::Down(other),
        }
    }
}
