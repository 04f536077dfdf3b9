//! Connections a server can cut when a graceful drain runs out of time,
//! or when they stay silent from the start.
//!
//! tonic serves each connection on its own task. Ending the accept loop
//! does not end those tasks, so a server that must stop *now* needs a way
//! to reach into every open connection: each accepted stream is wrapped so
//! that, once the token is cancelled, its next read or write fails and the
//! connection task ends, closing the socket. The wrapper also holds the
//! connection's slot under the server's connection limit until it closes,
//! and cuts a connection that sends nothing within its first-byte
//! deadline (a client that opens sockets and never speaks).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

pin_project! {
    /// A stream that fails every read and write once `closed` fires. It
    /// also holds the connection's slot (see
    /// [`super::limits::gate_connections`]) until the connection ends, and
    /// fails if the client sends nothing within its first-byte deadline.
    pub struct Closable<IO> {
        #[pin]
        io: IO,
        closed: Pin<Box<WaitForCancellationFutureOwned>>,
        slot: Option<OwnedSemaphorePermit>,
        first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<IO> Closable<IO> {
    pub fn new(io: IO, token: CancellationToken) -> Self {
        Self {
            io,
            closed: Box::pin(token.cancelled_owned()),
            slot: None,
            first_byte: None,
        }
    }

    /// Holds `slot` for as long as the connection lives.
    pub fn holding(mut self, slot: OwnedSemaphorePermit) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Closes the connection if its first byte has not arrived within
    /// `timeout`. Pitfall: with a cap on connections, a client that opens
    /// sockets and says nothing would otherwise hold every slot forever —
    /// HTTP/2 keepalive only starts once the handshake has.
    pub fn first_byte_within(mut self, timeout: std::time::Duration) -> Self {
        self.first_byte = Some(Box::pin(tokio::time::sleep(timeout)));
        self
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "server stopped after its drain timeout",
    )
}

impl<IO: AsyncRead> AsyncRead for Closable<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        // Polling the cancellation first registers this task's waker, so an
        // idle connection parked on a read wakes up when the token fires.
        if this.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        let before = buf.filled().len();
        let read = this.io.poll_read(cx, buf);
        if let Some(deadline) = this.first_byte.as_mut() {
            if buf.filled().len() > before {
                *this.first_byte = None;
            } else if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing after connecting",
                )));
            }
        }
        read
    }
}

impl<IO: AsyncWrite> AsyncWrite for Closable<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        this.io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Closable<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
