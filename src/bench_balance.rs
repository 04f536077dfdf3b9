//! `dslab bench balance`: the load balancers over real gRPC on loopback.
//!
//! Five `Flaky` backends on 127.0.0.1 (the last one ten times slower), an
//! open-loop Poisson stream of calls, and every balancer in turn — our
//! five (`patterns::balance`) and tower's own `p2c` over `PeakEwma`, the
//! peer — each over fresh backends, the same scripts and the same arrival
//! times, at several offered loads. Reported per balancer and load: p50
//! and p99 latency, the share of calls the slow node received, and the
//! calls that missed their deadline. `--svg DIR` draws p99 against the
//! offered load, one line per balancer.
//!
//! This is wall-clock time on a real network stack, so the numbers move
//! with the machine; the deterministic comparison is
//! `dslab demo load-balancing` and `cargo test -p patterns balance`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::try_join_all;
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use patterns::balance::experiment::{Balancer, Outcome, Scenario, run};
use resilience::flaky::proto::FILE_DESCRIPTOR_SET;
use serde_json::json;

/// What to run.
#[derive(Clone, Debug)]
pub struct BalanceBenchOptions {
    /// The scenario at every load; its `rate_per_second` is replaced by
    /// each of `rates` in turn.
    pub scenario: Scenario,
    pub rates: Vec<f64>,
    pub svg: Option<PathBuf>,
}

/// One balancer at one offered load.
#[derive(Clone, Debug)]
pub struct BalancePoint {
    pub rate: f64,
    pub outcome: Outcome,
}

/// Runs one balancer over fresh backends served on loopback.
async fn run_on_loopback(scenario: &Scenario, balancer: Balancer) -> anyhow::Result<Outcome> {
    let backends = scenario.backends()?;
    let servers = try_join_all(backends.iter().map(|backend| {
        RpcServer::new()
            .add_service(backend.clone().into_service(), FILE_DESCRIPTOR_SET)
            .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }))
    .await
    .context("starting the backends")?;
    let servers: Vec<_> = servers.into_iter().map(|s| s.spawn()).collect();
    // The server learns each call's deadline too, and gives up with it.
    let builder = ClientBuilder::new(Net::Tcp).default_deadline(scenario.deadline);
    let channels = servers
        .iter()
        .map(|server| builder.connect_lazy(server.uri()))
        .collect();
    let outcome = run(scenario, balancer, &backends, channels).await?;
    for server in servers {
        server.shutdown().await.context("stopping a backend")?;
    }
    Ok(outcome)
}

/// Runs every balancer at every rate, printing a row as each finishes.
pub async fn bench_balance(
    options: &BalanceBenchOptions,
    out: &mut impl Write,
) -> anyhow::Result<Vec<BalancePoint>> {
    anyhow::ensure!(
        !options.rates.is_empty(),
        "give at least one rate (--rates)"
    );
    let scenario = &options.scenario;
    scenario.validate()?;
    writeln!(
        out,
        "{} Flaky backends on 127.0.0.1, {} calls at once each, ~{} ms per call; n{} is {}x slower.",
        scenario.backends,
        scenario.capacity,
        scenario.fast.as_millis(),
        scenario.slow_node() + 1,
        scenario.slowdown
    )?;
    writeln!(
        out,
        "{} calls per balancer and load, Poisson arrivals, {} ms deadline.\n",
        scenario.requests,
        scenario.deadline.as_millis()
    )?;
    writeln!(
        out,
        "{:>7}  {:<22} {:>16} {:>10} {:>10} {:>9}",
        "calls/s", "balancer", "to the slow node", "p50", "p99", "timed out"
    )?;
    let mut points = Vec::new();
    for &rate in &options.rates {
        let at_rate = Scenario {
            rate_per_second: rate,
            ..scenario.clone()
        };
        for balancer in Balancer::all(scenario.seed) {
            let outcome = run_on_loopback(&at_rate, balancer).await?;
            writeln!(
                out,
                "{rate:>7.0}  {:<22} {:>15.1}% {:>10} {:>10} {:>9}",
                outcome.balancer,
                100.0 * outcome.slow_share(),
                ms(outcome.quantile(0.5)),
                ms(outcome.quantile(0.99)),
                outcome.failed
            )?;
            points.push(BalancePoint { rate, outcome });
        }
    }
    if let Some(dir) = &options.svg {
        let path = draw(dir, &points, scenario.deadline)?;
        writeln!(out, "\nfigure: {}", path.display())?;
    }
    Ok(points)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// p99 against offered load, one line per balancer, as `DIR/balance-p99.svg`.
fn draw(
    dir: &std::path::Path,
    points: &[BalancePoint],
    deadline: Duration,
) -> anyhow::Result<PathBuf> {
    let mut chart = LineChart::new(
        "p99 per balancer over gRPC on loopback, one backend 10x slower",
        "offered load (calls/s)",
        "p99 latency (ms)",
    )
    .log_y()
    .threshold("deadline", deadline.as_secs_f64() * 1e3);
    for name in Balancer::all(0).iter().map(Balancer::name) {
        let line = points
            .iter()
            .filter(|p| p.outcome.balancer == name)
            .map(|p| (p.rate, p.outcome.quantile(0.99).as_secs_f64() * 1e3))
            .collect();
        chart = chart.series(Series::marked(name, line));
    }
    let svg = chart.to_svg()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("balance-p99.svg");
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The results as one line of JSON.
pub fn to_json(points: &[BalancePoint]) -> serde_json::Value {
    let results: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            json!({
                "balancer": p.outcome.balancer,
                "rate": p.rate,
                "p50_ms": p.outcome.quantile(0.5).as_secs_f64() * 1e3,
                "p99_ms": p.outcome.quantile(0.99).as_secs_f64() * 1e3,
                "slow_share": p.outcome.slow_share(),
                "timed_out": p.outcome.failed,
                "calls": p.outcome.calls,
            })
        })
        .collect();
    json!({ "results": results })
}

/// `dslab bench balance` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchBalanceArgs {
    /// Flaky backends on loopback; the last one is the slow one.
    #[arg(long, default_value_t = 5)]
    pub backends: usize,
    /// How many times slower the slow backend is.
    #[arg(long, default_value_t = 10)]
    pub slowdown: u32,
    /// Mean latency of a healthy backend, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub latency_ms: u64,
    /// Calls each backend serves at once; the rest queue.
    #[arg(long, default_value_t = 2)]
    pub capacity: u32,
    /// Offered loads to run, in calls per second (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [200.0, 300.0, 400.0])]
    pub rates: Vec<f64>,
    /// Calls per balancer and load.
    #[arg(long, default_value_t = 1_500)]
    pub requests: usize,
    /// Each call's deadline, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub deadline_ms: u64,
    /// Seeds the arrivals, the backends' latencies and the random policies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also draw p99 per balancer as DIR/balance-p99.svg, creating DIR.
    #[arg(long, value_name = "DIR")]
    pub svg: Option<PathBuf>,
    /// End with one line of JSON.
    #[arg(long)]
    pub json: bool,
}

impl BenchBalanceArgs {
    pub fn options(&self) -> BalanceBenchOptions {
        BalanceBenchOptions {
            scenario: Scenario {
                backends: self.backends,
                fast: Duration::from_millis(self.latency_ms),
                slowdown: self.slowdown,
                capacity: self.capacity,
                rate_per_second: self.rates.first().copied().unwrap_or(1.0),
                requests: self.requests,
                deadline: Duration::from_millis(self.deadline_ms),
                seed: self.seed,
            },
            rates: self.rates.clone(),
            svg: self.svg.clone(),
        }
    }
}

/// Runs the bench on a multi-threaded runtime (the backends and the load
/// share this process, as they would share a machine) and prints it.
pub fn run_cli(args: &BenchBalanceArgs) -> anyhow::Result<()> {
    let options = args.options();
    // With --json, stdout carries only the JSON line; the table goes to
    // stderr.
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let table: &mut dyn std::io::Write = if args.json { &mut stderr } else { &mut stdout };
    let points = tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(bench_balance(&options, &mut &mut *table))?;
    if args.json {
        println!("{}", to_json(&points));
    }
    Ok(())
}
