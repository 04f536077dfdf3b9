//! The one adapter between tonic and turmoil's simulated TCP.
//!
//! Servers accept turmoil streams; clients dial them through a connector.
//! Everything above this file is identical on real and simulated networks.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use turmoil::net::{TcpListener, TcpStream};

/// An accepted simulated connection, as tonic's server wants it.
#[derive(Debug)]
pub struct SimStream(TcpStream);

/// Who is on the other end of a simulated connection.
#[derive(Clone, Copy, Debug)]
pub struct SimConnectInfo {
    pub peer: Option<SocketAddr>,
}

impl Connected for SimStream {
    type ConnectInfo = SimConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        SimConnectInfo {
            peer: self.0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Binds a simulated listener on the current host.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The stream of connections accepted by `listener`.
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<SimStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    })
}

/// A tonic connector that dials `host:port` on the simulated network.
pub fn connector() -> impl tower_service::Service<
    Uri,
    Response = TokioIo<TcpStream>,
    Error = io::Error,
    Future = impl Future<Output = io::Result<TokioIo<TcpStream>>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|uri: Uri| async move {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "peer URI has no host"))?
            .to_owned();
        let port = uri
            .port_u16()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "peer URI has no port"))?;
        TcpStream::connect((host.as_str(), port))
            .await
            .map(TokioIo::new)
    })
}
