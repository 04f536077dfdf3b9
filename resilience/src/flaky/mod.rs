//! `Flaky`: a gRPC backend that fails exactly as scripted.
//!
//! Episode: 12, "Chaos Engineering Principles" (the target of 37–42 and 8)
//! Pattern: testing / fault injection
//! Try it:  cargo run -- serve flaky --error-rate 0.2 --latency-ms 20 --capacity 4
//! Test it: cargo test -p resilience flaky
//!
//! Every resilience pattern is about a backend misbehaving; to teach them
//! the misbehaviour must be on cue. A script sets an error rate and codes,
//! a latency distribution, outage windows (measured from when the script
//! was installed), a capacity with a bounded queue — beyond it calls are
//! refused with `ResourceExhausted`, and while queued they wait, so
//! latency climbs with load exactly as Little's law says it must — and
//! per-call outcomes for the first calls. `Configure` swaps the script at
//! run time; `Stats` says what the backend saw, including the deadline
//! each call arrived with.
//!
//! A gray failure (Episode 11) fails only the callers it names — by the
//! [`CALLER_HEADER`] request header, or else the caller's IP address —
//! while the server's health service goes on answering SERVING: the
//! failure a health check cannot see ([`gray`]).
//!
//! With a downstream, a successful call is forwarded to the next Flaky
//! through the RPC stack, which carries the remaining deadline: the
//! two-hop setup deadline propagation is tested on.
//!
//! A scripted latency longer than the server's cap on unary calls (30 s by
//! default, `observability::rpc::limits`) ends at the cap with
//! `DeadlineExceeded`: the cap exists so that no call holds a server task
//! for an hour. To script a longer hang, raise the cap for
//! `/resilience.v1.Flaky/Call` with `RpcServer::route_max_duration`.

pub mod gray;
mod script;

pub use gray::{CALLER_HEADER, GrayFailure};
pub use script::{Behaviour, Decision};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use observability::rpc::{RpcChannel, deadline};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// Generated protobuf types and gRPC stubs for `resilience.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("resilience.v1");

    /// Encoded `FileDescriptorSet` of the protos, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

use proto::flaky_client::FlakyClient;
use proto::flaky_server::FlakyServer;
use proto::{CallReply, CallRequest, FlakyStats, Script, StatsRequest};

/// How many recent `grpc-timeout`s `Stats` reports.
const KEPT_DEADLINES: usize = 64;

#[derive(Debug)]
struct Installed {
    behaviour: Behaviour,
    since: Instant,
    slots: Arc<Semaphore>,
    /// Calls since this script was installed: a script's `per_call`
    /// outcomes are played from its own first call, not the backend's.
    calls: u64,
}

impl Installed {
    fn new(behaviour: Behaviour) -> Self {
        let slots = Arc::new(Semaphore::new(behaviour.capacity as usize));
        Self {
            behaviour,
            since: Instant::now(),
            slots,
            calls: 0,
        }
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    installed: Mutex<Installed>,
    rng: Mutex<SmallRng>,
    calls: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    gray_failed: AtomicU64,
    rejected: AtomicU64,
    waiting: AtomicU32,
    in_flight: AtomicU32,
    peak: AtomicU32,
    deadlines: Mutex<VecDeque<u64>>,
    downstream: Option<FlakyClient<RpcChannel>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and a script stay meaningful after a panicking holder.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scripted backend. Clones share one backend.
#[derive(Clone, Debug)]
pub struct Flaky {
    shared: Arc<Shared>,
}

/// Keeps `in_flight` honest even when a call is cancelled mid-sleep.
struct InService<'a>(&'a Shared);

impl Drop for InService<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Flaky {
    pub fn new(name: impl Into<String>, behaviour: Behaviour) -> Self {
        Self::build(name.into(), behaviour, None)
    }

    /// A Flaky that forwards every call it would have served to `next`.
    pub fn forwarding(name: impl Into<String>, behaviour: Behaviour, next: RpcChannel) -> Self {
        Self::build(name.into(), behaviour, Some(FlakyClient::new(next)))
    }

    fn build(
        name: String,
        behaviour: Behaviour,
        downstream: Option<FlakyClient<RpcChannel>>,
    ) -> Self {
        let rng = SmallRng::seed_from_u64(behaviour.seed);
        Self {
            shared: Arc::new(Shared {
                name,
                installed: Mutex::new(Installed::new(behaviour)),
                rng: Mutex::new(rng),
                calls: AtomicU64::new(0),
                served: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                gray_failed: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                waiting: AtomicU32::new(0),
                in_flight: AtomicU32::new(0),
                peak: AtomicU32::new(0),
                deadlines: Mutex::new(VecDeque::new()),
                downstream,
            }),
        }
    }

    pub fn into_service(self) -> FlakyServer<Self> {
        FlakyServer::new(self)
    }

    /// Installs a new script; its outage clock starts now.
    pub fn configure(&self, behaviour: Behaviour) {
        *lock(&self.shared.rng) = SmallRng::seed_from_u64(behaviour.seed);
        *lock(&self.shared.installed) = Installed::new(behaviour);
    }

    /// The name it was built with (its `backend` label in metrics).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn stats(&self) -> FlakyStats {
        let shared = &self.shared;
        FlakyStats {
            calls: shared.calls.load(Ordering::Acquire),
            served: shared.served.load(Ordering::Acquire),
            failed: shared.failed.load(Ordering::Acquire),
            rejected: shared.rejected.load(Ordering::Acquire),
            peak_concurrency: shared.peak.load(Ordering::Acquire),
            deadlines_micros: lock(&shared.deadlines).iter().copied().collect(),
            in_flight: shared.in_flight.load(Ordering::Acquire),
            gray_failed: shared.gray_failed.load(Ordering::Acquire),
        }
    }

    /// Waits for a capacity slot, or refuses when the queue is full too.
    async fn admit(
        &self,
        behaviour: &Behaviour,
        slots: Arc<Semaphore>,
    ) -> Result<Option<OwnedSemaphorePermit>, Status> {
        if behaviour.capacity == 0 {
            return Ok(None);
        }
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(Some(slot));
        }
        let shared = &self.shared;
        if shared.waiting.fetch_add(1, Ordering::AcqRel) >= behaviour.queue {
            shared.waiting.fetch_sub(1, Ordering::AcqRel);
            shared.rejected.fetch_add(1, Ordering::AcqRel);
            return Err(Status::resource_exhausted(format!(
                "{}: {} calls in service and {} queued",
                shared.name, behaviour.capacity, behaviour.queue
            )));
        }
        let slot = slots.acquire_owned().await;
        shared.waiting.fetch_sub(1, Ordering::AcqRel);
        // The semaphore is never closed while a script holds it.
        slot.map(Some)
            .map_err(|_| Status::unavailable("the backend is being reconfigured"))
    }
}

#[tonic::async_trait]
impl proto::flaky_server::Flaky for Flaky {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        let shared = &self.shared;
        shared.calls.fetch_add(1, Ordering::AcqRel);
        {
            let arrived_with =
                deadline::parse(request.metadata().as_ref()).map_or(0, |d| d.as_micros() as u64);
            let mut deadlines = lock(&shared.deadlines);
            if deadlines.len() == KEPT_DEADLINES {
                deadlines.pop_front();
            }
            deadlines.push_back(arrived_with);
        }
        let (behaviour, since, slots, index) = {
            let mut installed = lock(&shared.installed);
            let index = installed.calls;
            installed.calls += 1;
            (
                installed.behaviour.clone(),
                installed.since,
                installed.slots.clone(),
                index,
            )
        };
        let _slot = self.admit(&behaviour, slots).await?;
        let now_in_service = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        shared.peak.fetch_max(now_in_service, Ordering::AcqRel);
        let _in_service = InService(shared);

        // Only a gray-failure script needs to know who is calling.
        let caller = behaviour.gray.as_ref().and_then(|_| caller_of(&request));
        let decision = behaviour.decide_for(
            caller.as_deref(),
            index,
            since.elapsed(),
            &mut lock(&shared.rng),
        );
        // Pitfall: tokio rounds every timer up to the next millisecond, so
        // sleeping "zero" would add a millisecond to every instant call.
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        if let Err(code) = decision.outcome {
            shared.failed.fetch_add(1, Ordering::AcqRel);
            if decision.gray {
                shared.gray_failed.fetch_add(1, Ordering::AcqRel);
            }
            return Err(Status::new(
                code,
                format!("{}: scripted failure", shared.name),
            ));
        }
        let payload = request.into_inner().payload;
        let mut served_by = vec![shared.name.clone()];
        if let Some(next) = &shared.downstream {
            let reply = next
                .clone()
                .call(CallRequest {
                    payload: payload.clone(),
                })
                .await?
                .into_inner();
            served_by.extend(reply.served_by);
        }
        shared.served.fetch_add(1, Ordering::AcqRel);
        Ok(Response::new(CallReply {
            payload,
            call_index: index,
            served_by,
        }))
    }

    async fn configure(&self, request: Request<Script>) -> Result<Response<Script>, Status> {
        let behaviour = Behaviour::from_script(request.get_ref())?;
        let script = behaviour.to_script();
        tracing::info!(backend = %self.shared.name, ?script, "script installed");
        Flaky::configure(self, behaviour);
        Ok(Response::new(script))
    }

    async fn stats(&self, _request: Request<StatsRequest>) -> Result<Response<FlakyStats>, Status> {
        Ok(Response::new(Flaky::stats(self)))
    }
}

/// Who is calling: the [`CALLER_HEADER`], else the peer's IP address.
fn caller_of<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(CALLER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.remote_addr().map(|addr| addr.ip().to_string()))
}

#[cfg(test)]
mod tests;
