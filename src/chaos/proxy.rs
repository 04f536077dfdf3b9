//! The runner's TCP proxy: the only way this runner partitions, delays or
//! drops the traffic of real processes.
//!
//! A process group on one machine shares a kernel, so there is no cable to
//! pull. Instead every call from the runner's client to a replica goes
//! through a proxy the runner owns, and a fault is a setting of that
//! proxy. Nothing outside the runner is touched (no iptables, no tc), and
//! when the runner exits the faults go with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does to the bytes of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Bytes are read and discarded in both directions: calls hang until
    /// their deadline, as in a real partition.
    pub partitioned: bool,
    /// Each chunk is forwarded this long after it was read.
    pub latency: Duration,
    /// Each chunk cuts its connection with this probability.
    ///
    /// Simplified: TCP hides single lost packets behind retransmission;
    /// what an application sees of heavy loss is stalls and resets, so
    /// that is what the proxy produces.
    pub loss: f64,
}

/// A proxy in front of one upstream address.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    faults: Arc<Mutex<LinkFaults>>,
    accept: JoinHandle<()>,
}

/// Largest chunk copied at once.
const CHUNK: usize = 16 * 1024;
/// How long the proxy waits to reach the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Mutex::new(LinkFaults::default()));
        let shared = faults.clone();
        let connections = AtomicU64::new(0);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                // Each connection draws its losses from its own generator,
                // seeded by port and connection number: no shared lock.
                let n = connections.fetch_add(1, Ordering::Relaxed);
                let seed = u64::from(addr.port()) << 32 | n;
                tokio::spawn(forward(inbound, upstream, shared.clone(), seed));
            }
        });
        Ok(Self {
            addr,
            faults,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the link's faults; connections see the change at their next chunk.
    pub fn update(&self, change: impl FnOnce(&mut LinkFaults)) {
        change(&mut self.faults.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn faults(&self) -> LinkFaults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(
    inbound: TcpStream,
    upstream: SocketAddr,
    faults: Arc<Mutex<LinkFaults>>,
    seed: u64,
) {
    let Ok(Ok(outbound)) =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
    else {
        // Upstream down (a crashed replica): closing the inbound side is
        // what the client would see from a refused connection.
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    // Either direction ending ends the connection.
    tokio::select! {
        () = pump(inbound_read, outbound_write, faults.clone(), SmallRng::seed_from_u64(seed)) => {}
        () = pump(outbound_read, inbound_write, faults, SmallRng::seed_from_u64(!seed)) => {}
    }
}

/// Chunks read but not yet due, per direction of a connection: the
/// bound on what a slow link holds (× [`CHUNK`] bytes).
const IN_FLIGHT_CHUNKS: usize = 64;

/// Copies `from` to `to` under the link's faults. A delayed chunk is
/// stamped when it is read and written at read time + latency by a
/// writer of its own, so chunks in flight overlap: a call of several
/// HTTP/2 frames pays the latency once, as on a real slow link, not once
/// per chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Arc<Mutex<LinkFaults>>,
    mut rng: SmallRng,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    // Ok: the stream ended, deliver what is in flight; Err: cut it now.
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK];
        let mut lost_bytes = false;
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            let now = *faults.lock().unwrap_or_else(PoisonError::into_inner);
            if now.partitioned {
                lost_bytes = true;
                continue;
            }
            // Pitfall: after discarding bytes mid-stream the HTTP/2 framing
            // on this connection is garbage. Cut it, so the client
            // reconnects cleanly once the partition heals.
            if lost_bytes || (now.loss > 0.0 && rng.random_bool(now.loss.min(1.0))) {
                return Err(());
            }
            let due = Instant::now() + now.latency;
            if tx.send((due, buffer[..n].to_vec())).await.is_err() {
                return Err(());
            }
        }
    };
    tokio::pin!(writer);
    tokio::select! {
        read = reader => if read.is_ok() { writer.await },
        () = &mut writer => {}
    }
}
