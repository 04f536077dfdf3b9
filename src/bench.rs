//! `dslab bench kv`: a load generator for the etcd v3 API — dslab's Raft
//! KV or a real etcd, with the same client, so the two compare like for
//! like.
//!
//! As etcd's own `benchmark` tool does with `--target-leader`, it asks each
//! endpoint for `Maintenance.Status`, finds the leader, and sends writes
//! there; reads (linearizable unless `--serializable`) spread over every
//! endpoint. `--clients` concurrent workers share `--connections` HTTP/2
//! connections per endpoint, each issuing one request at a time, closed
//! loop, for `--duration`. The leader is looked up again twice a second,
//! so writes follow it through a failover; a member that is down is
//! dialled again when needed, and a client pauses 100 ms after an error
//! rather than counting a storm of instant refusals.
//!
//! Counting is honest: nothing is written before the clock starts, every
//! request that completes is counted in `ops` — errors included, and also
//! counted in `errors` — and requests still in flight at the deadline are
//! awaited and counted, the duration running until the last one returns.
//! Latencies go into an HDR histogram (1 µs to 60 s, 3 significant
//! digits).
//!
//! Bounds: at most [`MAX_CLIENTS`] workers and [`MAX_CONNECTIONS`]
//! connections per endpoint; values up to etcd's 1.5 MiB request limit.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use consensus::proto::etcdserverpb::kv_client::KvClient;
use consensus::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use consensus::proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use hdrhistogram::Histogram;
use observability::rpc::peer_uri;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

pub const MAX_CLIENTS: usize = 10_000;
pub const MAX_CONNECTIONS: usize = 1_000;
const MAX_VALUE_BYTES: usize = 1536 * 1024;
/// Distinct error messages shown at the end.
const ERROR_SAMPLES: usize = 5;
/// How often the leader is looked up again during a run.
const LEADER_CHECK: Duration = Duration::from_millis(500);
/// How long a client waits after an error before its next request.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub connections: usize,
    pub duration: Duration,
    pub key_space: u64,
    pub value_size: usize,
    /// Share of requests that are puts; the rest are ranges of one key.
    pub put_ratio: f64,
    /// Reads served by the contacted node alone (no ReadIndex round).
    pub serializable: bool,
    pub seed: u64,
}

/// What came out.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub ops: u64,
    pub errors: u64,
    pub duration: Duration,
    pub latency: Histogram<u64>,
    /// The leader at the end of the run.
    pub leader: u64,
    pub leader_endpoint: String,
    /// How often the leader changed during the run.
    pub leader_changes: u64,
    pub error_samples: Vec<String>,
}

impl BenchReport {
    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.duration.as_secs_f64().max(f64::EPSILON)
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e3
    }

    /// One line of JSON (the last line of `--json` output).
    pub fn to_json(&self, options: &BenchOptions) -> serde_json::Value {
        json!({
            "ops": self.ops,
            "errors": self.errors,
            "duration_s": self.duration.as_secs_f64(),
            "throughput_ops_per_s": self.throughput(),
            "mean_ms": self.latency.mean() / 1e3,
            "p50_ms": self.ms(0.50),
            "p90_ms": self.ms(0.90),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": self.latency.max() as f64 / 1e3,
            "clients": options.clients,
            "connections": options.connections,
            "put_ratio": options.put_ratio,
            "value_size": options.value_size,
            "key_space": options.key_space,
            "leader": self.leader,
            "leader_endpoint": self.leader_endpoint,
            "leader_changes": self.leader_changes,
            "endpoints": options.endpoints,
        })
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "leader      member {} at {}",
            self.leader, self.leader_endpoint
        )?;
        writeln!(
            out,
            "requests    {} in {:.2} s ({} errors)",
            self.ops,
            self.duration.as_secs_f64(),
            self.errors
        )?;
        writeln!(out, "throughput  {:.0} requests/s", self.throughput())?;
        writeln!(
            out,
            "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
            self.ms(0.50),
            self.ms(0.90),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1e3,
            self.latency.mean() / 1e3
        )?;
        for sample in &self.error_samples {
            writeln!(out, "error       {sample}")?;
        }
        Ok(())
    }
}

impl BenchOptions {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.endpoints.is_empty(), "--endpoints: give at least one");
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "--clients must be 1..={MAX_CLIENTS}"
        );
        ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.connections),
            "--connections must be 1..={MAX_CONNECTIONS}"
        );
        ensure!(self.key_space >= 1, "--key-space must be at least 1");
        ensure!(
            self.value_size <= MAX_VALUE_BYTES,
            "--value-size must be at most {MAX_VALUE_BYTES} bytes (etcd's request limit)"
        );
        ensure!(
            (0.0..=1.0).contains(&self.put_ratio),
            "--put-ratio must be between 0 and 1"
        );
        ensure!(!self.duration.is_zero(), "--duration must be positive");
        Ok(())
    }
}

fn endpoint(address: &str) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from(peer_uri(address)?)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5)))
}

/// Asks every endpoint who leads, for up to 10 s while an election may be
/// under way; returns the leader's id and endpoint.
async fn find_leader(endpoints: &[String]) -> anyhow::Result<(u64, usize)> {
    let mut attempts = 0;
    loop {
        match ask_for_leader(endpoints).await {
            Ok(found) => return Ok(found),
            Err(err) if attempts >= 50 => return Err(err),
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn ask_for_leader(endpoints: &[String]) -> anyhow::Result<(u64, usize)> {
    let mut leader = 0;
    let mut members = Vec::new();
    for (index, address) in endpoints.iter().enumerate() {
        let Ok(channel) = endpoint(address)?.connect().await else {
            continue;
        };
        let mut client = MaintenanceClient::new(channel);
        if let Ok(status) = client.status(StatusRequest {}).await {
            let status = status.into_inner();
            leader = leader.max(status.leader);
            members.push((status.header.map_or(0, |h| h.member_id), index));
        }
    }
    ensure!(
        !members.is_empty(),
        "no endpoint answered Maintenance.Status"
    );
    ensure!(leader != 0, "the cluster has no leader");
    match members.iter().find(|(id, _)| *id == leader) {
        Some((_, index)) => Ok((leader, *index)),
        None => bail!("the leader (member {leader:x}) is not among --endpoints"),
    }
}

/// One worker's share of the results.
struct Tally {
    latency: Histogram<u64>,
    errors: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid bounds")
}

/// Runs the workload; `progress` gets a line a second.
pub async fn bench_kv(
    options: &BenchOptions,
    progress: &mut (impl Write + Send),
) -> anyhow::Result<BenchReport> {
    options.validate()?;
    let (leader, leader_index) = find_leader(&options.endpoints).await?;
    // `connections` channels per endpoint, each its own HTTP/2 connection,
    // opened before the clock starts; a member that is down is dialled
    // again when a request needs it.
    let mut channels: Vec<Vec<Channel>> = Vec::new();
    for address in &options.endpoints {
        let mut per_endpoint = Vec::new();
        for _ in 0..options.connections {
            let channel = match endpoint(address)?.connect().await {
                Ok(channel) => channel,
                Err(err) => {
                    let _ = writeln!(progress, "warning: {address}: {err}; will retry it");
                    endpoint(address)?.connect_lazy()
                }
            };
            per_endpoint.push(channel);
        }
        channels.push(per_endpoint);
    }
    let channels = Arc::new(channels);
    // Who leads, as (id, endpoint index), re-asked while the run lasts so
    // that writes follow a new leader after a failover.
    let leader_id = Arc::new(AtomicU64::new(leader));
    let current = Arc::new(AtomicUsize::new(leader_index));
    let leader_changes = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (endpoints, current, leader_id, changes) = (
            options.endpoints.clone(),
            current.clone(),
            leader_id.clone(),
            leader_changes.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEADER_CHECK).await;
                if let Ok((id, index)) = ask_for_leader(&endpoints).await {
                    current.store(index, Ordering::Relaxed);
                    if leader_id.swap(id, Ordering::Relaxed) != id {
                        changes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let value: Arc<[u8]> = {
        let mut rng = SmallRng::seed_from_u64(options.seed);
        (0..options.value_size)
            .map(|_| rng.random_range(b'a'..=b'z'))
            .collect()
    };
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + options.duration;
    let workers: Vec<_> = (0..options.clients)
        .map(|c| {
            let connection = c % options.connections;
            let reads = KvClient::new(channels[c % channels.len()][connection].clone());
            let (ops, errors, value) = (ops.clone(), errors.clone(), value.clone());
            let (channels, current) = (channels.clone(), current.clone());
            let options = options.clone();
            tokio::spawn(async move {
                let mut reads = reads;
                let mut writing_to = usize::MAX;
                let mut writes = KvClient::new(channels[0][connection].clone());
                let mut rng = SmallRng::seed_from_u64(
                    options.seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9),
                );
                let mut tally = Tally {
                    latency: histogram(),
                    errors: Vec::new(),
                };
                while Instant::now() < deadline {
                    let key = format!("bench-{:010}", rng.random_range(0..options.key_space))
                        .into_bytes();
                    let leader_index = current.load(Ordering::Relaxed);
                    if leader_index != writing_to {
                        writing_to = leader_index;
                        writes = KvClient::new(channels[leader_index][connection].clone());
                    }
                    let sent = Instant::now();
                    let result = if rng.random_bool(options.put_ratio) {
                        writes
                            .put(PutRequest {
                                key,
                                value: value.to_vec(),
                                ..PutRequest::default()
                            })
                            .await
                            .map(drop)
                    } else {
                        reads
                            .range(RangeRequest {
                                key,
                                serializable: options.serializable,
                                ..RangeRequest::default()
                            })
                            .await
                            .map(drop)
                    };
                    let micros = sent.elapsed().as_micros().max(1) as u64;
                    let _ = tally.latency.record(micros.min(60_000_000));
                    ops.fetch_add(1, Ordering::Relaxed);
                    if let Err(status) = result {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let sample = format!("{:?}: {}", status.code(), status.message());
                        if tally.errors.len() < ERROR_SAMPLES && !tally.errors.contains(&sample) {
                            tally.errors.push(sample);
                        }
                        // A member that is down fails at once; without a
                        // pause the run would count little but refusals.
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
                tally
            })
        })
        .collect();

    let terminal = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let all = futures_util::future::join_all(workers);
    tokio::pin!(all);
    let mut report_progress = || {
        let elapsed = started.elapsed().as_secs_f64();
        let done = ops.load(Ordering::Relaxed);
        let line = format!(
            "{elapsed:5.1} s  {done} requests  {:.0}/s  {} errors",
            done as f64 / elapsed,
            errors.load(Ordering::Relaxed)
        );
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if terminal {
            write!(progress, "\r{line}")
        } else {
            writeln!(progress, "{line}")
        };
        let _ = progress.flush();
    };
    let tallies = loop {
        tokio::select! {
            tallies = &mut all => break tallies,
            _ = ticker.tick() => report_progress(),
        }
    };
    // The last line, whether or not a second has passed since the one
    // before: a run always ends with its totals on stderr.
    report_progress();
    let duration = started.elapsed();
    watcher.abort();
    let (leader, leader_index) = (
        leader_id.load(Ordering::Relaxed),
        current.load(Ordering::Relaxed),
    );
    if terminal {
        let _ = writeln!(progress);
    }
    let mut latency = histogram();
    let mut error_samples: Vec<String> = Vec::new();
    for tally in tallies {
        let tally = tally.context("a benchmark worker panicked")?;
        latency.add(&tally.latency).context("merging latencies")?;
        for sample in tally.errors {
            if error_samples.len() < ERROR_SAMPLES && !error_samples.contains(&sample) {
                error_samples.push(sample);
            }
        }
    }
    Ok(BenchReport {
        ops: ops.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        duration,
        latency,
        leader,
        leader_endpoint: options.endpoints[leader_index].clone(),
        leader_changes: leader_changes.load(Ordering::Relaxed),
        error_samples,
    })
}
