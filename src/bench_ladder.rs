//! `dslab bench ladder`: the latency ladder, measured on this machine
//! (Episode 6, "Latency Numbers Every Engineer Should Know").
//!
//! Each rung is timed here and printed, fastest first, decade by decade,
//! beside the number engineers usually quote for it. The reference column
//! is Jeff Dean's "Numbers Everyone Should Know" (Google, 2009; the same
//! table circulates as Peter Norvig's and as "Latency numbers every
//! programmer should know"). Its numbers are from 2009 hardware: a disk
//! seek there is a spinning disk's, and "round trip within same datacenter"
//! crosses real switches, where our loopback round trips cross none.
//!
//! How each rung is measured:
//! - cache and memory: a dependent pointer chase (each load's address is
//!   the previous load's value, a random single cycle built with Sattolo's
//!   algorithm) over 16 KiB (L1), 128 KiB (L2) and 128 MiB (main memory) —
//!   dependent loads cannot overlap, so time per step is the latency;
//! - an uncontended `std::sync::Mutex` lock and unlock;
//! - a system call: `getppid` (through `std::os::unix::process::parent_id`),
//!   which the C library does not cache;
//! - fsync: rewrite 4 KiB of a temporary file, then `fsync` it, in the
//!   directory given (the current one by default: `/tmp` is often memory);
//! - a loopback TCP round trip: one byte each way, Nagle off;
//! - a loopback gRPC unary call through `observability::rpc` (trace
//!   context, deadlines, RED metrics and all) to a
//!   `patterns::scalability::Contended` with every cost zero.
//!
//! Each rung runs [`REPEATS`] batches and reports the median batch's mean.
//! Bounds: the memory rung allocates 128 MiB (8 MiB with `--quick`); the
//! whole ladder takes well under a minute.

use std::io::{Read as _, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

/// Batches per rung; the median batch is reported.
pub const REPEATS: usize = 3;

/// A number from the reference table.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// The row's wording in the table.
    pub row: &'static str,
    pub ns: f64,
}

/// One measured rung.
#[derive(Clone, Debug)]
pub struct Rung {
    pub name: &'static str,
    pub ns: f64,
    pub reference: Option<Reference>,
}

/// How much work each rung does.
#[derive(Clone, Debug)]
pub struct LadderOptions {
    /// A fast, smaller run, for tests of the command's output.
    pub quick: bool,
    /// Where the fsync rung writes its temporary file.
    pub fsync_dir: std::path::PathBuf,
}

struct Scale {
    chase_steps: usize,
    memory_bytes: usize,
    memory_steps: usize,
    loop_iterations: usize,
    fsyncs: usize,
    round_trips: usize,
}

impl LadderOptions {
    fn scale(&self) -> Scale {
        if self.quick {
            Scale {
                chase_steps: 100_000,
                memory_bytes: 8 << 20,
                memory_steps: 20_000,
                loop_iterations: 100_000,
                fsyncs: 5,
                round_trips: 200,
            }
        } else {
            Scale {
                chase_steps: 20_000_000,
                memory_bytes: 128 << 20,
                memory_steps: 2_000_000,
                loop_iterations: 10_000_000,
                fsyncs: 200,
                round_trips: 20_000,
            }
        }
    }
}

fn reference(row: &'static str, ns: f64) -> Option<Reference> {
    Some(Reference { row, ns })
}

/// Runs every rung; `progress` gets a line as each finishes.
pub fn bench_ladder(
    options: &LadderOptions,
    progress: &mut impl Write,
) -> anyhow::Result<Vec<Rung>> {
    let scale = options.scale();
    let mut rungs = Vec::new();
    let mut rung = |name, ns: f64, reference| -> anyhow::Result<()> {
        writeln!(progress, "  {name}: {}", human(ns))?;
        rungs.push(Rung {
            name,
            ns,
            reference,
        });
        Ok(())
    };
    let l1 = median(|| chase(16 << 10, scale.chase_steps));
    rung("l1_cache_hit", l1, reference("L1 cache reference", 0.5))?;
    let l2 = median(|| chase(128 << 10, scale.chase_steps));
    rung("l2_cache_hit", l2, reference("L2 cache reference", 7.0))?;
    let memory = median(|| chase(scale.memory_bytes, scale.memory_steps));
    rung(
        "main_memory",
        memory,
        reference("Main memory reference", 100.0),
    )?;
    let mutex = median(|| mutex_lock_unlock(scale.loop_iterations));
    rung(
        "mutex_lock_unlock",
        mutex,
        reference("Mutex lock/unlock", 25.0),
    )?;
    let syscall = median(|| getppid(scale.loop_iterations / 10));
    rung("syscall_getppid", syscall, None)?;
    let fsync = median_of(|| fsync_4k(&options.fsync_dir, scale.fsyncs))?;
    rung(
        "fsync_4k_write",
        fsync,
        reference("Disk seek", 10_000_000.0),
    )?;
    let tcp = median_of(|| tcp_round_trip(scale.round_trips))?;
    rung(
        "tcp_loopback_round_trip",
        tcp,
        reference("Round trip within same datacenter", 500_000.0),
    )?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let grpc = runtime.block_on(grpc_round_trip(scale.round_trips / 4))?;
    rung(
        "grpc_loopback_unary",
        grpc,
        reference("Round trip within same datacenter", 500_000.0),
    )?;
    Ok(rungs)
}

fn median(mut batch: impl FnMut() -> f64) -> f64 {
    median_of(|| anyhow::Ok(batch())).unwrap_or(f64::NAN)
}

fn median_of(mut batch: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut runs = (0..REPEATS)
        .map(|_| batch())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[REPEATS / 2])
}

/// Nanoseconds per dependent load over a buffer of `bytes`.
fn chase(bytes: usize, steps: usize) -> f64 {
    let len = (bytes / std::mem::size_of::<usize>()).max(2);
    // Sattolo's algorithm: a uniformly random permutation with a single
    // cycle, so the chase visits every slot before it repeats and the
    // prefetcher cannot guess the next address.
    let mut next: Vec<usize> = (0..len).collect();
    let mut rng = SmallRng::seed_from_u64(6);
    for i in (1..len).rev() {
        let j = rng.random_range(0..i);
        next.swap(i, j);
    }
    let mut at = 0;
    // Warm the caches (and the page tables) with one lap.
    for _ in 0..len.min(steps) {
        at = next[at];
    }
    let start = Instant::now();
    for _ in 0..steps {
        at = next[at];
    }
    let elapsed = start.elapsed();
    std::hint::black_box(at);
    per(elapsed, steps)
}

fn mutex_lock_unlock(iterations: usize) -> f64 {
    let mutex = std::sync::Mutex::new(0_u64);
    let start = Instant::now();
    for _ in 0..iterations {
        // A poisoned lock still locks: into_inner keeps the loop honest.
        let mut guard = mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard += 1;
    }
    let elapsed = start.elapsed();
    std::hint::black_box(&mutex);
    per(elapsed, iterations)
}

fn getppid(iterations: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(std::os::unix::process::parent_id());
    }
    per(start.elapsed(), iterations)
}

fn fsync_4k(dir: &std::path::Path, count: usize) -> anyhow::Result<f64> {
    use std::os::unix::fs::FileExt as _;
    let file = tempfile::tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let block = [0x5a_u8; 4096];
    let start = Instant::now();
    for _ in 0..count {
        file.write_all_at(&block, 0)?;
        file.sync_all().context("fsync")?;
    }
    Ok(per(start.elapsed(), count))
}

fn tcp_round_trip(count: usize) -> anyhow::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut byte = [0_u8; 1];
        while stream.read(&mut byte)? == 1 {
            stream.write_all(&byte)?;
        }
        Ok(())
    });
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut byte = [7_u8; 1];
    // One trip to wake the echo thread before timing.
    stream.write_all(&byte)?;
    stream.read_exact(&mut byte)?;
    let start = Instant::now();
    for _ in 0..count {
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
    }
    let elapsed = start.elapsed();
    drop(stream);
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(per(elapsed, count))
}

async fn grpc_round_trip(count: usize) -> anyhow::Result<f64> {
    use observability::rpc::{ClientBuilder, Net, RpcServer};
    use patterns::scalability::service::proto::contended_client::ContendedClient;
    use patterns::scalability::service::proto::{FILE_DESCRIPTOR_SET, WorkRequest};
    use patterns::scalability::{Contended, Costs};

    let free = Costs::new(Duration::ZERO, Duration::ZERO, Duration::ZERO)?;
    let server = RpcServer::new()
        .add_service(Contended::new(free).into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, ([127, 0, 0, 1], 0).into())
        .await?
        .spawn();
    let channel = ClientBuilder::new(Net::Tcp).dial(&server.local_addr().to_string())?;
    let mut client = ContendedClient::new(channel);
    // The first call opens the connection; it is not a round trip.
    client.work(WorkRequest {}).await?;
    let mut runs = Vec::new();
    for _ in 0..REPEATS {
        let start = tokio::time::Instant::now();
        for _ in 0..count.max(1) {
            client.work(WorkRequest {}).await?;
        }
        runs.push(per(start.elapsed(), count.max(1)));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[REPEATS / 2])
}

fn per(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_nanos() as f64 / count.max(1) as f64
}

/// `12.3 ns`, `4.5 µs`, `6.7 ms`.
pub fn human(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// The decade a number falls in: 10^k ns, printed as `1 ns`, `10 µs`, ….
fn decade(ns: f64) -> String {
    let k = ns.max(0.1).log10().floor();
    human(10_f64.powf(k)).replace(".0", "")
}

/// The table, fastest first, a rule between decades.
pub fn print(rungs: &[Rung], out: &mut impl Write) -> std::io::Result<()> {
    let mut sorted: Vec<&Rung> = rungs.iter().collect();
    sorted.sort_by(|a, b| a.ns.total_cmp(&b.ns));
    writeln!(
        out,
        "{:<8}  {:<24}  {:>10}  {:>10}  {:>8}  reference row (Dean, 2009)",
        "decade", "rung", "measured", "reference", "ratio"
    )?;
    let mut last = String::new();
    for r in sorted {
        let d = decade(r.ns);
        if d != last && !last.is_empty() {
            writeln!(out, "{}", "-".repeat(72))?;
        }
        let (reference, ratio, row) = match r.reference {
            Some(reference) => (
                human(reference.ns),
                format!("{:.2}×", r.ns / reference.ns),
                reference.row,
            ),
            None => ("-".into(), "-".into(), "(not in the table)"),
        };
        writeln!(
            out,
            "{:<8}  {:<24}  {:>10}  {:>10}  {:>8}  {row}",
            if d == last { String::new() } else { d.clone() },
            r.name,
            human(r.ns),
            reference,
            ratio
        )?;
        last = d;
    }
    Ok(())
}

/// One line: `[{"name","ns"}, …]`, in measuring order.
pub fn to_json(rungs: &[Rung]) -> serde_json::Value {
    rungs
        .iter()
        .map(|r| json!({"name": r.name, "ns": r.ns}))
        .collect()
}

/// `dslab bench ladder`'s arguments.
#[derive(clap::Args, Debug)]
pub struct LadderArgs {
    /// Where the fsync rung writes its temporary file (use a real disk:
    /// /tmp is often memory).
    #[arg(long, default_value = ".")]
    pub fsync_dir: std::path::PathBuf,
    /// End with one line of JSON: [{"name","ns"}, …].
    #[arg(long)]
    pub json: bool,
    /// A smaller, faster run (for tests).
    #[arg(long, hide = true)]
    pub quick: bool,
}

impl LadderArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let options = LadderOptions {
            quick: self.quick,
            fsync_dir: self.fsync_dir.clone(),
        };
        let rungs = bench_ladder(&options, &mut std::io::stderr())?;
        // With --json, stdout carries only the JSON line; the table goes to
        // stderr, where a script piping stdout into a parser leaves it.
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        let table: &mut dyn Write = if self.json { &mut stderr } else { &mut stdout };
        print(&rungs, &mut &mut *table)?;
        if self.json {
            writeln!(stdout, "{}", to_json(&rungs))?;
        }
        Ok(())
    }
}
