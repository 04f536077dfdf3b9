//! `dslab bench quorum-kv`: what R and W cost in latency — put and get
//! p50 / p99 for (N, R, W) = (3, 1, 1), (3, 2, 2) and (3, 3, 1) on a
//! three-node quorum KV on loopback, started in this process.
//!
//! Each setting gets a fresh cluster (anti-entropy off, so the background
//! exchange does not share the CPU with the measured calls). `--clients`
//! workers, one request at a time each, spread over the three nodes:
//! first `--requests` puts to a key space of 1,000 keys, then as many
//! gets. Latencies go into an HDR histogram (1 µs to 60 s, 3 significant
//! digits); failed calls are counted, not timed.
//!
//! What to expect: every node is one hop from every other, so W = 1 and
//! W = 2 differ by the wait for the second-fastest copy, and R = 3 waits
//! for the slowest of three — the tail (p99) grows with the quorum.
//! Loopback hides the network; the gap widens with real round trips.
//!
//! Bounds: at most [`MAX_CLIENTS`] workers and [`MAX_REQUESTS`] requests
//! per phase; values up to the store's own limit.

use std::io::Write;

use anyhow::{Context as _, ensure};
use hdrhistogram::Histogram;
use replication::quorum::{LocalCluster, MAX_VALUE_BYTES, QuorumClient, Resolution};
use serde_json::json;
use tokio::time::Instant;

pub const MAX_CLIENTS: usize = 256;
pub const MAX_REQUESTS: usize = 1_000_000;
const KEY_SPACE: usize = 1_000;

/// `dslab bench quorum-kv`'s arguments.
#[derive(clap::Args, Debug)]
pub struct QuorumBenchArgs {
    /// Puts (and then gets) per setting.
    #[arg(long, default_value_t = 3_000)]
    pub requests: usize,
    /// Concurrent workers.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_size: usize,
    /// End with one line of JSON: [{"n","r","w","put_p50_us",…}, …].
    #[arg(long)]
    pub json: bool,
}

/// One setting's figures.
#[derive(Clone, Debug)]
pub struct QuorumRow {
    pub n: u32,
    pub r: u32,
    pub w: u32,
    pub put: Percentiles,
    pub get: Percentiles,
}

/// Latency percentiles in microseconds, and the calls that failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p99_us: u64,
    pub ok: u64,
    pub failed: u64,
}

impl QuorumBenchArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "--clients must be between 1 and {MAX_CLIENTS}"
        );
        ensure!(
            (1..=MAX_REQUESTS).contains(&self.requests),
            "--requests must be between 1 and {MAX_REQUESTS}"
        );
        ensure!(
            self.value_size <= MAX_VALUE_BYTES,
            "--value-size must be at most {MAX_VALUE_BYTES}"
        );
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let rows = runtime.block_on(bench_quorum(self.requests, self.clients, self.value_size))?;
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        let table: &mut dyn Write = if self.json { &mut stderr } else { &mut stdout };
        print(&rows, table)?;
        if self.json {
            writeln!(stdout, "{}", to_json(&rows))?;
        }
        Ok(())
    }
}

/// Runs the three settings, one fresh cluster each.
pub async fn bench_quorum(
    requests: usize,
    clients: usize,
    value_size: usize,
) -> anyhow::Result<Vec<QuorumRow>> {
    let mut rows = Vec::new();
    for (r, w) in [(1, 1), (2, 2), (3, 1)] {
        let cluster = LocalCluster::start(3, |_, config| {
            config.anti_entropy_interval = None;
        })
        .await
        .map_err(|err| anyhow::anyhow!("starting a loopback cluster: {err}"))?;
        let put = phase(
            &cluster,
            requests,
            clients,
            move |mut client, key| async move {
                client
                    .put(&key, &vec![b'v'; value_size], Vec::new(), w, false)
                    .await
                    .map(drop)
            },
        )
        .await?;
        let get = phase(
            &cluster,
            requests,
            clients,
            move |mut client, key| async move {
                client
                    .get(&key, r, false, Resolution::LastWriterWins)
                    .await
                    .map(drop)
            },
        )
        .await?;
        cluster.shutdown().await;
        rows.push(QuorumRow {
            n: 3,
            r,
            w,
            put,
            get,
        });
    }
    Ok(rows)
}

/// `requests` calls of `call`, by `clients` workers over the three nodes.
async fn phase<F, Fut>(
    cluster: &LocalCluster,
    requests: usize,
    clients: usize,
    call: F,
) -> anyhow::Result<Percentiles>
where
    F: Fn(QuorumClient, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let mut workers = Vec::new();
    for worker in 0..clients {
        let client = cluster.client(worker % 3);
        let call = call.clone();
        let share = requests / clients + usize::from(worker < requests % clients);
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .map_err(|err| err.to_string())?;
            let mut failed = 0u64;
            for i in 0..share {
                let key = format!("key-{}", (i * clients + worker) % KEY_SPACE);
                let started = Instant::now();
                match call(client.clone(), key).await {
                    Ok(()) => {
                        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        histogram.record(micros).map_err(|err| err.to_string())?;
                    }
                    Err(_) => failed += 1,
                }
            }
            Ok::<_, String>((histogram, failed))
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0;
    for worker in workers {
        let (histogram, worker_failed) = worker.await?.map_err(|err| anyhow::anyhow!(err))?;
        total.add(&histogram)?;
        failed += worker_failed;
    }
    Ok(Percentiles {
        p50_us: total.value_at_quantile(0.5),
        p99_us: total.value_at_quantile(0.99),
        ok: total.len(),
        failed,
    })
}

fn human(micros: u64) -> String {
    if micros >= 10_000 {
        format!("{:.1} ms", micros as f64 / 1000.0)
    } else {
        format!("{micros} µs")
    }
}

pub fn print(rows: &[QuorumRow], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<12}  {:>10}  {:>10}  {:>10}  {:>10}  {:>7}",
        "(N, R, W)", "put p50", "put p99", "get p50", "get p99", "failed"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<12}  {:>10}  {:>10}  {:>10}  {:>10}  {:>7}",
            format!("({}, {}, {})", row.n, row.r, row.w),
            human(row.put.p50_us),
            human(row.put.p99_us),
            human(row.get.p50_us),
            human(row.get.p99_us),
            row.put.failed + row.get.failed
        )?;
    }
    Ok(())
}

pub fn to_json(rows: &[QuorumRow]) -> serde_json::Value {
    rows.iter()
        .map(|row| {
            json!({
                "n": row.n, "r": row.r, "w": row.w,
                "put_p50_us": row.put.p50_us, "put_p99_us": row.put.p99_us,
                "get_p50_us": row.get.p50_us, "get_p99_us": row.get.p99_us,
                "put_ok": row.put.ok, "get_ok": row.get.ok,
                "failed": row.put.failed + row.get.failed,
            })
        })
        .collect()
}
