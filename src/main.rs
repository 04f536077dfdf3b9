//! The `dslab` command line. Parsing only; the work is in the library.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use dslab::bench::{BenchOptions, bench_kv};
use dslab::bench_transactions::{TransactionBenchOptions, bench_transactions};
use dslab::check::{CheckOptions, check_file};
use dslab::check_transactional::{
    TransactionalOptions, check_transactional_file, is_transactional_model,
};
use dslab::kv::{Endpoints, GetOptions, MemberChange};
use dslab::registry;
use dslab::serve::{RaftArgs, SERVICES, ServeConfig, serve};
use dslab::tour::{run_demo, summarize, tour};
use observability::demo::Narrator;
use observability::profiling::Profiler;
use observability::sampling::{SAMPLER_NAMES, SamplingConfig};
use observability::telemetry::{self, LogFormat, TelemetryConfig};
use patterns::hashing::{Strategy, StrategyConfig, place};

#[derive(Parser, Debug)]
#[command(
    name = "dslab",
    version,
    about = "Distributed-systems mechanisms you can run, break and watch recover."
)]
struct Cli {
    /// Export spans over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Which traces are kept: OpenTelemetry's sampler names, plus
    /// parentbased_ratelimited and tail [default: parentbased_always_on].
    #[arg(
        long,
        global = true,
        env = "OTEL_TRACES_SAMPLER",
        value_parser = clap::builder::PossibleValuesParser::new(SAMPLER_NAMES)
    )]
    trace_sampler: Option<String>,
    /// The sampler's argument: a ratio (0.1), traces per second (100), or
    /// for tail `keep=0.1,slow_ms=500,max_traces=512,spans_per_trace=64,wait_ms=10000`.
    #[arg(long, global = true, env = "OTEL_TRACES_SAMPLER_ARG")]
    trace_sampler_arg: Option<String>,
    /// Logs on stderr as text, or as one JSON object per line carrying
    /// trace_id and span_id.
    #[arg(long, global = true, env = "DSLAB_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Print the episode map: episode, module, test filter, demo.
    List {
        /// As the Markdown table the README embeds.
        #[arg(long)]
        markdown: bool,
    },
    /// Run one live demo.
    Demo {
        /// The demo's name, as `dslab list` shows it.
        name: String,
        #[command(flatten)]
        figures: Figures,
        /// Profile the demo's CPU and write a flame graph (SVG) here.
        #[arg(long, value_name = "FILE.svg")]
        flamegraph: Option<std::path::PathBuf>,
    },
    /// Run every demo in course order, then a summary; fails if any claim fails.
    Tour {
        #[command(flatten)]
        figures: Figures,
    },
    /// Run one service on real TCP until Ctrl-C.
    Serve {
        /// The service to run.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(SERVICES))]
        service: String,
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// A peer: a relay's or Flaky's next hop (host:port); another Raft
        /// KV member, CRDT replica or quorum KV node (ID=host:port, its --listen
        /// address);
        /// a saga orchestrator's or commit coordinator's participant, or a
        /// ledger's coordinator and fellow participants (NAME=host:port);
        /// repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// This instance's name (a relay's hop name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        placement: PlacementArgs,
        #[command(flatten)]
        flaky: FlakyArgs,
        #[command(flatten)]
        raft: RaftKvArgs,
        /// Shipping: a destination the carrier refuses (repeatable).
        #[arg(long = "unserved")]
        unserved: Vec<String>,
        /// Fenced store: accept every write whatever its token (the
        /// broken twin).
        #[arg(long)]
        unfenced: bool,
        /// Exit when stdin reaches end of file: the lifeline of a process
        /// started by `dslab chaos run`, whose pipe closes when the runner
        /// dies, however it dies.
        #[arg(long, hide = true)]
        exit_on_stdin_eof: bool,
        /// Ledger: where its events live — `embedded` (a log in
        /// --data-dir) or `etcd=HOST:PORT,…` (a Raft KV or etcd cluster).
        #[arg(long, value_name = "embedded|etcd=ENDPOINTS")]
        event_store: Option<String>,
        /// Serve Prometheus metrics at http://ADDR/metrics. Without it,
        /// OpenTelemetry's OTEL_EXPORTER_PROMETHEUS_HOST / _PORT (either
        /// one; defaults localhost and 9464) turn the endpoint on.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Admission control: calls served at once by the whole process;
        /// more are refused with RESOURCE_EXHAUSTED at once.
        #[arg(long, value_name = "N")]
        max_concurrent: Option<usize>,
        /// Admission control: calls per second (burst of the same size);
        /// more are refused with RESOURCE_EXHAUSTED and a retry pushback.
        #[arg(long, value_name = "PER_SECOND")]
        rate_limit: Option<u32>,
    },
    /// Chaos experiments: steady state, faults, verification, abort.
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// Consistent hashing from the command line.
    #[command(subcommand)]
    Hash(HashCommand),
    /// Talk to a Raft KV cluster (or etcd) over the etcd v3 API.
    Kv {
        #[command(flatten)]
        endpoints: EndpointArgs,
        #[command(subcommand)]
        command: KvCommand,
    },
    /// Update and read objects on a CRDT replica (`serve crdt-replica`).
    Crdt {
        /// The replica to call (host:port).
        #[arg(long, default_value = "127.0.0.1:50051")]
        endpoint: String,
        #[command(subcommand)]
        command: CrdtCommand,
    },
    /// Load generators.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check a recorded history for linearizability, or (--consistency)
    /// sequential or causal consistency, or (--model list-append|rw-register)
    /// transactional isolation (exit 0: holds, 1: violated, 2: unknown
    /// within the budget, 3: bad input).
    Check {
        /// A JSON-lines history (dslab's, or the conformance format).
        file: std::path::PathBuf,
        /// kv, register or etcd-register (detected from the operations if
        /// omitted), or list-append / rw-register for transactions.
        #[arg(long)]
        model: Option<String>,
        /// Give up with "unknown" after this long, e.g. 10s, 500ms, 2m.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        budget: std::time::Duration,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Write a self-contained HTML timeline of the history here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        /// Also check the session guarantees (get/append histories).
        #[arg(long)]
        sessions: bool,
        /// With --model list-append or rw-register: the isolation level to
        /// judge (strict-serializable, serializable, snapshot-isolation,
        /// repeatable-read, read-committed, read-uncommitted) [default: serializable].
        #[arg(long)]
        isolation: Option<String>,
        /// With a transactional model: add real-time edges (T1 returned
        /// before T2 was called), as strict serializability needs.
        #[arg(long)]
        realtime: bool,
        /// With a transactional model: add process-order edges.
        #[arg(long)]
        process_order: bool,
        /// The promise to check: linearizable; sequential (one order
        /// keeping each client's program order, real time ignored); causal
        /// (CC), causal-convergence (CCv) or causal-memory (CM).
        #[arg(long, default_value = "linearizable")]
        consistency: String,
    },
}

/// `10s`, `500ms`, `2m`, `1.5s`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s or m")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|err| err.to_string())
}

/// Where `kv` and `bench` send requests.
#[derive(Args, Debug, Clone)]
struct EndpointArgs {
    /// Members' addresses, comma separated (host:port or http://host:port).
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// How long one request may take, e.g. 5s.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_COMMAND_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration
    )]
    command_timeout: std::time::Duration,
}

#[derive(Subcommand, Debug)]
enum KvCommand {
    /// Write a key.
    Put {
        key: String,
        value: String,
        /// Print the value it replaced.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Read a key, a prefix or a range.
    Get {
        key: String,
        /// Up to (not including) this key.
        range_end: Option<String>,
        /// Every key starting with KEY.
        #[arg(long)]
        prefix: bool,
        /// As of this revision (0: the latest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// At most this many keys (0: no limit).
        #[arg(long, default_value_t = 0)]
        limit: i64,
        #[arg(long)]
        keys_only: bool,
        #[arg(long)]
        count_only: bool,
        /// l (linearizable, through the leader) or s (this node's state).
        #[arg(long, default_value = "l", value_parser = ["l", "s"])]
        consistency: String,
    },
    /// Delete a key or a prefix.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Print what was deleted.
        #[arg(long)]
        prev_kv: bool,
    },
    /// A transaction in etcdctl's syntax on stdin: compares, a blank line,
    /// operations on success, a blank line, operations on failure.
    Txn,
    /// List members; add, remove or promote one first.
    Members {
        /// Add a member with this peer URL (http://host:port).
        #[arg(long)]
        add: Option<String>,
        /// With --add: as a learner.
        #[arg(long)]
        learner: bool,
        #[arg(long)]
        remove: Option<u64>,
        #[arg(long)]
        promote: Option<u64>,
    },
    /// Each endpoint's member id, leader, term, indexes and size.
    Status,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Closed-loop load over the etcd v3 API against dslab or etcd.
    Kv(BenchKvArgs),
    /// Lock cycles per second under contention, with etcd's lock recipe,
    /// against dslab or etcd.
    Lock(BenchLockArgs),
    /// Watch delivery latency (put sent to event received), and a check
    /// that every event arrives once and in order, against dslab or etcd.
    Watch(BenchWatchArgs),
    /// What a saga orchestrator and a 2PC coordinator cost over the same
    /// participant calls made directly (services in this process, on
    /// 127.0.0.1, with their logs on disk).
    Transactions(BenchTransactionsArgs),
    /// Event appends per second on the embedded store and on the Raft KV
    /// (the etcd-API backend), in the same run, and projection catch-up.
    EventStore(dslab::bench_event_store::EventStoreBenchArgs),
    /// Load balancers over Flaky backends on loopback, one of them slow:
    /// p50, p99 and the slow node's share per balancer, with tower's p2c
    /// (PeakEwma) as the peer.
    Balance(dslab::bench_balance::BenchBalanceArgs),
    /// Sweep a contended service's throughput over concurrency and fit the
    /// Universal Scalability Law: σ, κ, the predicted and measured peak.
    Usl(dslab::bench_usl::UslArgs),
    /// The latency ladder on this machine, from an L1 hit to a gRPC call,
    /// beside the commonly quoted numbers.
    Ladder(dslab::bench_ladder::LadderArgs),
    /// Throughput against latency for batch sizes, lingers and gRPC
    /// compression, on loopback.
    Batching(dslab::bench_batching::BatchingArgs),
    /// Put and get latency p50 / p99 of the quorum KV for (N, R, W) =
    /// (3, 1, 1), (3, 2, 2) and (3, 3, 1), three nodes on loopback.
    QuorumKv(dslab::bench_quorum::QuorumBenchArgs),
}

#[derive(Args, Debug)]
struct BenchLockArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Contenders, each with its own lease and connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchWatchArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Writers putting to the watched prefix, one put in flight each.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Watchers of the prefix, spread over the endpoints.
    #[arg(long, default_value_t = 1)]
    watchers: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchTransactionsArgs {
    /// Transfers per saga round.
    #[arg(long, default_value_t = 2_000)]
    sagas: usize,
    /// Transfers in flight at once.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// 2PC transactions per round (one at a time).
    #[arg(long, default_value_t = 300)]
    transactions: usize,
    /// Rounds of each side, alternating; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Keep every log in memory (no fsync): the orchestration alone.
    #[arg(long)]
    in_memory: bool,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchKvArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// HTTP/2 connections per endpoint, shared by the clients.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Keys are drawn uniformly from this many.
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Share of requests that are puts (the rest read one key).
    #[arg(long, default_value_t = 1.0)]
    put_ratio: f64,
    /// Reads served by the contacted member alone.
    #[arg(long)]
    serializable: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// End with one line of JSON.
    #[arg(long)]
    json: bool,
}

impl BenchKvArgs {
    fn options(self) -> BenchOptions {
        BenchOptions {
            endpoints: self.endpoints.endpoints,
            clients: self.clients,
            connections: self.connections,
            duration: self.duration,
            key_space: self.key_space,
            value_size: self.value_size,
            put_ratio: self.put_ratio,
            serializable: self.serializable,
            seed: self.seed,
        }
    }
}

#[derive(Subcommand, Debug)]
enum CrdtCommand {
    /// Add to a G-Counter.
    Increment { name: String, amount: u64 },
    /// Add to a PN-Counter (negative to subtract).
    Add {
        name: String,
        #[arg(allow_negative_numbers = true)]
        amount: i64,
    },
    /// Add an element to an OR-Set.
    Insert { name: String, element: String },
    /// Remove an element from an OR-Set (as this replica sees it).
    Remove { name: String, element: String },
    /// Write an MV register, replacing what this replica holds; with
    /// --resolve, read first and replace exactly the siblings read.
    Write {
        name: String,
        value: String,
        #[arg(long)]
        resolve: bool,
    },
    /// Assign an LWW register (stamped by the replica's hybrid clock).
    Assign { name: String, value: String },
    /// Read an object: TYPE is counter, pn-counter, set, register or lww.
    Read { r#type: String, name: String },
    /// What the replica has seen and shipped.
    Status,
}

#[derive(Subcommand, Debug)]
enum HashCommand {
    /// Read keys on stdin (one per line), print `key<TAB>node` lines.
    Place(#[command(flatten)] PlacementArgs),
    /// Print balance, movement on join/leave and memory per strategy.
    Analyze {
        #[command(flatten)]
        placement: PlacementArgs,
        /// Analyze every strategy, not just --strategy.
        #[arg(long)]
        all: bool,
        /// Sample keys (key-0, key-1, …).
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
    },
}

/// How keys are placed: the strategy, its knobs, the members.
#[derive(Args, Debug, Clone)]
struct PlacementArgs {
    /// ring, course-ring, jump, rendezvous, maglev or bounded.
    #[arg(long, default_value = "ring", value_parser = parse_strategy)]
    strategy: Strategy,
    /// Members, comma separated (repeatable).
    #[arg(long = "nodes", value_delimiter = ',')]
    nodes: Vec<String>,
    /// Virtual nodes per unit of weight (rings).
    #[arg(long, default_value_t = 150)]
    vnodes: u32,
    /// Maglev lookup table size (a prime).
    #[arg(long, default_value_t = patterns::hashing::maglev::DEFAULT_TABLE_SIZE)]
    table_size: u64,
    /// Bounded loads: the most a node may hold, as a multiple of the mean.
    #[arg(long, default_value_t = patterns::hashing::bounded::DEFAULT_CAPACITY_FACTOR)]
    capacity_factor: f64,
}

/// A Raft KV member (`serve raft-kv`).
#[derive(Args, Debug, Clone)]
struct RaftKvArgs {
    /// Raft KV, CRDT replica and quorum KV: this member's id (1, 2, 3, …).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Raft KV and the transaction services: where the logs (and
    /// snapshots) live (created if absent; the same command on a non-empty
    /// directory restarts the service where it left off).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Raft KV: join an existing cluster (after `member add`) instead of
    /// founding one with the --peer members.
    #[arg(long)]
    join: bool,
    /// Raft KV and CRDT replica: a secret every member shares (16+
    /// characters); peers without it are refused. Prefer the environment
    /// variable.
    #[arg(long, env = "DSLAB_PEER_SECRET", hide_env_values = true)]
    peer_secret: Option<String>,
}

/// `dslab chaos …`.
#[derive(Subcommand, Debug)]
enum ChaosCommand {
    /// Run the experiment in FILE (JSON: "experiment" and one target,
    /// "simulation" or "processes"); exit 0 if its hypothesis held, 1 if
    /// not, 3 for a bad definition (nothing started), 4 if the run failed
    /// or was interrupted (the windows measured so far are printed).
    Run { file: std::path::PathBuf },
}

/// Flaky's starting script (the rest is set with its `Configure` RPC).
#[derive(Args, Debug, Clone)]
struct FlakyArgs {
    /// Flaky: share of calls that fail (0..=1), with UNAVAILABLE.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Flaky: time each call takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Flaky: calls served at once (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    capacity: u32,
    /// Flaky: calls that may wait for capacity before RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 0)]
    queue: u32,
}

impl FlakyArgs {
    fn script(&self) -> resilience::flaky::proto::Script {
        resilience::flaky::proto::Script {
            error_rate: self.error_rate,
            latency: Some(resilience::flaky::proto::Latency {
                base_micros: self.latency_ms.saturating_mul(1000),
                jitter_micros: 0,
                distribution: 0,
            }),
            capacity: self.capacity,
            queue: self.queue,
            ..Default::default()
        }
    }
}

fn parse_strategy(name: &str) -> Result<Strategy, String> {
    name.parse().map_err(|err: patterns::Error| err.to_string())
}

impl PlacementArgs {
    fn config(&self, strategy: Strategy) -> StrategyConfig {
        StrategyConfig {
            strategy,
            vnodes: self.vnodes,
            table_size: self.table_size,
            capacity_factor: self.capacity_factor,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A usage error is bad input, exit 3 like every other refusal: for
        // `dslab check`, 2 means "unknown within the budget".
        Err(err) if err.use_stderr() => {
            let _ = err.print();
            return ExitCode::from(3);
        }
        // --help and --version.
        Err(err) => err.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dslab: {err:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::List { markdown } => {
            list(markdown);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Hash(command) => return hash(command),
        Command::Chaos(ChaosCommand::Run { file }) => {
            return Ok(ExitCode::from(dslab::chaos::run_file(&file)?));
        }
        Command::Kv { endpoints, command } => return kv(endpoints, command),
        Command::Crdt { endpoint, command } => return crdt(&endpoint, command),
        Command::Bench(BenchCommand::Kv(args)) => {
            let json = args.json;
            return bench(&args.options(), json);
        }
        Command::Bench(BenchCommand::Lock(args)) => {
            let endpoints = args.endpoints.endpoints;
            let report = client_runtime()?.block_on(dslab::bench_coordination::bench_lock(
                &endpoints,
                args.clients,
                args.duration,
            ))?;
            return print_coordination(&report, args.json, args.clients, &endpoints);
        }
        Command::Bench(BenchCommand::Watch(args)) => {
            let endpoints = args.endpoints.endpoints;
            let report = client_runtime()?.block_on(dslab::bench_coordination::bench_watch(
                &endpoints,
                args.clients,
                args.watchers,
                args.duration,
            ))?;
            return print_coordination(&report, args.json, args.clients, &endpoints);
        }
        Command::Bench(BenchCommand::Balance(args)) => {
            dslab::bench_balance::run_cli(&args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::EventStore(args)) => {
            args.run()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Usl(args)) => {
            args.run()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::QuorumKv(args)) => {
            args.run()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Ladder(args)) => {
            args.run()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Batching(args)) => {
            args.run()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Transactions(args)) => {
            let options = TransactionBenchOptions {
                sagas: args.sagas,
                clients: args.clients,
                transactions: args.transactions,
                rounds: args.rounds,
                in_memory: args.in_memory,
            };
            // Multi-threaded: the services and the load share this process,
            // as they would share a machine.
            tokio::runtime::Runtime::new()
                .context("starting the tokio runtime")?
                .block_on(bench_transactions(options, args.json))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Check {
            file,
            model,
            budget,
            json,
            html,
            sessions,
            isolation,
            realtime,
            process_order,
            consistency,
        } => {
            if let Some(name) = model.as_deref().filter(|m| is_transactional_model(m)) {
                let mut options = TransactionalOptions::new(name, isolation.as_deref(), budget)?;
                options.realtime |= realtime;
                options.process_order = process_order;
                options.json = json;
                options.html = html;
                return Ok(ExitCode::from(check_transactional_file(
                    &file,
                    &options,
                    &mut std::io::stdout().lock(),
                )?));
            }
            anyhow::ensure!(
                isolation.is_none() && !realtime && !process_order,
                "--isolation, --realtime and --process-order need --model list-append or rw-register"
            );
            let options = CheckOptions {
                model,
                budget,
                json,
                html,
                sessions,
                // Parsed here, not by clap: a bad name must exit 3 (bad
                // input), and clap's own usage errors exit 2 ("unknown").
                consistency: consistency.parse()?,
            };
            return Ok(ExitCode::from(check_file(
                &file,
                &options,
                &mut std::io::stdout().lock(),
            )?));
        }
        _ => {}
    }
    // Refused before anything starts: a sampler quietly falling back to
    // keeping everything is a surprise best had now.
    let sampling = SamplingConfig::parse(
        cli.trace_sampler.as_deref(),
        cli.trace_sampler_arg.as_deref(),
    )?;
    let serving = matches!(cli.command, Command::Serve { .. });
    // A service binds before anything else, so that its names (and the
    // service name it exports spans under) carry the port the OS chose.
    let mut listener = None;
    let mut metrics_listener = None;
    let service_name = match &cli.command {
        Command::Serve {
            service,
            name,
            listen,
            metrics_listen,
            ..
        } => {
            let bound = std::net::TcpListener::bind(listen)
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = bound.local_addr().context("the listen address")?;
            listener = Some(bound);
            metrics_listener = dslab::serve::metrics_listener(*metrics_listen)?;
            dslab::serve::default_service_name(service, name.as_deref(), address)
        }
        _ => "dslab".to_owned(),
    };
    // Multi-threaded: the exporter's batches go out from its own thread
    // through a channel that runs on this runtime, including during the
    // final flush, while the main thread waits for it.
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let telemetry = {
        let _inside = runtime.enter();
        telemetry::init(TelemetryConfig {
            service_name,
            otlp_endpoint: cli.otlp_endpoint,
            default_log_filter: if serving { "info" } else { "warn" }.into(),
            capture_spans: !serving,
            sampling,
            log_format: cli.log_format,
        })?
    };
    let exported_as = telemetry.service_name().to_owned();
    let code = runtime.block_on(async {
        let spans = telemetry.capture().cloned().unwrap_or_default();
        let out = Narrator::stdout();
        match cli.command {
            Command::Demo {
                name,
                figures,
                flamegraph,
            } => {
                let Some(demo) = registry::demo(&name) else {
                    let known: Vec<&str> = registry::demos().iter().map(|d| d.name).collect();
                    anyhow::bail!("no demo called {name:?}; demos: {}", known.join(", "));
                };
                let mut out = figures.narrator(out);
                let profiler = flamegraph
                    .map(|path| Profiler::start(&path).map(|profiler| (profiler, path)))
                    .transpose()?;
                let outcome = run_demo(demo, &mut out, &spans).await;
                let drawn = profiler.map(|(profiler, path)| {
                    profiler.write_flamegraph().map(|samples| {
                        out.say(&format!(
                            "flame graph of {samples} CPU samples: {}",
                            path.display()
                        ));
                    })
                });
                let passed = summarize(&mut out, &[outcome]);
                // The summary first, whatever became of the graph.
                drawn.transpose()?;
                Ok(exit_code(passed))
            }
            Command::Tour { figures } => {
                Ok(exit_code(tour(&mut figures.narrator(out), &spans).await))
            }
            Command::Serve {
                service,
                peers,
                name,
                placement,
                flaky,
                raft,
                unserved,
                unfenced,
                event_store,
                max_concurrent,
                rate_limit,
                exit_on_stdin_eof,
                ..
            } => {
                let listener = listener.context("the listener bound above")?;
                if exit_on_stdin_eof {
                    std::thread::spawn(|| {
                        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                        std::process::exit(0);
                    });
                }
                serve(ServeConfig {
                    service,
                    listener,
                    metrics_listener,
                    peers,
                    name,
                    service_name: exported_as,
                    placement: placement.config(placement.strategy),
                    nodes: placement.nodes,
                    script: flaky.script(),
                    unserved,
                    unfenced,
                    admission: resilience::server::Admission::new(max_concurrent, rate_limit)?,
                    raft: RaftArgs {
                        id: raft.id,
                        data_dir: raft.data_dir,
                        join: raft.join,
                        peer_secret: raft.peer_secret,
                    },
                    event_store,
                })
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::List { .. }
            | Command::Hash(_)
            | Command::Chaos(_)
            | Command::Check { .. }
            | Command::Kv { .. }
            | Command::Crdt { .. }
            | Command::Bench(_) => Ok(ExitCode::SUCCESS),
        }
    });
    // Flush exported spans even when the command failed; a collector
    // that cannot take them costs a warning, not the exit code.
    if let Err(err) = telemetry.shutdown() {
        tracing::warn!("flushing spans: {err}");
    }
    code
}

fn list(markdown: bool) {
    print!(
        "{}",
        if markdown {
            registry::markdown()
        } else {
            registry::plain()
        }
    );
}

fn hash(command: HashCommand) -> anyhow::Result<ExitCode> {
    match command {
        HashCommand::Place(args) => {
            anyhow::ensure!(
                !args.nodes.is_empty(),
                "--nodes is required: the members to place keys on"
            );
            let mut placement = args.config(args.strategy).build_with(&args.nodes)?;
            place::place_stream(
                placement.as_mut(),
                std::io::stdin().lock(),
                std::io::stdout().lock(),
            )?;
        }
        HashCommand::Analyze {
            placement,
            all,
            keys,
        } => {
            let strategies = if all {
                Strategy::ALL.to_vec()
            } else {
                vec![placement.strategy]
            };
            let configs: Vec<_> = strategies
                .into_iter()
                .map(|s| placement.config(s))
                .collect();
            dslab::hash::analyze(&configs, &placement.nodes, keys, &mut Narrator::stdout())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A plain runtime for client commands (no telemetry: their output is
/// the answer).
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the tokio runtime")
}

fn kv(args: EndpointArgs, command: KvCommand) -> anyhow::Result<ExitCode> {
    let endpoints = Endpoints {
        addresses: args.endpoints,
        timeout: args.command_timeout,
    };
    let out = &mut std::io::stdout().lock();
    client_runtime()?.block_on(async {
        match command {
            KvCommand::Put {
                key,
                value,
                prev_kv,
            } => dslab::kv::put(&endpoints, &key, &value, prev_kv, out).await?,
            KvCommand::Get {
                key,
                range_end,
                prefix,
                rev,
                limit,
                keys_only,
                count_only,
                consistency,
            } => {
                let options = GetOptions {
                    prefix,
                    range_end,
                    revision: rev,
                    limit,
                    keys_only,
                    count_only,
                    serializable: consistency == "s",
                };
                dslab::kv::get(&endpoints, &key, &options, out).await?
            }
            KvCommand::Del {
                key,
                prefix,
                prev_kv,
            } => dslab::kv::del(&endpoints, &key, prefix, prev_kv, out).await?,
            KvCommand::Txn => {
                let request = dslab::kv::parse_txn(std::io::stdin().lock())?;
                dslab::kv::txn(&endpoints, request, out).await?
            }
            KvCommand::Members {
                add,
                learner,
                remove,
                promote,
            } => {
                let change = MemberChange {
                    add,
                    learner,
                    remove,
                    promote,
                };
                dslab::kv::members(&endpoints, &change, out).await?
            }
            KvCommand::Status => {
                if !dslab::kv::status(&endpoints, out).await? {
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn crdt(endpoint: &str, command: CrdtCommand) -> anyhow::Result<ExitCode> {
    use dslab::crdt::{CrdtRequest, parse_kind};
    use replication::crdt_replica::Kind;
    use replication::proto::update_request::Operation;
    let update = |kind, name, operation| CrdtRequest::Update {
        kind,
        name,
        operation,
    };
    let request = match command {
        CrdtCommand::Increment { name, amount } => {
            update(Kind::GCounter, name, Operation::Increment(amount))
        }
        CrdtCommand::Add { name, amount } => update(Kind::PnCounter, name, Operation::Add(amount)),
        CrdtCommand::Insert { name, element } => {
            update(Kind::OrSet, name, Operation::Insert(element))
        }
        CrdtCommand::Remove { name, element } => {
            update(Kind::OrSet, name, Operation::Remove(element))
        }
        CrdtCommand::Write {
            name,
            value,
            resolve: true,
        } => CrdtRequest::Resolve { name, value },
        CrdtCommand::Write { name, value, .. } => update(
            Kind::MvRegister,
            name,
            Operation::Write(replication::proto::RegisterWrite {
                value,
                ..Default::default()
            }),
        ),
        CrdtCommand::Assign { name, value } => {
            update(Kind::LwwRegister, name, Operation::Assign(value))
        }
        CrdtCommand::Read { r#type, name } => CrdtRequest::Read {
            kind: parse_kind(&r#type)?,
            name,
        },
        CrdtCommand::Status => CrdtRequest::Status,
    };
    let out = &mut std::io::stdout().lock();
    client_runtime()?.block_on(dslab::crdt::run(endpoint, request, out))?;
    Ok(ExitCode::SUCCESS)
}

fn bench(options: &BenchOptions, json: bool) -> anyhow::Result<ExitCode> {
    let report = client_runtime()?.block_on(bench_kv(options, &mut std::io::stderr()))?;
    let out = &mut std::io::stdout().lock();
    report.print(out)?;
    if json {
        writeln!(out, "{}", report.to_json(options))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_coordination(
    report: &dslab::bench_coordination::CoordinationReport,
    json: bool,
    clients: usize,
    endpoints: &[String],
) -> anyhow::Result<ExitCode> {
    let out = &mut std::io::stdout().lock();
    report.print(out)?;
    if json {
        writeln!(out, "{}", report.to_json(clients, endpoints))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(all_held: bool) -> ExitCode {
    if all_held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Where the demos that draw put their figures.
#[derive(Args, Debug)]
struct Figures {
    /// Also write figures (detector trade-offs, burn-rate timelines) as
    /// SVG files in this directory, creating it.
    #[arg(long, value_name = "DIR")]
    svg: Option<std::path::PathBuf>,
}

impl Figures {
    fn narrator(self, out: Narrator) -> Narrator {
        match self.svg {
            Some(dir) => out.with_figures(dir),
            None => out,
        }
    }
}
