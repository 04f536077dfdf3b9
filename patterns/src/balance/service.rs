//! [`Balance`]: a tower `Service` that spreads requests over a set of
//! inner services with a [`Pick`] policy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tonic::Status;
use tower::discover::Change;
use tower_service::Service;

use super::core::{LoadView, Pick};
use super::load::{InFlight, Load, LoadConfig};
use super::{MAX_ENDPOINTS, MAX_WEIGHT};
use crate::{Error, Result};

/// What the balancer's service errors are: the inner service's error, or
/// a `tonic::Status` of its own (no endpoints at all: `UNAVAILABLE`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One member of the set: a name, the service that reaches it, its load.
#[derive(Debug)]
pub struct Endpoint<S> {
    name: String,
    service: S,
    load: Load,
}

impl<S> Endpoint<S> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn load(&self) -> &Load {
        &self.load
    }
}

impl<S> LoadView for Endpoint<S> {
    fn outstanding(&self) -> u32 {
        self.load.outstanding()
    }
    fn weight(&self) -> u32 {
        self.load.weight()
    }
    fn rtt_nanos(&self, now: Instant) -> f64 {
        self.load.rtt_nanos(now)
    }
}

/// A load balancer over services of type `S` (tonic `Channel`s, an
/// `RpcChannel` per backend, or any `Service`), choosing with `P`.
///
/// Ready-aware: every poll asks each endpoint whether it can take a
/// request, and the policy chooses among those that can; an endpoint
/// whose readiness *fails* is evicted, as tower's balancer does (a broken
/// channel does not heal by being asked again). With no endpoints at all,
/// `poll_ready` fails with `UNAVAILABLE` — never a panic, never a hang.
///
/// Like tower's balancers it takes `&mut self`; share it between tasks
/// with `tower::buffer::Buffer`.
///
/// Simplified: every `poll_ready` polls every endpoint, O(N) per request.
/// tower's `ReadyCache` keeps the ready ones aside and re-polls only the
/// chosen one — worth it for hundreds of endpoints, not for ten.
#[derive(Debug)]
pub struct Balance<P, S> {
    policy: P,
    config: LoadConfig,
    endpoints: Vec<Endpoint<S>>,
    /// Scratch: indices ready at the last poll, ascending.
    ready: Vec<usize>,
    chosen: Option<usize>,
}

impl<P: Pick, S> Balance<P, S> {
    pub fn new(policy: P, config: LoadConfig) -> Self {
        Self {
            policy,
            config,
            endpoints: Vec::new(),
            ready: Vec::new(),
            chosen: None,
        }
    }

    /// A balancer over `services`, named `n1`, `n2`, … in order, weight 1.
    pub fn from_services(
        policy: P,
        config: LoadConfig,
        services: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let mut balance = Self::new(policy, config);
        for (i, service) in services.into_iter().enumerate() {
            balance.insert(format!("n{}", i + 1), service, 1)?;
        }
        Ok(balance)
    }

    /// Adds an endpoint. Names are unique; weights are in `1..=MAX_WEIGHT`;
    /// at most [`MAX_ENDPOINTS`] endpoints.
    pub fn insert(&mut self, name: impl Into<String>, service: S, weight: u32) -> Result<()> {
        let name = name.into();
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(Error::InvalidWeight {
                weight,
                max: MAX_WEIGHT,
            });
        }
        if self.endpoints.iter().any(|e| e.name == name) {
            return Err(Error::NodeExists { node: name });
        }
        if self.endpoints.len() >= MAX_ENDPOINTS {
            return Err(Error::CapacityExceeded {
                what: "balancer endpoints",
                limit: MAX_ENDPOINTS as u64,
            });
        }
        let load = Load::new(weight, self.config, Instant::now());
        self.endpoints.push(Endpoint {
            name,
            service,
            load,
        });
        self.membership_changed();
        Ok(())
    }

    /// Removes an endpoint; requests already sent to it finish normally.
    pub fn remove(&mut self, name: &str) -> Result<S> {
        let at = self
            .endpoints
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| Error::UnknownNode {
                node: name.to_owned(),
            })?;
        let removed = self.endpoints.remove(at);
        self.membership_changed();
        Ok(removed.service)
    }

    /// Applies one change from a tower `Discover` stream (weight 1).
    pub fn apply(&mut self, change: Change<String, S>) -> Result<()> {
        match change {
            Change::Insert(name, service) => {
                // A rediscovered endpoint replaces the old one.
                let _ = self.remove(&name);
                self.insert(name, service, 1)
            }
            Change::Remove(name) => self.remove(&name).map(drop),
        }
    }

    pub fn endpoints(&self) -> &[Endpoint<S>] {
        &self.endpoints
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    fn membership_changed(&mut self) {
        // Indices moved: a choice made before the change may name another
        // endpoint now, so the caller must poll again.
        self.chosen = None;
        self.policy.reset();
    }
}

impl<P, S, Request> Service<Request> for Balance<P, S>
where
    P: Pick,
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.chosen.is_some() {
            return Poll::Ready(Ok(()));
        }
        let mut last_failure = None;
        self.ready.clear();
        let mut i = 0;
        while i < self.endpoints.len() {
            match self.endpoints[i].service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    self.ready.push(i);
                    i += 1;
                }
                Poll::Pending => i += 1,
                Poll::Ready(Err(err)) => {
                    let gone = self.endpoints.remove(i);
                    let err: BoxError = err.into();
                    tracing::warn!(endpoint = %gone.name, %err, "endpoint failed; evicted");
                    last_failure = Some(format!("{}: {err}", gone.name));
                    // Indices after `i` moved down; readiness found so far
                    // is for indices below `i` and still holds.
                    self.policy.reset();
                }
            }
        }
        if self.endpoints.is_empty() {
            let mut status = Status::from(Error::NoEndpoints);
            if let Some(failure) = last_failure {
                status = Status::unavailable(format!("{}; last: {failure}", status.message()));
            }
            return Poll::Ready(Err(status.into()));
        }
        match self
            .policy
            .pick(&self.endpoints, &self.ready, Instant::now())
        {
            Some(chosen) => {
                self.chosen = Some(chosen);
                Poll::Ready(Ok(()))
            }
            // Every endpoint is busy: each pending one registered `cx`.
            None => Poll::Pending,
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(endpoint) = self.chosen.take().and_then(|i| self.endpoints.get_mut(i)) else {
            return ResponseFuture::refused(Status::failed_precondition(
                "Balance::call before poll_ready returned Ready",
            ));
        };
        let in_flight = endpoint.load.start(Instant::now());
        ResponseFuture {
            inner: Some(endpoint.service.call(request)),
            in_flight: Some(in_flight),
            refusal: None,
        }
    }
}

pin_project! {
    /// The chosen endpoint's response; on completion it records the round
    /// trip, and when dropped it ends the request's outstanding count.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        in_flight: Option<InFlight>,
        refusal: Option<Status>,
    }
}

impl<F> ResponseFuture<F> {
    fn refused(status: Status) -> Self {
        Self {
            inner: None,
            in_flight: None,
            refusal: Some(status),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = std::result::Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let status = this
                .refusal
                .take()
                .unwrap_or_else(|| Status::internal("response polled after completion"));
            return Poll::Ready(Err(status.into()));
        };
        let output = ready!(inner.poll(cx));
        if let Some(in_flight) = this.in_flight.take() {
            in_flight.complete(Instant::now());
        }
        Poll::Ready(output.map_err(Into::into))
    }
}
