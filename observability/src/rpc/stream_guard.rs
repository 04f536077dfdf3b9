//! Time limits on a call's response as it streams out of a server.
//!
//! tonic ends a *handler* at the deadline, but a streaming handler returns
//! (once it has what it needs of the request; the server layer holds it to
//! the same limits until then) and leaves a stream behind; nothing then stops that stream from
//! running past the caller's deadline, or from sitting silent forever
//! while it holds a task, buffers and a slot in the connection. The
//! [`StreamGuard`] wraps every response body a server sends:
//!
//! - past the call's deadline it ends the stream with `DeadlineExceeded`;
//! - when neither side has sent a message for the route's idle timeout,
//!   it ends the stream with `Cancelled`;
//! - it makes the status in the trailers fit to send (see
//!   [`super::limits::sanitize_status`]).
//!
//! Ending means sending trailers, as a well-behaved server does, not
//! resetting the stream: the client reads a precise status.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::Status;

use super::limits::sanitize_status;

/// When a call last moved a message, in either direction.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    last_nanos: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_nanos: AtomicU64::new(0),
        })
    }

    /// Something moved now.
    pub fn touch(&self) {
        let nanos = self.origin.elapsed().as_nanos() as u64;
        self.last_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `timeout`.
    pub async fn silent_for(&self, timeout: Duration) {
        loop {
            let quiet_until = self.last() + timeout;
            if Instant::now() >= quiet_until {
                return;
            }
            tokio::time::sleep_until(quiet_until).await;
        }
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed))
    }
}

/// An idle limit: the shared activity and a timer to check it.
struct Idle {
    timeout: Duration,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
}

pin_project! {
    /// A server's response body, ended on time.
    pub struct StreamGuard<B> {
        #[pin]
        inner: B,
        deadline: Option<Pin<Box<Sleep>>>,
        idle: Option<Idle>,
        ended: bool,
    }
}

impl<B> StreamGuard<B> {
    /// Guards `inner`: `deadline` for the whole call (streams only — a
    /// unary call is capped before its response exists), and an idle
    /// limit over `activity`, which the request body also touches.
    pub fn new(
        inner: B,
        deadline: Option<Instant>,
        idle: Option<(Duration, Arc<Activity>)>,
    ) -> Self {
        Self {
            inner,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            idle: idle.map(|(timeout, activity)| {
                activity.touch();
                Idle {
                    timeout,
                    timer: Box::pin(tokio::time::sleep(timeout)),
                    activity,
                }
            }),
            ended: false,
        }
    }
}

/// The trailers that end a stream with `status`.
fn ending(status: &Status) -> Frame<bytes::Bytes> {
    let mut trailers = HeaderMap::new();
    // Every message can be percent-encoded.
    let _ = status.add_header(&mut trailers);
    Frame::trailers(trailers)
}

impl<B> Body for StreamGuard<B>
where
    B: Body<Data = bytes::Bytes>,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(polled) = this.inner.poll_frame(cx) {
            match &polled {
                Some(Ok(_)) => {
                    if let Some(idle) = this.idle.as_ref() {
                        idle.activity.touch();
                    }
                }
                Some(Err(_)) | None => *this.ended = true,
            }
            return Poll::Ready(polled.map(|frame| {
                frame.map(|mut frame| {
                    if let Some(trailers) = frame.trailers_mut() {
                        sanitize_status(trailers);
                    }
                    frame
                })
            }));
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            *this.ended = true;
            let status = Status::deadline_exceeded("the call's deadline passed while streaming");
            return Poll::Ready(Some(Ok(ending(&status))));
        }
        if let Some(idle) = this.idle.as_mut() {
            // The timer may fire early: activity since it was set (from
            // either direction) pushes the check out again.
            while idle.timer.as_mut().poll(cx).is_ready() {
                let quiet_until = idle.activity.last() + idle.timeout;
                if Instant::now() >= quiet_until {
                    *this.ended = true;
                    let status = Status::cancelled(format!(
                        "stream idle for {:?}: closed by the server",
                        idle.timeout
                    ));
                    return Poll::Ready(Some(Ok(ending(&status))));
                }
                idle.timer.as_mut().reset(quiet_until);
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
