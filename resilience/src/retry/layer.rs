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
//! - the budget counts every call's *final* status: a committed stream
//!   that ends `Unavailable` costs a token like any other failure;
//! - a server's `grpc-retry-pushback-ms` replaces the backoff (a negative
//!   or unreadable value means "do not retry");
//! - each attempt carries `grpc-previous-rpc-attempts`;
//! - every attempt gets the *remaining* deadline of the whole call (its
//!   own `grpc-timeout`, or the one the request being handled inherited),
//!   and a retry whose backoff would outlive that deadline is not sent;
//! - a streaming request is never held back: the layer buffers only what
//!   the request body has ready, and a body that is still waiting for
//!   the caller's next message is passed through at once, unretried.
//!
//! Refusals made by layers below this one in the same process (an open
//! breaker, a full bulkhead: see
//! [`LocalRefusal`](observability::rpc::outcome::LocalRefusal)) are
//! returned as they are: retrying them only adds load to this process,
//! and they say nothing about the backend, so they cost no budget.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http_body::{Body, Frame};
use observability::rpc::deadline;
use observability::rpc::outcome::{ObservedBody, StatusSink, code_in, local_refusal_of, observe};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tonic::Code;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use super::budget::RetryBudget;
use super::policy::{GiveUpReason, NextStep, Pushback, RetryPolicy};
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

/// Counts a committed call's final status in the budget when it arrives.
#[derive(Debug)]
pub struct BudgetAccount {
    shared: Arc<Shared>,
}

impl StatusSink for BudgetAccount {
    fn finish(self, code: Code, _message: &str) {
        self.shared
            .policy
            .account(code, self.shared.budget.as_ref());
    }
}

impl<S, ResBody> Service<http::Request<TonicBody>> for RetryService<S>
where
    S: Service<http::Request<TonicBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<ObservedBody<ResBody, BudgetAccount>>;
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

/// How an attempt's response leaves the layer: counted in the budget when
/// its final status arrives, unless that was done already.
fn deliver<B>(
    response: http::Response<B>,
    shared: &Arc<Shared>,
    accounted: bool,
) -> http::Response<ObservedBody<B, BudgetAccount>> {
    if accounted || local_refusal_of(&response).is_some() {
        return response.map(ObservedBody::finished);
    }
    let account = BudgetAccount {
        shared: shared.clone(),
    };
    observe(response, account, None)
}

async fn retry<S, ResBody>(
    mut inner: S,
    shared: Arc<Shared>,
    request: http::Request<TonicBody>,
) -> Result<http::Response<ObservedBody<ResBody, BudgetAccount>>, BoxError>
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
            Buffered::PassThrough(body) => {
                let response =
                    send_once(inner, stats, http::Request::from_parts(parts, body)).await?;
                return Ok(deliver(response, &shared, false));
            }
        },
        false => {
            let response = send_once(inner, stats, http::Request::from_parts(parts, body)).await?;
            return Ok(deliver(response, &shared, false));
        }
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
        let (code, pushback) = match &result {
            // Refused in this process: not the backend's answer.
            Ok(response) if local_refusal_of(response).is_some() => {
                return result.map(|response| deliver(response, &shared, true));
            }
            // Headers without a status: the server is answering. The call
            // is committed; its status (and its cost) comes with the trailers.
            Ok(response) if code_in(response.headers()).is_none() => {
                return result.map(|response| deliver(response, &shared, false));
            }
            Ok(response) => (
                code_in(response.headers()).unwrap_or(Code::Unknown),
                Pushback::from_headers(response.headers()),
            ),
            Err(err) => (code_of(err.as_ref()), None),
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
                pushback,
                &mut *rng,
            )
        };
        let delay = match step {
            NextStep::RetryAfter(delay) => delay,
            NextStep::Finish => return result.map(|response| deliver(response, &shared, true)),
            NextStep::GiveUp(reason) => {
                match reason {
                    GiveUpReason::BudgetDrained => {
                        stats.budget_denied.fetch_add(1, Ordering::Relaxed)
                    }
                    GiveUpReason::DeadlineTooClose => {
                        stats.deadline_stopped.fetch_add(1, Ordering::Relaxed)
                    }
                    GiveUpReason::AttemptsExhausted | GiveUpReason::ServerPushback => 0,
                };
                return result.map(|response| deliver(response, &shared, true));
            }
        };
        // After a pushback, backoff starts over from its initial delay.
        previous_delay = match pushback {
            Some(Pushback::After(_)) => policy.backoff.initial,
            _ => delay,
        };
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
    /// The whole request, ready to replay.
    Whole(Bytes),
    /// What was read so far, then the rest of the body: a request over
    /// the buffer limit, or a stream still waiting for its next message.
    PassThrough(TonicBody),
}

/// Reads the request body while it has data ready, up to `limit` bytes.
///
/// Pitfall: awaiting the end of a client stream before sending anything
/// deadlocks a bidirectional call — the caller waits for a response
/// before sending more, the layer waits for more before sending. So the
/// body is read only while frames are ready; a unary request (one
/// message, then the end) is ready all at once, and anything that makes
/// the layer wait goes through unbuffered.
async fn buffer(mut body: TonicBody, limit: usize) -> Result<Buffered, BoxError> {
    let mut collected = BytesMut::new();
    loop {
        let frame = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending => Poll::Ready(None),
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        match frame {
            // The stream has nothing ready yet: it is a live stream.
            None => break,
            Some(None) => return Ok(Buffered::Whole(collected.freeze())),
            Some(Some(frame)) => {
                let frame = frame.map_err(|err| Box::new(err) as BoxError)?;
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data);
                    if collected.len() > limit {
                        break;
                    }
                }
            }
        }
    }
    Ok(Buffered::PassThrough(TonicBody::new(Prefixed {
        prefix: Some(collected.freeze()),
        rest: body,
    })))
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
        if let Some(prefix) = self.prefix.take().filter(|bytes| !bytes.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(Bytes::is_empty) && self.rest.is_end_stream()
    }
}
