//! `dslab bench lock` and `dslab bench watch`: what etcd's coordination
//! recipes cost, against dslab's Raft KV or a real etcd, with the same
//! client.
//!
//! `lock`: `--clients` contenders, each with its own lease (kept alive) and
//! connection, take and release one lock in a closed loop with etcd's
//! recipe (`consensus::lock`: a Txn that queues, a Range for the
//! predecessor, a Watch for its deletion, a delete to release) for
//! `--duration`; it reports cycles per second and the time from asking to
//! holding.
//!
//! `watch`: `--watchers` watch one prefix (spread over the endpoints)
//! while `--writers` put to it in a closed loop; every value carries the
//! moment its put was sent, so each delivered event gives the latency
//! from sending the put (its commit included) to the event's arrival. The
//! run also checks what a watch promises: every acknowledged put reaches
//! every watcher once, in order; events missing, repeated or out of order
//! are counted and reported.
//!
//! Bounds: at most [`MAX_CONTENDERS`] contenders and [`MAX_WATCHERS`]
//! watchers; a run lasts at most an hour.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use consensus::lock::{EtcdClient, Session};
use consensus::proto::etcdserverpb::kv_client::KvClient;
use consensus::proto::etcdserverpb::watch_client::WatchClient;
use consensus::proto::etcdserverpb::watch_request::RequestUnion;
use consensus::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use hdrhistogram::Histogram;
use observability::rpc::{ClientBuilder, Net, RpcChannel};
use serde_json::json;
use tokio::time::Instant;

pub const MAX_CONTENDERS: usize = 1_000;
pub const MAX_WATCHERS: usize = 1_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const LOCK: &[u8] = b"/dslab-bench/lock";
const PREFIX: &[u8] = b"/dslab-bench/watch/";
/// How long the watchers may take to receive the last events.
const DRAIN: Duration = Duration::from_secs(5);

/// What a run measured.
#[derive(Debug)]
pub struct CoordinationReport {
    pub what: &'static str,
    pub operations: u64,
    pub errors: u64,
    pub duration: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
    /// Watch runs: events missing, repeated, or out of order.
    pub anomalies: u64,
    pub error_samples: Vec<String>,
}

impl CoordinationReport {
    pub fn rate(&self) -> f64 {
        self.operations as f64 / self.duration.as_secs_f64().max(f64::EPSILON)
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e3
    }

    pub fn to_json(&self, clients: usize, endpoints: &[String]) -> serde_json::Value {
        json!({
            "what": self.what,
            "operations": self.operations,
            "errors": self.errors,
            "anomalies": self.anomalies,
            "duration_s": self.duration.as_secs_f64(),
            "per_s": self.rate(),
            "p50_ms": self.ms(0.50),
            "p90_ms": self.ms(0.90),
            "p99_ms": self.ms(0.99),
            "max_ms": self.latency.max() as f64 / 1e3,
            "clients": clients,
            "endpoints": endpoints,
        })
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<11} {} in {:.2} s ({} errors)",
            self.what,
            self.operations,
            self.duration.as_secs_f64(),
            self.errors
        )?;
        writeln!(out, "rate        {:.0}/s", self.rate())?;
        writeln!(
            out,
            "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.ms(0.50),
            self.ms(0.90),
            self.ms(0.99),
            self.latency.max() as f64 / 1e3
        )?;
        if self.what == "events" {
            writeln!(
                out,
                "anomalies   {} (missing, repeated or out of order)",
                self.anomalies
            )?;
        }
        for sample in &self.error_samples {
            writeln!(out, "error       {sample}")?;
        }
        Ok(())
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid bounds")
}

fn channel(address: &str) -> anyhow::Result<RpcChannel> {
    Ok(ClientBuilder::new(Net::Tcp)
        .default_deadline(Duration::from_secs(30))
        .dial(address)?)
}

fn check(
    endpoints: &[String],
    clients: usize,
    max: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    ensure!(!endpoints.is_empty(), "--endpoints: give at least one");
    ensure!((1..=max).contains(&clients), "--clients must be 1..={max}");
    ensure!(
        !duration.is_zero() && duration <= MAX_DURATION,
        "--duration must be positive and at most an hour"
    );
    Ok(())
}

/// Lock cycles: take, release, again, by `clients` contenders.
pub async fn bench_lock(
    endpoints: &[String],
    clients: usize,
    duration: Duration,
) -> anyhow::Result<CoordinationReport> {
    check(endpoints, clients, MAX_CONTENDERS, duration)?;
    // Sessions first, outside the clock.
    let mut contenders = Vec::new();
    for c in 0..clients {
        let channel = channel(&endpoints[c % endpoints.len()])?;
        let session = Session::start(channel.clone(), 10)
            .await
            .context("granting a contender's lease")?;
        contenders.push((EtcdClient::new(channel), session));
    }
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = contenders
        .into_iter()
        .map(|(etcd, session)| {
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut samples = Vec::new();
                let mut cycles = 0u64;
                while Instant::now() < deadline {
                    let asked = Instant::now();
                    let held = match etcd.lock(LOCK, &session).await {
                        Ok(held) => held,
                        Err(status) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            samples.push(format!("{:?}: {}", status.code(), status.message()));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let _ = latency.record(asked.elapsed().as_micros().clamp(1, 60_000_000) as u64);
                    if let Err(status) = etcd.unlock(&held).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                        samples.push(format!("{:?}: {}", status.code(), status.message()));
                    }
                    cycles += 1;
                }
                let _ = session.close().await;
                (cycles, latency, samples)
            })
        })
        .collect();
    let mut report = CoordinationReport {
        what: "lock cycles",
        operations: 0,
        errors: 0,
        duration: Duration::ZERO,
        latency: histogram(),
        anomalies: 0,
        error_samples: Vec::new(),
    };
    for worker in workers {
        let (cycles, latency, samples) = worker.await.context("a contender panicked")?;
        report.operations += cycles;
        report.latency.add(&latency).context("merging latencies")?;
        for sample in samples {
            if report.error_samples.len() < 5 && !report.error_samples.contains(&sample) {
                report.error_samples.push(sample);
            }
        }
    }
    report.duration = started.elapsed();
    report.errors = errors.load(Ordering::Relaxed);
    Ok(report)
}

/// One watcher's view: per writer, the last sequence number seen.
struct Seen {
    latency: Histogram<u64>,
    events: u64,
    anomalies: u64,
    last: Vec<u64>,
}

/// Watch delivery: `writers` put, `watchers` watch, latency put-sent to
/// event-received.
pub async fn bench_watch(
    endpoints: &[String],
    writers: usize,
    watchers: usize,
    duration: Duration,
) -> anyhow::Result<CoordinationReport> {
    check(endpoints, writers, MAX_CONTENDERS, duration)?;
    ensure!(
        (1..=MAX_WATCHERS).contains(&watchers),
        "--watchers must be 1..={MAX_WATCHERS}"
    );
    let base = Instant::now();
    // Watchers first, each created (and confirmed) before any put.
    let mut streams = Vec::new();
    for w in 0..watchers {
        let (requests, inbox) = tokio::sync::mpsc::channel(1);
        requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: PREFIX.to_vec(),
                    range_end: consensus::lock::recipe::prefix_end(PREFIX),
                    ..WatchCreateRequest::default()
                })),
            })
            .await
            .context("opening a watch")?;
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(inbox));
        request.set_timeout(MAX_DURATION);
        let mut stream = WatchClient::new(channel(&endpoints[w % endpoints.len()])?)
            .watch(request)
            .await
            .context("opening a watch")?
            .into_inner();
        let created = stream.message().await.context("a watch's first answer")?;
        ensure!(
            created.is_some_and(|c| c.created && !c.canceled),
            "a watch was not created"
        );
        streams.push((requests, stream));
    }
    let puts = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let writing: Vec<_> = (0..writers)
        .map(|w| {
            let (puts, errors) = (puts.clone(), errors.clone());
            let channel = channel(&endpoints[w % endpoints.len()]);
            tokio::spawn(async move {
                let mut kv = KvClient::new(channel?);
                let key = [PREFIX, format!("{w:06}").as_bytes()].concat();
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    seq += 1;
                    let sent = base.elapsed().as_nanos() as u64;
                    let value = [seq.to_be_bytes(), sent.to_be_bytes()].concat();
                    match kv
                        .put(PutRequest {
                            key: key.clone(),
                            value,
                            ..PutRequest::default()
                        })
                        .await
                    {
                        Ok(_) => {
                            puts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let watching: Vec<_> = streams
        .into_iter()
        .map(|(requests, mut stream)| {
            tokio::spawn(async move {
                let mut seen = Seen {
                    latency: histogram(),
                    events: 0,
                    anomalies: 0,
                    last: vec![0; writers],
                };
                let stop = deadline + DRAIN;
                while let Ok(Ok(Some(response))) =
                    tokio::time::timeout_at(stop, stream.message()).await
                {
                    let now = base.elapsed().as_nanos() as u64;
                    for event in response.events {
                        let Some(kv) = event.kv else { continue };
                        let writer = std::str::from_utf8(&kv.key[PREFIX.len()..])
                            .ok()
                            .and_then(|w| w.parse::<usize>().ok());
                        let (Some(writer), Ok(fields)) =
                            (writer, <[u8; 16]>::try_from(kv.value.as_slice()))
                        else {
                            seen.anomalies += 1;
                            continue;
                        };
                        let seq = u64::from_be_bytes(fields[..8].try_into().unwrap_or_default());
                        let sent = u64::from_be_bytes(fields[8..].try_into().unwrap_or_default());
                        match seen.last.get_mut(writer) {
                            Some(last) if seq == *last + 1 => *last = seq,
                            Some(last) => {
                                seen.anomalies += 1;
                                *last = (*last).max(seq);
                            }
                            None => seen.anomalies += 1,
                        }
                        seen.events += 1;
                        let _ = seen
                            .latency
                            .record((now.saturating_sub(sent) / 1_000).clamp(1, 60_000_000));
                    }
                }
                drop(requests);
                seen
            })
        })
        .collect();
    for writer in writing {
        writer.await.context("a writer panicked")??;
    }
    let duration = started.elapsed();
    let acknowledged = puts.load(Ordering::Relaxed);
    let mut report = CoordinationReport {
        what: "events",
        operations: 0,
        errors: errors.load(Ordering::Relaxed),
        duration,
        latency: histogram(),
        anomalies: 0,
        error_samples: Vec::new(),
    };
    for watcher in watching {
        let seen = watcher.await.context("a watcher panicked")?;
        report.operations += seen.events;
        report.anomalies += seen.anomalies;
        // Puts that failed may still have committed: only a shortfall
        // below the acknowledged ones is a loss.
        report.anomalies += acknowledged.saturating_sub(seen.events);
        report
            .latency
            .add(&seen.latency)
            .context("merging latencies")?;
    }
    Ok(report)
}
