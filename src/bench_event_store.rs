//! `dslab bench event-store`: appends per second on the embedded event
//! store and on the Raft KV (through the etcd-API backend), measured in
//! the same run, and how fast a projection catches up on each.
//!
//! Both backends are durable: the embedded store fsyncs its log on every
//! append; the Raft KV (three members in this process, on 127.0.0.1,
//! each with its log on disk) commits every append on a majority, each
//! member syncing its raft-engine log. With `--in-memory` both keep their
//! logs in memory, leaving only the protocol's cost. `--etcd` measures an
//! external cluster (a real etcd, say) instead of starting one.
//!
//! Appends: `--writers` clients, each on its own stream (no conflicts:
//! this measures the write path, not contention), one event per append
//! ("if the stream is at v"), until `--events` in total. Catch-up: a new
//! subscription from the start of the log, until it has delivered every
//! event, folding each into a count per stream.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use consensus::event_store::EtcdEventStore;
use consensus::raft::{NodeConfig, RaftNode, Storage};
use hdrhistogram::Histogram;
use observability::rpc::{Net, ServerHandle};
use replication::event_sourcing::{
    EmbeddedStore, EventStore, ExpectedVersion, NewEvent, Position, StreamName, Version,
};
use replication::log::{FileDisk, LogDisk, MemDisk};
use tokio::time::Instant;

/// `dslab bench event-store`'s arguments.
#[derive(clap::Args, Debug)]
pub struct EventStoreBenchArgs {
    /// Events appended to each backend.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Concurrent writers, each on its own stream.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Keep every log in memory (no fsync).
    #[arg(long)]
    pub in_memory: bool,
    /// Measure these etcd v3 endpoints (host:port, comma separated)
    /// instead of an in-process three-member Raft KV.
    #[arg(long, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// End with one line of JSON.
    #[arg(long)]
    pub json: bool,
}

/// One backend's figures.
#[derive(Clone, Debug)]
pub struct BackendFigures {
    pub backend: String,
    pub appends_per_second: f64,
    pub append_p50_ms: f64,
    pub append_p99_ms: f64,
    pub catch_up_events_per_second: f64,
}

impl EventStoreBenchArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.events > 0 && self.writers > 0,
            "--events and --writers must be positive"
        );
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let figures = runtime.block_on(self.measure())?;
        let mut stdout = std::io::stdout().lock();
        let mut table: Box<dyn std::io::Write> = if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        writeln!(
            table,
            "{} events, {} writers, logs {}:",
            self.events,
            self.writers,
            if self.in_memory {
                "in memory"
            } else {
                "on disk"
            }
        )?;
        writeln!(
            table,
            "  {:<22} {:>12} {:>10} {:>10} {:>16}",
            "backend", "appends/s", "p50 ms", "p99 ms", "catch-up ev/s"
        )?;
        for f in &figures {
            writeln!(
                table,
                "  {:<22} {:>12.0} {:>10.2} {:>10.2} {:>16.0}",
                f.backend,
                f.appends_per_second,
                f.append_p50_ms,
                f.append_p99_ms,
                f.catch_up_events_per_second
            )?;
        }
        if let [embedded, replicated] = figures.as_slice() {
            writeln!(
                table,
                "  replicated / embedded: appends {:.2}x, catch-up {:.2}x",
                replicated.appends_per_second / embedded.appends_per_second,
                replicated.catch_up_events_per_second / embedded.catch_up_events_per_second
            )?;
        }
        drop(table);
        if self.json {
            let rows: Vec<_> = figures
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "backend": f.backend,
                        "appends_per_second": f.appends_per_second,
                        "append_p50_ms": f.append_p50_ms,
                        "append_p99_ms": f.append_p99_ms,
                        "catch_up_events_per_second": f.catch_up_events_per_second,
                    })
                })
                .collect();
            writeln!(stdout, "{}", serde_json::Value::Array(rows))?;
        }
        Ok(())
    }

    async fn measure(&self) -> anyhow::Result<Vec<BackendFigures>> {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let embedded = if self.in_memory {
            measure(
                "embedded",
                EmbeddedStore::open(Box::new(MemDisk::new()) as Box<dyn LogDisk + Send>)?,
                self,
            )
            .await?
        } else {
            let disk = FileDisk::open(dir.path().join("events.log")).context("the event log")?;
            measure(
                "embedded",
                EmbeddedStore::open(Box::new(disk) as Box<dyn LogDisk + Send>)?,
                self,
            )
            .await?
        };
        let replicated = if self.etcd.is_empty() {
            let (nodes, servers) = raft_cluster(3, self.in_memory, dir.path()).await?;
            let addresses: Vec<String> =
                servers.iter().map(|s| s.local_addr().to_string()).collect();
            let store = EtcdEventStore::connect(Net::Tcp, &addresses, "/bench/")?;
            let figures = measure("raft-kv (3 members)", store, self).await?;
            for node in &nodes {
                node.stop().await;
            }
            figures
        } else {
            let store = EtcdEventStore::connect(
                Net::Tcp,
                &self.etcd,
                &format!("/bench-{}/", rand::random::<u32>()),
            )?;
            measure("etcd endpoints", store, self).await?
        };
        Ok(vec![embedded, replicated])
    }
}

/// Three Raft KV members on 127.0.0.1, elected.
async fn raft_cluster(
    members: u64,
    in_memory: bool,
    dir: &std::path::Path,
) -> anyhow::Result<(Vec<RaftNode>, Vec<ServerHandle>)> {
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=members {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        peers.insert(id, listener.local_addr()?.to_string());
        listener.set_nonblocking(true)?;
        listeners.push(listener);
    }
    let (mut nodes, mut servers) = (Vec::new(), Vec::new());
    for (id, listener) in (1..=members).zip(listeners) {
        let storage = if in_memory {
            Storage::Memory(consensus::raft::MemDisk::new())
        } else {
            Storage::Dir(dir.join(format!("raft-{id}")))
        };
        let node = RaftNode::start(NodeConfig::new(id, peers.clone(), storage, Net::Tcp)).await?;
        let server = consensus::etcd::Services::new(&node, Net::Tcp)
            .into_server()
            .bind_tcp(tokio::net::TcpListener::from_std(listener)?)?
            .spawn();
        nodes.push(node);
        servers.push(server);
    }
    nodes[0]
        .wait_for_leader(Duration::from_secs(20))
        .await
        .context("the Raft KV elected no leader")?;
    Ok((nodes, servers))
}

fn deposit(writer: usize, n: usize) -> NewEvent {
    NewEvent {
        event_type: "Deposited".into(),
        schema_version: 2,
        payload: format!(r#"{{"amount_cents":1,"request_id":"w{writer}-{n}"}}"#).into_bytes(),
    }
}

/// Appends `--events` events with `--writers` writers, then times a
/// catch-up from the start.
async fn measure<S: EventStore + 'static>(
    name: &str,
    store: S,
    args: &EventStoreBenchArgs,
) -> anyhow::Result<BackendFigures> {
    let store = Arc::new(store);
    eprintln!("{name}: appending {} events", args.events);
    let started = Instant::now();
    let per_writer = args.events.div_ceil(args.writers);
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let store = store.clone();
        let count = per_writer.min(args.events.saturating_sub(writer * per_writer));
        tasks.push(tokio::spawn(async move {
            let stream = StreamName::new(format!("account-bench{writer}"))?;
            let mut latencies = Histogram::<u64>::new(3)?;
            for n in 0..count {
                let sent = Instant::now();
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(Version(n as u64)),
                        vec![deposit(writer, n)],
                    )
                    .await?;
                latencies.record(sent.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Histogram::<u64>::new(3)?;
    for task in tasks {
        latencies.add(task.await??)?;
    }
    let appended = latencies.len() as f64;
    let append_seconds = started.elapsed().as_secs_f64();

    eprintln!("{name}: catching up from the start");
    let started = Instant::now();
    let mut subscription = store.subscribe(Position::START).await?;
    let mut per_stream: BTreeMap<StreamName, u64> = BTreeMap::new();
    let mut seen = 0u64;
    while seen < latencies.len() {
        let event = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .context("the subscription stalled")?
            .context("the subscription ended")??;
        *per_stream.entry(event.stream).or_default() += 1;
        seen += 1;
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    Ok(BackendFigures {
        backend: name.to_owned(),
        appends_per_second: appended / append_seconds,
        append_p50_ms: latencies.value_at_quantile(0.5) as f64 / 1000.0,
        append_p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        catch_up_events_per_second: seen as f64 / catch_up_seconds,
    })
}
