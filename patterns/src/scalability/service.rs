//! `Contended`: a real gRPC service whose calls share one lock, with a
//! contention cost and a coherency cost you set when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use super::model::{Costs, MAX_WORKERS};

/// Generated protobuf types and gRPC stubs for `patterns.scalability.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("patterns.scalability.v1");

    /// Encoded `FileDescriptorSet` of the crate's protos, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

use proto::contended_server::ContendedServer;
use proto::{WorkReply, WorkRequest};

/// The service: every call waits `parallel`, then takes the one lock and
/// holds it for [`Costs::hold`] of the calls in flight at that moment.
#[derive(Clone, Debug)]
pub struct Contended {
    costs: Costs,
    // tokio's mutex is FIFO-fair: callers queue for it in arrival order,
    // as the law's contention term assumes, and wait without a thread.
    lock: Arc<Mutex<()>>,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a call in flight until it is dropped, so a caller that gives up
/// mid-call (its future dropped) still leaves the count right.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Contended {
    pub fn new(costs: Costs) -> Self {
        Self {
            costs,
            lock: Arc::new(Mutex::new(())),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn costs(&self) -> Costs {
        self.costs
    }

    pub fn into_service(self) -> ContendedServer<Self> {
        ContendedServer::new(self)
    }

    /// One call's work; returns the calls in flight it saw and its hold.
    pub async fn work(&self) -> Result<WorkReply, Status> {
        let guard = InFlight(self.in_flight.clone());
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_WORKERS {
            return Err(Status::resource_exhausted(format!(
                "more than {MAX_WORKERS} calls in flight"
            )));
        }
        // The parallel part: nothing shared, so it overlaps with every
        // other call, like waiting on a disk or a downstream service.
        if !self.costs.parallel.is_zero() {
            tokio::time::sleep(self.costs.parallel).await;
        }
        let _held = self.lock.lock().await;
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        let hold = self.costs.hold(in_flight);
        busy_for(hold);
        drop(guard);
        Ok(WorkReply {
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
            hold_us: u64::try_from(hold.as_micros()).unwrap_or(u64::MAX),
        })
    }
}

/// Burns the CPU for `duration` of wall-clock time.
///
/// The critical section is work, not waiting: a real one computes while
/// it holds the lock. tokio's timer could not stand in for it either — it
/// ticks in whole milliseconds, so a 300 µs hold would last a millisecond.
/// Pitfall: this deliberately reads `std::time::Instant`, not tokio's
/// clock. CPU work takes real time whatever clock the runtime keeps; with
/// tokio's clock paused, a spin on it would never end. Bounded: at most
/// [`super::model::MAX_HOLD`] per call, on one worker thread at a time
/// (the lock admits one).
fn busy_for(duration: std::time::Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

#[tonic::async_trait]
impl proto::contended_server::Contended for Contended {
    async fn work(&self, _request: Request<WorkRequest>) -> Result<Response<WorkReply>, Status> {
        Ok(Response::new(Contended::work(self).await?))
    }
}
