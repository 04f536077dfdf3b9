//! The batcher: callers hand it single items, a worker groups them into
//! batches and sends each batch downstream in one call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tonic::Status;

/// The largest batch a batcher may be configured for.
pub const MAX_BATCH: usize = 4_096;
/// The longest queue a batcher may be configured for.
pub const MAX_QUEUE: usize = 65_536;
/// The longest linger a batcher may be configured for.
pub const MAX_LINGER: Duration = Duration::from_secs(10);
/// The most batches a batcher may be configured to have in flight.
pub const MAX_IN_FLIGHT: usize = 256;

/// How items are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// A batch is sent as soon as it holds this many items...
    pub max_batch: usize,
    /// ...or this long after the worker took its first item, whichever
    /// is first. Zero sends whatever is already queued, without waiting.
    /// Pitfall: tokio's timer ticks in whole milliseconds, so a linger of
    /// 200 µs waits up to a millisecond.
    pub linger: Duration,
    /// Items waiting for a batch; beyond it, callers are refused.
    pub queue: usize,
    /// Batches sent downstream at once. While all are busy, items keep
    /// queueing, so batches grow exactly when the downstream is slow.
    pub in_flight: usize,
}

impl BatchConfig {
    pub fn new(max_batch: usize, linger: Duration) -> Self {
        Self {
            max_batch,
            linger,
            queue: 1_024,
            in_flight: 1,
        }
    }

    pub fn validate(&self) -> Result<(), BatchError> {
        let bad = |reason: String| Err(BatchError::InvalidConfig { reason });
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return bad(format!(
                "max_batch {} is outside 1..={MAX_BATCH}",
                self.max_batch
            ));
        }
        if !(1..=MAX_QUEUE).contains(&self.queue) {
            return bad(format!("queue {} is outside 1..={MAX_QUEUE}", self.queue));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.in_flight) {
            return bad(format!(
                "in_flight {} is outside 1..={MAX_IN_FLIGHT}",
                self.in_flight
            ));
        }
        if self.linger > MAX_LINGER {
            return bad(format!("linger {:?} exceeds {MAX_LINGER:?}", self.linger));
        }
        Ok(())
    }
}

/// Why an item was not processed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BatchError {
    /// A local refusal: the queue is full. Nothing was sent; back off.
    #[error("batch queue full ({capacity} items waiting)")]
    QueueFull { capacity: usize },
    /// The batcher's worker has stopped (its runtime shut down).
    #[error("the batcher has stopped")]
    Closed,
    #[error("invalid batch configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The downstream call failed; every item of the batch gets its status.
    #[error("the batch failed downstream: {0}")]
    Downstream(Status),
    /// The downstream answered a different number of results than items.
    #[error("the downstream answered {got} results for {sent} items")]
    ResultCount { sent: usize, got: usize },
}

impl From<BatchError> for Status {
    fn from(err: BatchError) -> Self {
        let message = err.to_string();
        match err {
            BatchError::QueueFull { .. } => Status::resource_exhausted(message),
            BatchError::Closed => Status::unavailable(message),
            BatchError::InvalidConfig { .. } => Status::invalid_argument(message),
            BatchError::Downstream(status) => status,
            BatchError::ResultCount { .. } => Status::internal(message),
        }
    }
}

type Reply<R> = oneshot::Sender<Result<R, BatchError>>;

/// A handle to a batcher; clones share the queue and the worker.
#[derive(Debug)]
pub struct Batcher<T, R> {
    tx: mpsc::Sender<(T, Reply<R>)>,
    capacity: usize,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            capacity: self.capacity,
        }
    }
}

/// An item accepted into the queue; await it for its result.
#[derive(Debug)]
pub struct Pending<R>(oneshot::Receiver<Result<R, BatchError>>);

impl<R> Future for Pending<R> {
    type Output = Result<R, BatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|reply| reply.unwrap_or(Err(BatchError::Closed)))
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the worker on the current tokio runtime. `send` is called
    /// once per batch, with the items in the order they were enqueued,
    /// and must answer one result per item, in the same order.
    pub fn spawn<F, Fut>(config: BatchConfig, send: F) -> Result<Self, BatchError>
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, Status>> + Send + 'static,
    {
        config.validate()?;
        let (tx, rx) = mpsc::channel(config.queue);
        tokio::spawn(run(config, rx, send));
        Ok(Self {
            tx,
            capacity: config.queue,
        })
    }

    /// Queues `item` without waiting, or refuses it at once when the queue
    /// is full: a bounded queue turns overload into a fast, typed refusal
    /// instead of unbounded memory and latency.
    pub fn enqueue(&self, item: T) -> Result<Pending<R>, BatchError> {
        let (reply, pending) = oneshot::channel();
        self.tx.try_send((item, reply)).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => BatchError::QueueFull {
                capacity: self.capacity,
            },
            mpsc::error::TrySendError::Closed(_) => BatchError::Closed,
        })?;
        Ok(Pending(pending))
    }

    /// Queues `item` and waits for its result.
    pub async fn submit(&self, item: T) -> Result<R, BatchError> {
        self.enqueue(item)?.await
    }
}

/// The worker: form a batch, send it, repeat until every handle is gone.
async fn run<T, R, F, Fut>(config: BatchConfig, mut rx: mpsc::Receiver<(T, Reply<R>)>, mut send: F)
where
    T: Send + 'static,
    R: Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<R>, Status>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(config.in_flight));
    loop {
        // Wait for a free slot *before* forming the batch: while the
        // downstream is busy, items accumulate in the queue and the next
        // batch leaves fuller.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let deadline = Instant::now() + config.linger;
        let mut batch = vec![first];
        while batch.len() < config.max_batch {
            tokio::select! {
                // Biased: an item already queued joins the batch even when
                // the linger has run out (a zero linger still batches what
                // arrived meanwhile).
                biased;
                next = rx.recv() => match next {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let (items, replies): (Vec<T>, Vec<Reply<R>>) = batch.into_iter().unzip();
        // The call is made here, in batch order, before the next batch is
        // formed; only its completion runs on its own task.
        let call = send(items);
        tokio::spawn(async move {
            deliver(call.await, replies);
            drop(slot);
        });
    }
}

fn deliver<R>(results: Result<Vec<R>, Status>, replies: Vec<Reply<R>>) {
    let sent = replies.len();
    match results {
        Ok(results) if results.len() == sent => {
            for (reply, result) in replies.into_iter().zip(results) {
                // A caller that gave up dropped its receiver; nothing to do.
                let _ = reply.send(Ok(result));
            }
        }
        Ok(results) => {
            let got = results.len();
            for reply in replies {
                let _ = reply.send(Err(BatchError::ResultCount { sent, got }));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(BatchError::Downstream(status.clone())));
            }
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> tower_service::Service<T> for Batcher<T, R> {
    type Response = R;
    type Error = BatchError;
    type Future = Pending<R>;

    /// Always ready: a full queue is a refusal at call time, like load
    /// shedding, not back-pressure that would stall the caller.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BatchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, item: T) -> Pending<R> {
        match self.enqueue(item) {
            Ok(pending) => pending,
            Err(err) => {
                let (reply, pending) = oneshot::channel();
                let _ = reply.send(Err(err));
                Pending(pending)
            }
        }
    }
}
