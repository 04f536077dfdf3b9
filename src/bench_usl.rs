//! `dslab bench usl`: sweep a real contended service's throughput over
//! concurrency, fit the Universal Scalability Law, and compare the
//! predicted peak with the measured one (Episode 27).
//!
//! The service is [`patterns::scalability::Contended`], served through the
//! RPC stack on 127.0.0.1 in this process; N clients share one HTTP/2
//! connection, each in a closed loop (its next call leaves as soon as the
//! last returns). Each level runs a warm-up, then counts the calls that
//! complete inside a fixed window: throughput = completions / window.
//!
//! The default costs put the peak near N = 10 however many cores the
//! machine has: the parallel part is a timer wait, and the serialised part
//! occupies one core at a time, so two cores are enough to show the curve
//! rise, bend and fall.
//!
//! Bounds: at most [`MAX_LEVELS`] levels of at most
//! [`patterns::scalability::MAX_WORKERS`] clients; a window of at most a
//! minute.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use patterns::scalability::service::proto::contended_client::ContendedClient;
use patterns::scalability::service::proto::{FILE_DESCRIPTOR_SET, WorkRequest};
use patterns::scalability::{Contended, Costs, MAX_WORKERS, Point, UslFit, fit, fit_amdahl};
use serde_json::json;
use tokio::time::Instant;

pub const MAX_LEVELS: usize = 64;
const MAX_WINDOW: Duration = Duration::from_secs(60);

/// What to sweep.
#[derive(Clone, Debug)]
pub struct UslBenchOptions {
    pub costs: Costs,
    /// Concurrency levels, in the order run.
    pub levels: Vec<usize>,
    /// How long completions are counted at each level.
    pub window: Duration,
    /// How long each level runs before counting starts.
    pub warmup: Duration,
}

impl UslBenchOptions {
    /// The defaults: about 40 s, peak near N = 10.
    pub fn standard() -> Self {
        Self {
            costs: Costs {
                parallel: Duration::from_millis(10),
                serial: Duration::from_micros(400),
                crosstalk: Duration::from_micros(100),
            },
            levels: vec![1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32],
            window: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
        }
    }

    /// A sweep of about a second, for tests of the command's output.
    pub fn quick() -> Self {
        Self {
            levels: vec![1, 2, 4, 8, 16],
            window: Duration::from_millis(200),
            warmup: Duration::from_millis(50),
            ..Self::standard()
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            (3..=MAX_LEVELS).contains(&self.levels.len()),
            "--levels: give 3..={MAX_LEVELS} levels (the fit has three unknowns)"
        );
        ensure!(
            self.levels.iter().all(|n| (1..=MAX_WORKERS).contains(n)),
            "--levels: each level must be 1..={MAX_WORKERS}"
        );
        ensure!(
            !self.window.is_zero() && self.window <= MAX_WINDOW,
            "--window must be positive and at most a minute"
        );
        Costs::new(self.costs.parallel, self.costs.serial, self.costs.crosstalk)?;
        ensure!(
            !self.costs.serial.is_zero(),
            "--serial-us must be positive: without a serialised section there is no peak to find"
        );
        Ok(())
    }
}

/// One level's measurement.
#[derive(Clone, Copy, Debug)]
pub struct Level {
    pub clients: usize,
    pub completed: u64,
    pub errors: u64,
    /// Completions per second in the window.
    pub throughput: f64,
    /// Mean time per call in the window.
    pub latency: Duration,
}

/// What a sweep measured and what the law makes of it.
#[derive(Debug)]
pub struct UslReport {
    pub options: UslBenchOptions,
    pub levels: Vec<Level>,
    pub fit: Result<UslFit, patterns::scalability::UslError>,
    pub amdahl: Result<UslFit, patterns::scalability::UslError>,
}

/// Runs the sweep; `progress` gets a line per level as it finishes.
pub async fn bench_usl(
    options: UslBenchOptions,
    progress: &mut impl Write,
) -> anyhow::Result<UslReport> {
    options.check()?;
    let server = RpcServer::new()
        .add_service(
            Contended::new(options.costs).into_service(),
            FILE_DESCRIPTOR_SET,
        )
        .bind(Net::Tcp, ([127, 0, 0, 1], 0).into())
        .await
        .context("starting the contended service")?
        .spawn();
    let channel = ClientBuilder::new(Net::Tcp)
        .default_deadline(Duration::from_secs(30))
        .dial(&server.local_addr().to_string())?;
    let client = ContendedClient::new(channel);
    let mut levels = Vec::new();
    for &clients in &options.levels {
        let level = measure(&client, clients, options.warmup, options.window).await?;
        writeln!(progress, "  N = {clients:>3}: {:>8.1}/s", level.throughput)?;
        levels.push(level);
    }
    let points: Vec<Point> = levels
        .iter()
        .filter(|l| l.completed > 0)
        .map(|l| Point::new(l.clients as f64, l.throughput))
        .collect();
    Ok(UslReport {
        fit: fit(&points),
        amdahl: fit_amdahl(&points),
        options,
        levels,
    })
}

async fn measure(
    client: &ContendedClient<observability::rpc::RpcChannel>,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Level> {
    let start = Instant::now() + warmup;
    let end = start + window;
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let busy_us = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let mut client = client.clone();
        let (completed, errors, busy_us) = (completed.clone(), errors.clone(), busy_us.clone());
        tasks.spawn(async move {
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let reply = client.work(WorkRequest {}).await;
                let done = Instant::now();
                // Only calls that both start and end in the window count
                // towards latency; every completion inside it counts
                // towards throughput.
                if done >= start && done < end {
                    match reply {
                        Ok(_) => {
                            completed.fetch_add(1, Ordering::Relaxed);
                            if sent >= start {
                                let us = (done - sent).as_micros();
                                busy_us.fetch_add(u64::try_from(us)?, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a client task failed")??;
    }
    let completed = completed.load(Ordering::Relaxed);
    let busy = Duration::from_micros(busy_us.load(Ordering::Relaxed));
    Ok(Level {
        clients,
        completed,
        errors: errors.load(Ordering::Relaxed),
        throughput: completed as f64 / window.as_secs_f64(),
        latency: busy / u32::try_from(completed.max(1)).unwrap_or(u32::MAX),
    })
}

impl UslReport {
    /// The measured level of highest throughput.
    pub fn measured_peak(&self) -> Option<&Level> {
        self.levels.iter().reduce(|best, l| {
            if l.throughput > best.throughput {
                l
            } else {
                best
            }
        })
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let c = self.options.costs;
        writeln!(
            out,
            "Contended service: parallel {} µs, serial {} µs, crosstalk {} µs per other call in flight",
            c.parallel.as_micros(),
            c.serial.as_micros(),
            c.crosstalk.as_micros()
        )?;
        writeln!(
            out,
            "{:>4}  {:>11}  {:>10}  {:>13}  {:>10}  {:>6}",
            "N", "measured/s", "USL fit/s", "Amdahl fit/s", "latency ms", "errors"
        )?;
        let predicted = |fit: &Result<UslFit, _>, n: f64| match fit {
            Ok(f) => format!("{:.1}", f.model.throughput(n)),
            Err(_) => "-".to_owned(),
        };
        for l in &self.levels {
            let n = l.clients as f64;
            writeln!(
                out,
                "{:>4}  {:>11.1}  {:>10}  {:>13}  {:>10.2}  {:>6}",
                l.clients,
                l.throughput,
                predicted(&self.fit, n),
                predicted(&self.amdahl, n),
                l.latency.as_secs_f64() * 1e3,
                l.errors
            )?;
        }
        match &self.fit {
            Ok(f) => {
                let m = f.model;
                writeln!(
                    out,
                    "USL fit      λ = {:.1}/s  σ = {:.4}  κ = {:.5}  R² = {:.4}",
                    m.lambda, m.sigma, m.kappa, f.r_squared
                )?;
                match (m.peak_concurrency(), m.peak_throughput()) {
                    (Some(n), Some(x)) => writeln!(
                        out,
                        "predicted    peak at N* = √((1−σ)/κ) = {n:.1}, {x:.1}/s"
                    )?,
                    _ => writeln!(
                        out,
                        "predicted    no peak (κ = 0: Amdahl's flattening curve)"
                    )?,
                }
            }
            Err(err) => writeln!(out, "USL fit      failed: {err}")?,
        }
        if let Some(peak) = self.measured_peak() {
            writeln!(
                out,
                "measured     peak at N = {}, {:.1}/s",
                peak.clients, peak.throughput
            )?;
        }
        if let Ok(a) = &self.amdahl {
            writeln!(
                out,
                "Amdahl fit   σ = {:.4}, R² = {:.4}: it predicts no peak at all",
                a.model.sigma, a.r_squared
            )?;
        }
        Ok(())
    }

    /// One line: `{"sigma","kappa","peak_n","measured_peak_n","points"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let model = self.fit.as_ref().ok().map(|f| f.model);
        json!({
            "sigma": model.map(|m| m.sigma),
            "kappa": model.map(|m| m.kappa),
            "peak_n": model.and_then(|m| m.peak_concurrency()),
            "measured_peak_n": self.measured_peak().map(|l| l.clients),
            "points": self.levels.iter().map(|l| json!({
                "n": l.clients,
                "throughput": l.throughput,
            })).collect::<Vec<_>>(),
        })
    }

    /// Measured points, the USL fit and Amdahl's fit on one chart.
    pub fn chart(&self) -> LineChart {
        let measured = self
            .levels
            .iter()
            .map(|l| (l.clients as f64, l.throughput))
            .collect();
        let top = self.levels.iter().map(|l| l.clients).max().unwrap_or(1) as f64;
        let curve = |fit: &UslFit| {
            (0..=200)
                .map(|i| {
                    let n = 1.0 + (top - 1.0) * f64::from(i) / 200.0;
                    (n, fit.model.throughput(n))
                })
                .collect()
        };
        let mut chart = LineChart::new(
            "Universal Scalability Law: Contended service",
            "concurrency N (clients in a closed loop)",
            "throughput (calls/s)",
        )
        .series(Series::marked("measured", measured));
        if let Ok(f) = &self.fit {
            chart = chart.series(Series::line(
                format!("USL fit σ={:.3} κ={:.4}", f.model.sigma, f.model.kappa),
                curve(f),
            ));
        }
        if let Ok(a) = &self.amdahl {
            chart = chart.series(Series::line(
                format!("Amdahl fit σ={:.3}", a.model.sigma),
                curve(a),
            ));
        }
        chart
    }
}

/// Writes `usl.svg` into `dir`, creating it; returns the file's path.
pub fn write_svg(report: &UslReport, dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let svg = report.chart().to_svg()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("usl.svg");
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `dslab bench usl`'s arguments; every one has a default.
#[derive(clap::Args, Debug)]
pub struct UslArgs {
    /// Work each call does in parallel with the others (a timer wait), µs.
    #[arg(long, default_value_t = 10_000)]
    pub parallel_us: u64,
    /// Work each call does holding the shared lock (contention), µs.
    #[arg(long, default_value_t = 400)]
    pub serial_us: u64,
    /// Extra time in the lock per other call in flight (coherency), µs.
    #[arg(long, default_value_t = 100)]
    pub crosstalk_us: u64,
    /// Concurrency levels to sweep, e.g. 1,2,4,8,16,32.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// How long each level is measured, ms.
    #[arg(long)]
    pub window_ms: Option<u64>,
    /// End with one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the curve, measured points and fits as DIR/usl.svg.
    #[arg(long, value_name = "DIR")]
    pub svg: Option<std::path::PathBuf>,
    /// A sweep of about a second (for tests).
    #[arg(long, hide = true)]
    pub quick: bool,
}

impl UslArgs {
    pub fn options(&self) -> anyhow::Result<UslBenchOptions> {
        let mut options = if self.quick {
            UslBenchOptions::quick()
        } else {
            UslBenchOptions::standard()
        };
        options.costs = Costs::new(
            Duration::from_micros(self.parallel_us),
            Duration::from_micros(self.serial_us),
            Duration::from_micros(self.crosstalk_us),
        )?;
        if let Some(levels) = &self.levels {
            options.levels.clone_from(levels);
        }
        if let Some(ms) = self.window_ms {
            options.window = Duration::from_millis(ms);
        }
        Ok(options)
    }

    /// Runs the sweep and prints the table (and the JSON line, the SVG).
    pub fn run(&self) -> anyhow::Result<()> {
        let options = self.options()?;
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let report = runtime.block_on(bench_usl(options, &mut std::io::stderr()))?;
        // With --json, stdout carries only the JSON line.
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        let table: &mut dyn Write = if self.json { &mut stderr } else { &mut stdout };
        report.print(&mut &mut *table)?;
        if let Some(dir) = &self.svg {
            writeln!(table, "figure: {}", write_svg(&report, dir)?.display())?;
        }
        if self.json {
            writeln!(stdout, "{}", report.to_json())?;
        }
        Ok(())
    }
}
