//! Callers of a Flaky backend reporting what they see, and a detector
//! comparing that with the health check — the driver the gray-failure
//! demo and tests share.

use std::time::Duration;

use futures_util::future::join_all;
use observability::gray_failure::{
    Counts, GrayError, GrayFailureDetector, HealthStatus, NaiveHealthMonitor, Verdict, check_health,
};
use observability::rpc::RpcChannel;
use tonic::Request;
use tonic::metadata::MetadataValue;

use crate::flaky::CALLER_HEADER;
use crate::flaky::proto::CallRequest;
use crate::flaky::proto::flaky_client::FlakyClient;

/// How many callers share the backend.
pub const CALLERS: usize = 10;
/// Every caller calls once per round: 10 calls a second each, 100 in the
/// detector's 10-second window — enough that a caller losing half its
/// calls stands out from a 1 % background at every look, not only on
/// lucky ones.
pub const ROUND: Duration = Duration::from_millis(100);
/// The detector looks (and the health check is asked) once a second.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// What Flaky's health is asked about.
pub const FLAKY_SERVICE: &str = "resilience.v1.Flaky";
/// How long a health check may take before it counts as no answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// The RED label the detector groups calls by.
const METHOD: &str = "resilience.v1.Flaky/Call";

/// Caller `i`'s name, as sent in the `dslab-caller` header: the callers
/// are the web servers of a front end.
pub fn caller(i: usize) -> String {
    format!("web-{i:02}")
}

/// One look: what the health check said and what each monitor concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Simulated time since the run started.
    pub at: Duration,
    pub health: HealthStatus,
    pub detector: Verdict,
    pub health_only: Verdict,
}

/// The two monitors watching the callers: the differential detector and
/// its health-check-only twin.
#[derive(Debug)]
pub struct Monitors {
    pub detector: GrayFailureDetector,
    pub health_only: NaiveHealthMonitor,
    /// What each caller saw, over the whole run.
    pub seen: [Counts; CALLERS],
}

impl Monitors {
    pub fn new(detector: GrayFailureDetector) -> Self {
        Self {
            detector,
            health_only: NaiveHealthMonitor::default(),
            seen: [Counts::default(); CALLERS],
        }
    }

    /// Runs the callers from `from` until `until` (simulated time, one
    /// [`ROUND`] per step, every caller's call of a round at once),
    /// reporting each outcome; once a second asks the health service over
    /// `health` and lets both monitors judge.
    pub async fn run(
        &mut self,
        client: &FlakyClient<RpcChannel>,
        health: &RpcChannel,
        from: Duration,
        until: Duration,
    ) -> Result<Vec<Observation>, GrayError> {
        let names: Vec<String> = (0..CALLERS).map(caller).collect();
        let mut observations = Vec::new();
        let mut at = from;
        while at < until {
            at += ROUND;
            let calls = names.iter().map(|name| {
                let mut client = client.clone();
                let mut request = Request::new(CallRequest::default());
                if let Ok(value) = MetadataValue::try_from(name.as_str()) {
                    request.metadata_mut().insert(CALLER_HEADER, value);
                }
                async move { client.call(request).await.is_err() }
            });
            for (i, failed) in join_all(calls).await.into_iter().enumerate() {
                self.detector.report(at, &names[i], METHOD, failed)?;
                self.seen[i].calls += 1;
                self.seen[i].failures += u64::from(failed);
            }
            if at.as_millis().is_multiple_of(EVALUATE_EVERY.as_millis()) {
                let status = check_health(health.clone(), FLAKY_SERVICE, HEALTH_TIMEOUT).await;
                self.detector.set_health(status);
                self.health_only.set_health(status);
                observations.push(Observation {
                    at,
                    health: status,
                    detector: self.detector.evaluate(at),
                    health_only: self.health_only.evaluate(),
                });
            }
        }
        Ok(observations)
    }
}

/// The callers a verdict names as failing, by name, in name order.
pub fn suspected_callers(verdict: &Verdict) -> Vec<String> {
    match verdict {
        Verdict::GrayFailure(suspects) => suspects
            .iter()
            .filter(|s| s.dimension == observability::gray_failure::Dimension::Observer)
            .map(|s| s.key.clone())
            .collect(),
        Verdict::Healthy | Verdict::Down(_) => Vec::new(),
    }
}
