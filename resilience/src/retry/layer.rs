//! Retrying real tonic calls, as a tower layer on the channel.
//!
//! A tonic request is an `http::Request<Body>` whose body is a stream, so
//! it cannot simply be cloned and sent again. Two ways out: retry one
//! level up, where the prost message is `Clone` — which means one retry
//! helper per generated method — or buffer the encoded request and replay
//! the bytes. This layer buffers, as gRPC's own retry design does (gRFC A6):
//! it works for every method of every generated client, composes with the
//! other layers, and costs one copy of a request that is usually small.
//! Requests above `buffer_limit` are sent once, unbuffered.
//!
//! gRFC A6's rules are kept too:
//! - a call is *committed* once response headers without a status arrive
//!   (the server is answering); only trailers-only failures are retried;
//! - each attempt carries `grpc-previous-rpc-attempts`;
//! - every attempt gets the *remaining* deadline of the whole call (its
//!   own `grpc-timeout`, or the one the request being handled inherited),
//!   and a retry whose backoff would outlive that deadline is not sent.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use observability::rpc::deadline;
use observability::rpc::outcome::code_in;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tonic::Code;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use super::budget::RetryBudget;
use super::policy::{GiveUpReason, NextStep, RetryPolicy};
use crate::BoxError;
use crate::classify::code_of;
use crate::error::Result;

/// What a retry layer did, shared by its clones.
#[derive(Debug, Default)]
pub struct RetryStats {
    /// Calls handed to the layer.
    pub calls: AtomicU64,
    /// Attempts sent to the service behind it (calls + retries).
    pub attempts: AtomicU64,
    /// Retries refused because the budget was drained.
    pub budget_denied: AtomicU64,
    /// Retries not sent because the deadline would pass first.
    pub deadline_stopped: AtomicU64,
}

impl RetryStats {
    /// Attempts per call: 1.0 means no retries at all.
    pub fn amplification(&self) -> f64 {
        let calls = self.calls.load(Ordering::Relaxed);
        self.attempts.load(Ordering::Relaxed) as f64 / calls.max(1) as f64
    }
}

#[derive(Debug)]
struct Shared {
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    rng: Mutex<SmallRng>,
    stats: Arc<RetryStats>,
}

/// Retries failed calls according to a [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl RetryLayer {
    /// Builds the layer, refusing an invalid policy.
    pub fn new(policy: RetryPolicy) -> Result<Self> {
        policy.validate()?;
        let budget = policy
            .budget
            .map(|b| RetryBudget::new(b.max_tokens, b.token_ratio))
            .transpose()?;
        Ok(Self {
            shared: Arc::new(Shared {
                rng: Mutex::new(SmallRng::seed_from_u64(policy.seed)),
                policy,
                budget,
                stats: Arc::default(),
            }),
        })
    }

    pub fn stats(&self) -> Arc<RetryStats> {
        self.shared.stats.clone()
    }

    /// Tokens left in the budget, if there is one.
    pub fn budget_tokens(&self) -> Option<f64> {
        self.shared.budget.as_ref().map(RetryBudget::tokens)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A service whose failed calls are retried.
#[derive(Clone, Debug)]
pub struct RetryService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: NamedService> NamedService for RetryService<S> {
    const NAME: &'static str = S::NAME;
}

type TonicBody = tonic::body::Body;

impl<S, ResBody> Service<http::Request<TonicBody>> for RetryService<S>
where
    S: Service<http::Request<TonicBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<TonicBody>) -> Self::Future {
        // Attempts after the first need a ready service of their own; the
        // instance polled ready serves the first.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(retry(inner, self.shared.clone(), request))
    }
}

async fn retry<S, ResBody>(
    mut inner: S,
    shared: Arc<Shared>,
    request: http::Request<TonicBody>,
) -> Result<http::Response<ResBody>, BoxError>
where
    S: Service<http::Request<TonicBody>, Response = http::Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
{
    let policy = &shared.policy;
    let stats = &shared.stats;
    stats.calls.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let own = deadline::parse(request.headers()).map(|timeout| started + timeout);
    let call_deadline = match (own, deadline::current()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let (parts, body) = request.into_parts();

    let replayable = policy.max_attempts > 1 && policy.idempotency.allows(parts.uri.path());
    let bytes = match replayable {
        true => match buffer(body, policy.buffer_limit).await? {
            Buffered::Whole(bytes) => bytes,
            Buffered::TooLarge(body) => {
                return send_once(inner, stats, http::Request::from_parts(parts, body)).await;
            }
        },
        false => return send_once(inner, stats, http::Request::from_parts(parts, body)).await,
    };

    let mut previous_delay = policy.backoff.initial;
    let mut attempt = 1u32;
    loop {
        let mut attempt_request =
            http::Request::new(TonicBody::new(http_body_util::Full::new(bytes.clone())));
        *attempt_request.method_mut() = parts.method.clone();
        *attempt_request.uri_mut() = parts.uri.clone();
        *attempt_request.version_mut() = parts.version;
        *attempt_request.headers_mut() = parts.headers.clone();
        *attempt_request.extensions_mut() = parts.extensions.clone();
        if attempt > 1 {
            attempt_request.headers_mut().insert(
                "grpc-previous-rpc-attempts",
                http::HeaderValue::from(attempt - 1),
            );
        }
        if let Some(deadline_at) = call_deadline {
            deadline::set(
                attempt_request.headers_mut(),
                deadline_at.saturating_duration_since(Instant::now()),
            );
        }

        std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let result = inner.call(attempt_request).await.map_err(Into::into);
        let code = match &result {
            // Headers without a status: the server is answering. Committed.
            Ok(response) => code_in(response.headers()).unwrap_or(Code::Ok),
            Err(err) => code_of(err.as_ref()),
        };
        let remaining =
            call_deadline.map(|deadline_at| deadline_at.saturating_duration_since(Instant::now()));
        let step = {
            let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
            policy.next_step(
                code,
                attempt,
                previous_delay,
                shared.budget.as_ref(),
                remaining,
                &mut *rng,
            )
        };
        let delay = match step {
            NextStep::RetryAfter(delay) => delay,
            NextStep::Finish => return result,
            NextStep::GiveUp(reason) => {
                match reason {
                    GiveUpReason::BudgetDrained => {
                        stats.budget_denied.fetch_add(1, Ordering::Relaxed)
                    }
                    GiveUpReason::DeadlineTooClose => {
                        stats.deadline_stopped.fetch_add(1, Ordering::Relaxed)
                    }
                    GiveUpReason::AttemptsExhausted => 0,
                };
                return result;
            }
        };
        previous_delay = delay;
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn send_once<S, ResBody>(
    mut inner: S,
    stats: &RetryStats,
    request: http::Request<TonicBody>,
) -> Result<http::Response<ResBody>, BoxError>
where
    S: Service<http::Request<TonicBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    stats.attempts.fetch_add(1, Ordering::Relaxed);
    inner.call(request).await.map_err(Into::into)
}

enum Buffered {
    Whole(Bytes),
    /// Over the limit: what was read so far, then the rest, unbuffered.
    TooLarge(TonicBody),
}

/// Reads the request body into memory, up to `limit` bytes.
async fn buffer(mut body: TonicBody, limit: usize) -> Result<Buffered, BoxError> {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| Box::new(err) as BoxError)?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
            if collected.len() > limit {
                return Ok(Buffered::TooLarge(TonicBody::new(Prefixed {
                    prefix: Some(collected.freeze()),
                    rest: body,
                })));
            }
        }
    }
    Ok(Buffered::Whole(collected.freeze()))
}

/// A body that yields `prefix`, then whatever `rest` still holds.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: TonicBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}
