//! The process group: `dslab serve flaky` replicas this runner starts,
//! kills, restarts and reconfigures, each behind its own [`Proxy`], and
//! the client that probes them.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use patterns::chaos::{Fault, WindowMetrics};
use resilience::flaky::proto::flaky_client::FlakyClient;
use resilience::flaky::proto::{CallRequest, Script};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::proxy::Proxy;

/// The most replicas a group may have.
pub const MAX_REPLICAS: usize = 5;
/// The highest probe rate, per second.
pub const MAX_RATE: f64 = 500.0;
/// How long a replica may take to announce its port.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `processes` section of an experiment file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessGroupConfig {
    /// Replicas `n1` … `nR`, each a `dslab serve flaky` process.
    pub replicas: usize,
    /// Probe calls per second from the runner's client.
    pub rate: f64,
    /// Whether a failed attempt is retried on the next replica.
    pub failover: bool,
    /// Each attempt's deadline.
    pub attempt_timeout_ms: u64,
}

impl ProcessGroupConfig {
    pub fn hosts(&self) -> BTreeSet<String> {
        std::iter::once("client".to_string())
            .chain((1..=self.replicas).map(|i| format!("n{i}")))
            .collect()
    }

    /// Rejects a group that cannot start and faults this group cannot
    /// inject, naming the field.
    pub fn validate(&self, faults: &[Fault]) -> patterns::Result<()> {
        let invalid = |field: String, reason: String| patterns::Error::InvalidChaosExperiment {
            field,
            reason,
        };
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(invalid(
                "processes.replicas".into(),
                format!("{} is outside 1..={MAX_REPLICAS}", self.replicas),
            ));
        }
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(invalid(
                "processes.rate".into(),
                format!("{} is outside (0, {MAX_RATE}]", self.rate),
            ));
        }
        if !(1..=60_000).contains(&self.attempt_timeout_ms) {
            return Err(invalid(
                "processes.attempt_timeout_ms".into(),
                "must be in 1..=60000".into(),
            ));
        }
        for (i, fault) in faults.iter().enumerate() {
            match fault {
                Fault::Partition { a, b }
                | Fault::Loss { a, b, .. }
                | Fault::Latency { a, b, .. }
                    if a != "client" && b != "client" =>
                {
                    return Err(invalid(
                        format!("faults[{i}].fault"),
                        format!(
                            "{a}–{b}: replicas do not call each other; the runner's proxies sit between the client and each replica, so one end must be \"client\""
                        ),
                    ));
                }
                Fault::Crash { host } | Fault::Flaky { host, .. } if host == "client" => {
                    return Err(invalid(
                        format!("faults[{i}].fault"),
                        "the client is the runner itself; name a replica".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Starts `binary serve flaky --listen listen` and returns it with the
/// address it announced.
fn spawn_replica(binary: &Path, listen: SocketAddr) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(binary)
        .args(["serve", "flaky", "--listen", &listen.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} serve flaky", binary.display()))?;
    let stdout = child
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
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the replica on {listen} did not announce itself within {START_TIMEOUT:?}");
        }
    };
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|word| word.parse().ok())
        .with_context(|| format!("no address in the replica's announcement {line:?}"))?;
    Ok((child, addr))
}

#[derive(Debug)]
struct Replica {
    name: String,
    addr: SocketAddr,
    child: Option<Child>,
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
                    if let Some(mut child) = replica.child.take() {
                        // SIGKILL: no drain, no goodbye — a crash.
                        let _ = child.kill();
                        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
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
        self.probe.abort();
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends `rate` calls per second, each with up to one attempt per
/// replica (with failover), and records how each call ended.
async fn probe(
    clients: Vec<FlakyClient<Channel>>,
    config: ProcessGroupConfig,
    metrics: Arc<Mutex<WindowMetrics>>,
) {
    let timeout = Duration::from_millis(config.attempt_timeout_ms);
    let attempts = if config.failover { clients.len() } else { 1 };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for id in 0usize.. {
        tick.tick().await;
        let clients = clients.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut ok = false;
            for attempt in 0..attempts {
                let mut client = clients[(id + attempt) % clients.len()].clone();
                let call = client.call(CallRequest {
                    payload: "chaos".into(),
                });
                if matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(_))) {
                    ok = true;
                    break;
                }
            }
            let mut window = metrics.lock().unwrap_or_else(PoisonError::into_inner);
            window.finished += 1;
            window.succeeded += u64::from(ok);
            window.latencies.push(started.elapsed());
        });
    }
}
