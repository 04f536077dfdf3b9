//! The process group: `dslab serve flaky` replicas this runner starts,
//! kills, restarts and reconfigures, each behind its own [`Proxy`], and
//! the client that probes them.
//!
//! No replica outlives the runner. Each child is owned by a
//! [`ChildGuard`] from the moment it is spawned, so every way out — a
//! finished run, an abort, an error half-way through starting the group,
//! a signal the runner handles — kills and reaps it. A runner killed
//! outright (SIGKILL) runs no destructor; for that each replica is
//! started with `--exit-on-stdin-eof` and a pipe on its stdin whose only
//! writer is the runner: the kernel closes it when the runner dies, and
//! the replica exits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use patterns::chaos::{Fault, WindowMetrics};
use resilience::flaky::proto::Script;
use resilience::flaky::proto::flaky_client::FlakyClient;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::config::ProcessGroupConfig;
use super::probe::probe;
use super::proxy::Proxy;

/// How long a replica may take to announce its port.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A child process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SIGKILL: no drain, no goodbye. Also what a crash fault is.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary serve flaky --listen listen` and returns it with the
/// address it announced.
fn spawn_replica(binary: &Path, listen: SocketAddr) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let child = Command::new(binary)
        .args(["serve", "flaky", "--exit-on-stdin-eof", "--listen"])
        .arg(listen.to_string())
        // The write end stays in the Child (and so in this process): the
        // replica's lifeline.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} serve flaky", binary.display()))?;
    let mut child = ChildGuard(child);
    let stdout = child
        .0
        .stdout
        .take()
        .context("the replica's stdout is piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The reader keeps draining after the announcement, so the replica
    // never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => {
            bail!("the replica on {listen} did not announce itself within {START_TIMEOUT:?}")
        }
        Err(RecvTimeoutError::Disconnected) => {
            let status = child.0.wait().context("waiting for the replica")?;
            bail!(
                "the replica on {listen} exited before announcing itself ({status}); is the port taken?"
            )
        }
    };
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|word| word.parse().ok())
        .with_context(|| format!("no address in the replica's announcement {line:?}"))?;
    eprintln!("chaos: started replica pid {} on {addr}", child.id());
    Ok((child, addr))
}

#[derive(Debug)]
struct Replica {
    name: String,
    addr: SocketAddr,
    child: Option<ChildGuard>,
    proxy: Proxy,
    control: FlakyClient<Channel>,
}

/// A running group and its probe.
#[derive(Debug)]
pub struct ProcessGroup {
    binary: PathBuf,
    replicas: Vec<Replica>,
    metrics: Arc<Mutex<WindowMetrics>>,
    probe: JoinHandle<()>,
}

fn lazy_channel(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timeout)
        .connect_lazy())
}

impl ProcessGroup {
    /// Starts the replicas and their proxies, then the probe.
    pub async fn start(config: &ProcessGroupConfig, binary: PathBuf) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.attempt_timeout_ms);
        let mut replicas = Vec::new();
        for i in 1..=config.replicas {
            let bin = binary.clone();
            let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
            let (child, addr) =
                tokio::task::spawn_blocking(move || spawn_replica(&bin, any_port)).await??;
            let proxy = Proxy::start(addr).await.context("starting a proxy")?;
            replicas.push(Replica {
                name: format!("n{i}"),
                addr,
                child: Some(child),
                proxy,
                control: FlakyClient::new(lazy_channel(addr, timeout)?),
            });
        }
        let clients = replicas
            .iter()
            .map(|r| lazy_channel(r.proxy.addr(), timeout).map(FlakyClient::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let metrics = Arc::new(Mutex::new(WindowMetrics::default()));
        let probe = tokio::spawn(probe(clients, config.clone(), metrics.clone()));
        Ok(Self {
            binary,
            replicas,
            metrics,
            probe,
        })
    }

    /// What finished since the last call.
    pub fn take_window(&self) -> WindowMetrics {
        std::mem::take(&mut self.metrics.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn replica(&mut self, name: &str) -> anyhow::Result<&mut Replica> {
        self.replicas
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no replica {name}"))
    }

    /// Starts (`on`) or ends a fault.
    pub async fn apply(&mut self, fault: &Fault, on: bool) -> anyhow::Result<()> {
        match fault {
            Fault::Crash { host } => {
                let binary = self.binary.clone();
                let replica = self.replica(host)?;
                if on {
                    if let Some(child) = replica.child.take() {
                        let _ = tokio::task::spawn_blocking(move || drop(child)).await;
                    }
                } else if replica.child.is_none() {
                    let addr = replica.addr;
                    let (child, _) =
                        tokio::task::spawn_blocking(move || spawn_replica(&binary, addr)).await??;
                    replica.child = Some(child);
                }
            }
            Fault::Flaky { host, error_rate } => {
                let script = if on {
                    Script {
                        error_rate: *error_rate,
                        ..Script::default()
                    }
                } else {
                    Script::default()
                };
                let replica = self.replica(host)?;
                replica
                    .control
                    .configure(script)
                    .await
                    .with_context(|| format!("configuring {host}'s Flaky script"))?;
            }
            Fault::Partition { a, b } | Fault::Loss { a, b, .. } | Fault::Latency { a, b, .. } => {
                let host = if a == "client" { b } else { a };
                let proxy = &self.replica(host)?.proxy;
                match fault {
                    Fault::Partition { .. } => proxy.update(|f| f.partitioned = on),
                    Fault::Loss { probability, .. } => {
                        proxy.update(|f| f.loss = if on { *probability } else { 0.0 });
                    }
                    Fault::Latency { ms, .. } => proxy.update(|f| {
                        f.latency = if on {
                            Duration::from_millis(*ms)
                        } else {
                            Duration::ZERO
                        };
                    }),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // The replicas' guards kill them as the fields drop.
        self.probe.abort();
    }
}
