//! `dslab bench batching`: throughput against latency for batch sizes,
//! lingers and gRPC compression, on loopback (Episode 5).
//!
//! A [`BatchStore`] is served through the RPC stack on 127.0.0.1 in this
//! process. `--clients` callers each store one item at a time in a closed
//! loop, either calling the service directly (one call per item, HTTP/2
//! multiplexing them) or through a [`Batcher`] that groups them. Items are
//! a kilobyte of JSON-like text, which compresses well. Each setting runs
//! for `--duration`; the table reports items per second, calls per second,
//! the mean batch, and each item's latency from submit to result.
//!
//! A subcommand rather than a criterion bench: the quantity is a trade-off
//! between two numbers measured under load over a real connection, for a
//! grid of settings, read as a table (and a chart) — not the time of one
//! small function.
//!
//! Bounds: at most [`MAX_CLIENTS`] callers; a setting runs at most a
//! minute.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use hdrhistogram::Histogram;
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use patterns::batching::service::proto::batch_store_client::BatchStoreClient;
use patterns::batching::service::proto::{FILE_DESCRIPTOR_SET, StoreRequest};
use patterns::batching::{BatchConfig, BatchStore, Batcher};
use serde_json::json;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;

pub const MAX_CLIENTS: usize = 4_096;
const MAX_DURATION: Duration = Duration::from_secs(60);
/// Batches a batcher keeps downstream at once.
const IN_FLIGHT: usize = 4;
/// Bytes per item.
pub const ITEM_BYTES: usize = 1_024;

/// How requests are compressed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    fn encoding(self) -> Option<CompressionEncoding> {
        match self {
            Self::None => None,
            Self::Gzip => Some(CompressionEncoding::Gzip),
            Self::Zstd => Some(CompressionEncoding::Zstd),
        }
    }
}

/// One row of the grid: direct calls (`batch: None`) or a batcher.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub batch: Option<BatchConfig>,
    pub compression: Compression,
}

impl Setting {
    fn batched(max_batch: usize, linger_ms: u64, compression: Compression) -> Self {
        Self {
            batch: Some(BatchConfig::new(
                max_batch,
                Duration::from_millis(linger_ms),
            )),
            compression,
        }
    }

    fn direct(compression: Compression) -> Self {
        Self {
            batch: None,
            compression,
        }
    }

    fn label(&self) -> String {
        match self.batch {
            None => "direct".to_owned(),
            Some(b) => format!("batch {} linger {} ms", b.max_batch, b.linger.as_millis()),
        }
    }
}

/// The grid: batch sizes × lingers without compression, then gzip and
/// zstd on direct calls and on big batches.
pub fn settings() -> Vec<Setting> {
    let mut grid = vec![Setting::direct(Compression::None)];
    for max_batch in [1, 16, 128] {
        for linger_ms in [0, 1, 5] {
            grid.push(Setting::batched(max_batch, linger_ms, Compression::None));
        }
    }
    for compression in [Compression::Gzip, Compression::Zstd] {
        grid.push(Setting::direct(compression));
        grid.push(Setting::batched(128, 1, compression));
    }
    grid
}

/// One setting's measurement.
#[derive(Debug)]
pub struct Row {
    pub setting: Setting,
    pub items: u64,
    pub calls: u64,
    pub errors: u64,
    pub duration: Duration,
    /// Per item, microseconds.
    pub latency: Histogram<u64>,
}

impl Row {
    pub fn items_per_s(&self) -> f64 {
        self.items as f64 / self.duration.as_secs_f64()
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e3
    }

    fn mean_batch(&self) -> f64 {
        self.items as f64 / self.calls.max(1) as f64
    }
}

/// A kilobyte of JSON-like events: repetitive, as real payloads are.
pub fn payload() -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < ITEM_BYTES {
        text.push_str(&format!(
            r#"{{"user":"user-{:05}","event":"page_view","path":"/catalog/item/{}","ok":true}}"#,
            (i * 7919) % 100_000,
            i * 31
        ));
        i += 1;
    }
    text.truncate(ITEM_BYTES);
    text.into_bytes()
}

/// Runs every setting in turn; `progress` gets a line per setting.
pub async fn bench_batching(
    clients: usize,
    duration: Duration,
    progress: &mut impl Write,
) -> anyhow::Result<Vec<Row>> {
    ensure!(
        (1..=MAX_CLIENTS).contains(&clients),
        "--clients must be 1..={MAX_CLIENTS}"
    );
    ensure!(
        !duration.is_zero() && duration <= MAX_DURATION,
        "--duration must be positive and at most a minute"
    );
    let service = BatchStore::new()
        .into_service()
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
    let server = RpcServer::new()
        .add_service(service, FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, ([127, 0, 0, 1], 0).into())
        .await
        .context("starting the batch store")?
        .spawn();
    let channel = ClientBuilder::new(Net::Tcp)
        .default_deadline(Duration::from_secs(30))
        .dial(&server.local_addr().to_string())?;
    let mut rows = Vec::new();
    for setting in settings() {
        let row = run_setting(setting, channel.clone(), clients, duration).await?;
        writeln!(
            progress,
            "  {:<22} {:<5} {:>9.0} items/s",
            setting.label(),
            setting.compression.name(),
            row.items_per_s()
        )?;
        rows.push(row);
    }
    Ok(rows)
}

async fn run_setting(
    setting: Setting,
    channel: RpcChannel,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let mut client = BatchStoreClient::new(channel);
    if let Some(encoding) = setting.compression.encoding() {
        client = client.send_compressed(encoding);
    }
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let batcher = match setting.batch {
        None => None,
        Some(mut config) => {
            // Room for every caller: this bench measures batching, not
            // refusals.
            config.queue = clients;
            config.in_flight = IN_FLIGHT;
            let (client, calls) = (client.clone(), calls.clone());
            Some(Batcher::spawn(config, move |items: Vec<Vec<u8>>| {
                let mut client = client.clone();
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    let reply = client.store(StoreRequest { items }).await?;
                    Ok(reply.into_inner().sequence)
                }
            })?)
        }
    };
    let item = payload();
    let end = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (mut client, batcher, item, calls) =
            (client.clone(), batcher.clone(), item.clone(), calls.clone());
        tasks.spawn(async move {
            let mut latency = histogram();
            let (mut items, mut errors) = (0_u64, 0_u64);
            while Instant::now() < end {
                let sent = Instant::now();
                let stored = match &batcher {
                    Some(batcher) => batcher.submit(item.clone()).await.map(|_| ()).is_ok(),
                    None => {
                        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let request = StoreRequest {
                            items: vec![item.clone()],
                        };
                        client.store(request).await.is_ok()
                    }
                };
                if stored {
                    items += 1;
                    let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    latency.saturating_record(us.max(1));
                } else {
                    errors += 1;
                }
            }
            (items, errors, latency)
        });
    }
    let mut row = Row {
        setting,
        items: 0,
        calls: 0,
        errors: 0,
        duration,
        latency: histogram(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (items, errors, latency) = joined.context("a client task failed")?;
        row.items += items;
        row.errors += errors;
        row.latency.add(&latency).context("merging latencies")?;
    }
    row.calls = calls.load(std::sync::atomic::Ordering::Relaxed);
    Ok(row)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid bounds")
}

pub fn print(rows: &[Row], clients: usize, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{clients} callers, one {ITEM_BYTES}-byte item each at a time, loopback gRPC"
    )?;
    writeln!(
        out,
        "{:<22}  {:<5}  {:>9}  {:>8}  {:>6}  {:>7}  {:>7}  {:>6}",
        "setting", "codec", "items/s", "calls/s", "batch", "p50 ms", "p99 ms", "errors"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<22}  {:<5}  {:>9.0}  {:>8.0}  {:>6.1}  {:>7.2}  {:>7.2}  {:>6}",
            r.setting.label(),
            r.setting.compression.name(),
            r.items_per_s(),
            r.calls as f64 / r.duration.as_secs_f64(),
            r.mean_batch(),
            r.ms(0.50),
            r.ms(0.99),
            r.errors
        )?;
    }
    Ok(())
}

/// One line: an array of one object per setting.
pub fn to_json(rows: &[Row]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            json!({
                "setting": r.setting.label(),
                "max_batch": r.setting.batch.map(|b| b.max_batch),
                "linger_ms": r.setting.batch.map(|b| b.linger.as_secs_f64() * 1e3),
                "compression": r.setting.compression.name(),
                "items_per_s": r.items_per_s(),
                "mean_batch": r.mean_batch(),
                "p50_ms": r.ms(0.50),
                "p99_ms": r.ms(0.99),
                "errors": r.errors,
            })
        })
        .collect()
}

/// Throughput and p99 against batch size, one line per linger
/// (uncompressed); written as `batching-throughput.svg` and
/// `batching-p99.svg` into `dir`.
pub fn write_svg(rows: &[Row], dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut lingers: Vec<u128> = rows
        .iter()
        .filter_map(|r| r.setting.batch.map(|b| b.linger.as_millis()))
        .collect();
    lingers.sort_unstable();
    lingers.dedup();
    let chart = |title: &str, y: &str, value: &dyn Fn(&Row) -> f64| {
        lingers.iter().fold(
            LineChart::new(title, "max batch (items)", y),
            |chart, &linger| {
                let points = rows
                    .iter()
                    .filter(|r| r.setting.compression == Compression::None)
                    .filter_map(|r| {
                        let b = r.setting.batch?;
                        (b.linger.as_millis() == linger).then(|| (b.max_batch as f64, value(r)))
                    })
                    .collect();
                chart.series(Series::marked(format!("linger {linger} ms"), points))
            },
        )
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, chart) in [
        (
            "batching-throughput",
            chart("Batching: throughput", "items/s", &Row::items_per_s),
        ),
        (
            "batching-p99",
            chart("Batching: p99 latency per item", "p99 (ms)", &|r: &Row| {
                r.ms(0.99)
            }),
        ),
    ] {
        let path = dir.join(format!("{name}.svg"));
        std::fs::write(&path, chart.to_svg()?)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `dslab bench batching`'s arguments.
#[derive(clap::Args, Debug)]
pub struct BatchingArgs {
    /// Callers, each with one item in flight.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// How long each setting runs, ms.
    #[arg(long, default_value_t = 1_500)]
    pub duration_ms: u64,
    /// End with one line of JSON: one object per setting.
    #[arg(long)]
    pub json: bool,
    /// Also write throughput and p99 against batch size as SVG into DIR.
    #[arg(long, value_name = "DIR")]
    pub svg: Option<std::path::PathBuf>,
    /// Settings of 100 ms (for tests).
    #[arg(long, hide = true)]
    pub quick: bool,
}

impl BatchingArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let duration = Duration::from_millis(if self.quick { 100 } else { self.duration_ms });
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let rows = runtime.block_on(bench_batching(
            self.clients,
            duration,
            &mut std::io::stderr(),
        ))?;
        // With --json, stdout carries only the JSON line.
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        let table: &mut dyn Write = if self.json { &mut stderr } else { &mut stdout };
        print(&rows, self.clients, &mut &mut *table)?;
        if let Some(dir) = &self.svg {
            for path in write_svg(&rows, dir)? {
                writeln!(table, "figure: {}", path.display())?;
            }
        }
        if self.json {
            writeln!(stdout, "{}", to_json(&rows))?;
        }
        Ok(())
    }
}
