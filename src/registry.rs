//! The episode map, in one place: which module teaches which episode, the
//! test that proves it and the demo that shows it. `dslab list` prints it,
//! `dslab tour` runs its demos in order, and the README's map is checked
//! against it.

use futures_util::future::BoxFuture;
use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;

/// A live demo: narrates to the audience and checks its claims.
pub type DemoFn = for<'a> fn(&'a mut Narrator, &'a SpanCapture) -> BoxFuture<'a, DemoResult>;

/// A demo the tour can run.
#[derive(Clone, Copy)]
pub struct Demo {
    /// What to type after `dslab demo`.
    pub name: &'static str,
    /// Course episodes it shows, primary first.
    pub episodes: &'static str,
    pub run: DemoFn,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo").field("name", &self.name).finish()
    }
}

/// Every demo, in the order the tour runs them.
pub fn demos() -> Vec<Demo> {
    vec![
        Demo {
            name: "trace-propagation",
            episodes: "31, 34",
            run: |out, spans| Box::pin(observability::relay::trace_propagation(out, spans)),
        },
        Demo {
            name: "trace-sampling",
            episodes: "31",
            run: |out, spans| Box::pin(observability::sampling::trace_sampling(out, spans)),
        },
        Demo {
            name: "failure-detectors",
            episodes: "13, 4, 11",
            run: |out, spans| {
                Box::pin(observability::failure_detector::failure_detectors_demo(
                    out, spans,
                ))
            },
        },
        Demo {
            name: "consistent-hashing",
            episodes: "28, 24, 1",
            run: |out, spans| Box::pin(patterns::hashing::consistent_hashing(out, spans)),
        },
        Demo {
            name: "correlated-failure",
            episodes: "1",
            run: |out, spans| Box::pin(patterns::correlation::correlated_failure_demo(out, spans)),
        },
        Demo {
            name: "speed-of-light",
            episodes: "2, 13",
            run: |out, spans| Box::pin(consensus::geo::speed_of_light_demo(out, spans)),
        },
        Demo {
            name: "load-balancing",
            episodes: "28",
            run: |out, spans| Box::pin(patterns::balance::load_balancing_demo(out, spans)),
        },
        Demo {
            name: "caching",
            episodes: "29",
            run: |out, spans| Box::pin(patterns::cache::caching_demo(out, spans)),
        },
        Demo {
            name: "circuit-breaker",
            episodes: "37",
            run: |out, spans| {
                Box::pin(resilience::circuit_breaker::circuit_breaker_demo(
                    out, spans,
                ))
            },
        },
        Demo {
            name: "retry-storm",
            episodes: "8, 40",
            run: |out, spans| Box::pin(resilience::retry_storm::retry_storm_demo(out, spans)),
        },
        Demo {
            name: "queueing",
            episodes: "25, 26, 7",
            run: |out, spans| Box::pin(patterns::queueing::queueing_demo(out, spans)),
        },
        Demo {
            name: "metastable",
            episodes: "9, 8, 7",
            run: |out, spans| Box::pin(patterns::metastable::metastable_demo(out, spans)),
        },
        Demo {
            name: "percolation",
            episodes: "10, 8, 37",
            run: |out, spans| Box::pin(patterns::percolation::percolation_demo(out, spans)),
        },
        Demo {
            name: "slo-burn",
            episodes: "32, 36",
            run: |out, spans| Box::pin(resilience::detection::slo_burn_demo(out, spans)),
        },
        Demo {
            name: "gray-failure",
            episodes: "11, 36",
            run: |out, spans| Box::pin(resilience::detection::gray_failure_demo(out, spans)),
        },
        Demo {
            name: "linearizability",
            episodes: "19, 4",
            run: |out, spans| Box::pin(replication::register::linearizability_demo(out, spans)),
        },
        Demo {
            name: "consistency-models",
            episodes: "19",
            run: |out, spans| {
                Box::pin(replication::consistency::sequential::consistency_models_demo(out, spans))
            },
        },
        Demo {
            name: "clocks",
            episodes: "20, 3, 22",
            run: |out, spans| Box::pin(replication::clock::clocks_demo(out, spans)),
        },
        Demo {
            name: "crdt-partition",
            episodes: "21, 22",
            run: |out, spans| Box::pin(replication::crdt_replica::crdt_partition_demo(out, spans)),
        },
        Demo {
            name: "quorum-tradeoffs",
            episodes: "14, 19, 22",
            run: |out, spans| Box::pin(replication::quorum::quorum_tradeoffs_demo(out, spans)),
        },
        Demo {
            name: "raft-failover",
            episodes: "17, 13",
            run: |out, spans| Box::pin(consensus::raft::raft_failover_demo(out, spans)),
        },
        Demo {
            name: "leader-election",
            episodes: "17, 4",
            run: |out, spans| Box::pin(consensus::election::leader_election_demo(out, spans)),
        },
        Demo {
            name: "distributed-lock",
            episodes: "16, 4",
            run: |out, spans| Box::pin(consensus::lock::distributed_lock_demo(out, spans)),
        },
        Demo {
            name: "two-phase-commit",
            episodes: "18, 14",
            run: |out, spans| Box::pin(consensus::transaction::two_phase_commit_demo(out, spans)),
        },
        Demo {
            name: "three-phase-commit-partition",
            episodes: "18, 14",
            run: |out, spans| {
                Box::pin(consensus::transaction::three_phase_commit_partition_demo(
                    out, spans,
                ))
            },
        },
        Demo {
            name: "saga",
            episodes: "18, 40",
            run: |out, spans| Box::pin(consensus::transaction::saga_demo(out, spans)),
        },
        Demo {
            name: "event-sourcing",
            episodes: "23, 22",
            run: |out, spans| Box::pin(consensus::bank::event_sourcing_demo(out, spans)),
        },
    ]
}

/// The demo called `name`, if any.
pub fn demo(name: &str) -> Option<Demo> {
    demos().into_iter().find(|demo| demo.name == name)
}

/// One row of the episode map.
#[derive(Clone, Copy, Debug)]
pub struct Topic {
    /// Course episode numbers, primary first (`"31"`, `"4, 12"`).
    pub episodes: &'static str,
    /// `crate::module` holding the code.
    pub module: &'static str,
    /// What the module teaches, in a few words.
    pub summary: &'static str,
    /// The test filter an instructor types, after `cargo test`.
    pub tests: &'static str,
    /// The demo that shows it, if any.
    pub demo: Option<&'static str>,
}

/// Every topic, in course-map order.
pub fn topics() -> Vec<Topic> {
    vec![
        Topic {
            episodes: "31",
            module: "observability::relay",
            summary: "trace context across three services",
            tests: "-p observability relay_",
            demo: Some("trace-propagation"),
        },
        Topic {
            episodes: "31, 4",
            module: "observability::rpc",
            summary: "one RPC stack: spans, deadlines, limits on what a client can make a server hold, health, reflection",
            tests: "-p observability rpc",
            demo: Some("trace-propagation"),
        },
        Topic {
            episodes: "31",
            module: "observability::sampling",
            summary: "head sampling (ratio, parent-based, rate-limited) and tail sampling that keeps every error and slow trace; the blind 1 % twin",
            tests: "-p observability sampling_",
            demo: Some("trace-sampling"),
        },
        Topic {
            episodes: "33",
            module: "observability::telemetry::json_logs",
            summary: "`--log-format json`: one JSON object per log event, carrying its trace_id and span_id",
            tests: "-p observability telemetry_json",
            demo: None,
        },
        Topic {
            episodes: "34, 31",
            module: "observability::critical_path",
            summary: "the critical path of a trace, and the hop that dominates its latency",
            tests: "-p observability critical_path",
            demo: Some("trace-propagation"),
        },
        Topic {
            episodes: "32",
            module: "observability::metrics",
            summary: "RED metrics per gRPC method, scraped by Prometheus from `/metrics` (`dslab serve … --metrics-listen`)",
            tests: "-p observability red_metrics",
            demo: Some("trace-propagation"),
        },
        Topic {
            episodes: "32, 37, 38, 41",
            module: "resilience::metrics",
            summary: "breakers, bulkheads and limiters as Prometheus collectors: state, transitions, refusals",
            tests: "-p resilience resilience_metrics",
            demo: None,
        },
        Topic {
            episodes: "32, 17",
            module: "consensus::raft::metrics",
            summary: "a Raft member's leadership, term and indexes as Prometheus metrics",
            tests: "-p consensus raft_metrics",
            demo: None,
        },
        Topic {
            episodes: "35",
            module: "observability::profiling",
            summary: "sampling CPU profiles as flame graphs (`dslab demo … --flamegraph FILE.svg`)",
            tests: "-p observability profiling_",
            demo: None,
        },
        Topic {
            episodes: "13, 4, 11",
            module: "observability::failure_detector",
            summary: "heartbeats over gRPC; fixed timeout vs phi accrual: detection time against false suspicions",
            tests: "-p observability failure_detector",
            demo: Some("failure-detectors"),
        },
        Topic {
            episodes: "32, 36",
            module: "observability::slo",
            summary: "SLOs, error budgets and burn rates; the SRE workbook's multi-window, multi-burn-rate alerts over RED counters; the single-threshold twin",
            tests: "-p observability slo_",
            demo: Some("slo-burn"),
        },
        Topic {
            episodes: "11, 36",
            module: "observability::gray_failure",
            summary: "differential observability: what callers see against the health check, binomial tail tests; the health-check-only twin",
            tests: "--workspace gray_failure",
            demo: Some("gray-failure"),
        },
        Topic {
            episodes: "4, 12",
            module: "observability::sim",
            summary: "seeded simulation: partitions, crashes, replay",
            tests: "-p observability sim_",
            demo: None,
        },
        Topic {
            episodes: "34, 12",
            module: "observability::fuzz",
            summary: "a hostile client for every service: malformed, oversized and extreme requests",
            tests: "--workspace fuzz_",
            demo: None,
        },
        Topic {
            episodes: "28, 24",
            module: "patterns::hashing",
            summary: "consistent hashing: ring, the course's ring, jump, rendezvous, Maglev, bounded loads",
            tests: "-p patterns hashing",
            demo: Some("consistent-hashing"),
        },
        Topic {
            episodes: "24",
            module: "patterns::sharding",
            summary: "hash, range and consistent sharding; resharding plans",
            tests: "-p patterns sharding",
            demo: Some("consistent-hashing"),
        },
        Topic {
            episodes: "1",
            module: "patterns::correlation",
            summary: "correlated failure: φ, Pearson and Spearman; a detector that names the hidden shared dependency; P(all down) independent vs common cause; staged rollouts across cells and the version-skew twin",
            tests: "-p patterns correlation_",
            demo: Some("correlated-failure"),
        },
        Topic {
            episodes: "2",
            module: "patterns::physics",
            summary: "the speed of light: great-circle distance, RTT floors at c/1.47 for real city pairs, latency matrices for the simulation, majority commit latency by leader site",
            tests: "-p patterns physics_",
            demo: Some("speed-of-light"),
        },
        Topic {
            episodes: "2, 13",
            module: "consensus::geo",
            summary: "Raft commit latency for 3- and 5-replica placements across regions, measured in simulation and on emulated links against the floor",
            tests: "-p consensus geo_",
            demo: Some("speed-of-light"),
        },
        Topic {
            episodes: "1",
            module: "patterns::sharding::shuffle",
            summary: "shuffle sharding: overlap and blast radius, exact and simulated",
            tests: "-p patterns shuffle",
            demo: Some("consistent-hashing"),
        },
        Topic {
            episodes: "1",
            module: "patterns::sharding::cells",
            summary: "cell-based architecture: tenant → cell routing with pins",
            tests: "-p patterns cells",
            demo: None,
        },
        Topic {
            episodes: "28",
            module: "patterns::balance",
            summary: "load balancing: round robin, smooth weighted RR, least outstanding, p2c, peak-EWMA as tower services (`dslab bench balance`)",
            tests: "-p patterns balance",
            demo: Some("load-balancing"),
        },
        Topic {
            episodes: "24, 28",
            module: "patterns::shard_router",
            summary: "ShardRouter gRPC service (`dslab serve shard-router`)",
            tests: "-p patterns shard_router",
            demo: None,
        },
        Topic {
            episodes: "25, 26, 7",
            module: "patterns::queueing",
            summary: "M/M/1, M/M/c (Erlang C), G/G/1 (Kingman) and Little's law, checked by a simulator; unbounded FIFO (the twin), bounded FIFO, CoDel and adaptive LIFO at 120% load",
            tests: "-p patterns queueing",
            demo: Some("queueing"),
        },
        Topic {
            episodes: "9, 8, 7",
            module: "patterns::metastable",
            summary: "metastable failure: a 3 s spike switches on a retry loop that outlives it (the twin stays down); retry budget, load shedding, adaptive LIFO and capacity each end it",
            tests: "-p patterns metastable",
            demo: Some("metastable"),
        },
        Topic {
            episodes: "10, 8, 37",
            module: "patterns::percolation",
            summary: "Erdős–Rényi and Barabási–Albert service graphs: the giant component at ⟨k⟩ = 1, random vs hubs-first removal, SIR cascades with and without circuit breakers",
            tests: "-p patterns percolation",
            demo: Some("percolation"),
        },
        Topic {
            episodes: "12, 4, 36",
            module: "patterns::chaos",
            summary: "chaos experiments: a steady-state hypothesis, faults (crash, partition, loss, latency, Flaky), verification, an abort that heals at once; on a simulation or real processes behind the runner's TCP proxies (`dslab chaos run FILE`)",
            tests: "-p patterns chaos",
            demo: None,
        },
        Topic {
            episodes: "26, 30",
            module: "patterns::pool",
            summary: "a bounded connection pool sized by Little's law; acquire with a timeout",
            tests: "-p patterns pool",
            demo: None,
        },
        Topic {
            episodes: "29",
            module: "patterns::cache",
            summary: "cache-aside with TTL, single-flight loads, XFetch early expiration, lease-guarded fills, a consistent-hashed cache tier; the stampede and invalidation-race twins",
            tests: "-p patterns cache",
            demo: Some("caching"),
        },
        Topic {
            episodes: "37",
            module: "resilience::circuit_breaker",
            summary: "Resilience4j-style breaker: windows, slow calls, half-open probes; naive twin",
            tests: "-p resilience circuit_breaker",
            demo: Some("circuit-breaker"),
        },
        Topic {
            episodes: "38",
            module: "resilience::bulkhead",
            summary: "per-dependency concurrency isolation",
            tests: "-p resilience bulkhead",
            demo: None,
        },
        Topic {
            episodes: "39",
            module: "resilience::timeout",
            summary: "per-call timeouts; deadlines that carry the remaining time across hops",
            tests: "-p resilience timeout",
            demo: None,
        },
        Topic {
            episodes: "40, 8",
            module: "resilience::retry",
            summary: "retries on real tonic calls: backoff, jitter, budgets, idempotency, deadlines",
            tests: "-p resilience retry",
            demo: Some("retry-storm"),
        },
        Topic {
            episodes: "8",
            module: "resilience::retry_storm",
            summary: "the retry storm, simulated: work amplification by policy",
            tests: "-p resilience retry_storm",
            demo: Some("retry-storm"),
        },
        Topic {
            episodes: "25, 8",
            module: "resilience::des",
            summary: "the discrete-event engine: a seeded event queue in (time, insertion) order and a clock that jumps; the retry storm and the queueing simulator run on it",
            tests: "-p resilience des",
            demo: Some("retry-storm"),
        },
        Topic {
            episodes: "41",
            module: "resilience::rate_limit",
            summary: "token bucket, lock-free GCRA, keyed limits; clones share one limit",
            tests: "-p resilience rate_limit",
            demo: None,
        },
        Topic {
            episodes: "42, 7, 26",
            module: "resilience::adaptive",
            summary: "AIMD, Vegas, Gradient2 limits; load shedding; client-side throttling",
            tests: "-p resilience adaptive",
            demo: None,
        },
        Topic {
            episodes: "12",
            module: "resilience::flaky",
            summary: "Flaky: a backend that fails as scripted, gray failures that only some callers see included (`dslab serve flaky`)",
            tests: "-p resilience flaky",
            demo: Some("circuit-breaker"),
        },
        Topic {
            episodes: "36, 32, 11",
            module: "resilience::detection",
            summary: "incident detection on a real Flaky: burn-rate alerts through a blip, an outage and a slow leak; gray failure caught by callers, missed by health checks",
            tests: "-p resilience gray_failure",
            demo: Some("slo-burn"),
        },
        Topic {
            episodes: "19, 4",
            module: "replication::consistency",
            summary: "linearizability checker (`dslab check`), session guarantees, recorder, timelines",
            tests: "-p replication consistency",
            demo: Some("linearizability"),
        },
        Topic {
            episodes: "19, 34",
            module: "replication::consistency::sequential",
            summary: "sequential-consistency checker (`dslab check --consistency sequential`): one order keeping each client's program order, all keys at once (not compositional)",
            tests: "-p replication sequential",
            demo: Some("consistency-models"),
        },
        Topic {
            episodes: "19",
            module: "replication::register",
            summary: "a linearizable register and its stale-reading twin",
            tests: "-p replication register",
            demo: Some("linearizability"),
        },
        Topic {
            episodes: "30, 19",
            module: "replication::read_split",
            summary: "read/write splitting: session position tokens keep read-your-writes; the token-less twin reads stale",
            tests: "-p replication read_split",
            demo: None,
        },
        Topic {
            episodes: "20, 3",
            module: "replication::clock",
            summary: "Lamport, vector and hybrid logical clocks, version vectors, dotted siblings, NTP's estimate, TrueTime commit-wait",
            tests: "-p replication clock",
            demo: Some("clocks"),
        },
        Topic {
            episodes: "21",
            module: "replication::crdt",
            summary: "delta-state CRDTs: counters, sets, registers, OR-Sets with and without tombstones, maps; checked against the crdts crate; the sum-merged twin",
            tests: "-p replication crdt_",
            demo: Some("crdt-partition"),
        },
        Topic {
            episodes: "22, 21",
            module: "replication::crdt_replica",
            summary: "CrdtReplica: named CRDTs gossiped by delta and full-state anti-entropy through partitions (`dslab serve crdt-replica`, `dslab crdt`)",
            tests: "-p replication crdt_replica",
            demo: Some("crdt-partition"),
        },
        Topic {
            episodes: "14, 19, 22",
            module: "replication::quorum",
            summary: "a Dynamo-style leaderless KV: N replicas on the hash ring, R and W per request, siblings by dotted version vectors, sloppy quorum with hinted handoff, read repair, Merkle anti-entropy (`dslab serve quorum-kv`, `dslab bench quorum-kv`)",
            tests: "-p replication quorum",
            demo: Some("quorum-tradeoffs"),
        },
        Topic {
            episodes: "18, 23",
            module: "replication::log",
            summary: "a durable append-only log: framed, CRC-checked, fsynced; torn tails cut, corruption refused",
            tests: "-p replication durable_log",
            demo: None,
        },
        Topic {
            episodes: "13, 17, 14, 19",
            module: "consensus::raft",
            summary: "a durable, linearizable Raft KV on raft-rs: Ready loop, raft-engine log, snapshots, ReadIndex and leader-lease reads, membership, transfer; broken twins for local and drift-blind lease reads (`dslab serve raft-kv`)",
            tests: "-p consensus raft_",
            demo: Some("raft-failover"),
        },
        Topic {
            episodes: "13",
            module: "consensus::mvcc",
            summary: "etcd's multi-version store: revisions, ranges, transactions, compaction",
            tests: "-p consensus mvcc_",
            demo: None,
        },
        Topic {
            episodes: "13, 14",
            module: "consensus::etcd",
            summary: "the etcd v3 API (KV, Watch, Lease, Cluster, Maintenance, Lock, Election) with etcd's errors; `etcdctl` and `dslab kv` drive it, `dslab bench kv` loads it",
            tests: "-p consensus etcd_",
            demo: Some("raft-failover"),
        },
        Topic {
            episodes: "17, 4",
            module: "consensus::election",
            summary: "bully and ring elections as gRPC services: messages counted, time to elect, the split brain both allow; compared with Raft's",
            tests: "-p consensus election_",
            demo: Some("leader-election"),
        },
        Topic {
            episodes: "16, 17, 4",
            module: "consensus::lease",
            summary: "leases: TTLs and attached keys replicated, expiry decided by the leader's clock and proposed through the log, restarted on failover",
            tests: "-p consensus lease_",
            demo: Some("distributed-lock"),
        },
        Topic {
            episodes: "16, 13",
            module: "consensus::etcd::watch",
            summary: "watches: a cursor over the applied log, every change once and in order, across failovers and reconnects from a revision",
            tests: "-p consensus watch_",
            demo: None,
        },
        Topic {
            episodes: "16, 17, 4",
            module: "consensus::lock",
            summary: "etcd's lock and election recipes, fencing tokens, a FencedStore and its unfenced twin that loses updates (`dslab serve fenced-store`)",
            tests: "-p consensus lock_",
            demo: Some("distributed-lock"),
        },
        Topic {
            episodes: "18, 23",
            module: "consensus::transaction::ledger",
            summary: "Accounts and Inventory: ledgers with holds, TCC reservations that expire, idempotent credits; the 2PC/3PC participant that resolves its doubts (`dslab serve accounts`, `inventory`)",
            tests: "-p consensus transaction_ledger",
            demo: Some("saga"),
        },
        Topic {
            episodes: "18, 14",
            module: "consensus::transaction::two_phase",
            summary: "two-phase commit: presumed abort, blocking in doubt, recovery from the coordinator's log; three-phase commit and its split decision (`dslab serve tpc-coordinator`)",
            tests: "-p consensus transaction_commit",
            demo: Some("two-phase-commit"),
        },
        Topic {
            episodes: "18, 40, 23",
            module: "consensus::transaction::saga",
            summary: "orchestrated sagas: a saga log, idempotency keys, compensation in reverse, resumption after a crash; the twin without keys; the choreographed variant; Shipping (`dslab serve saga-orchestrator`, `shipping`)",
            tests: "-p consensus transaction_saga",
            demo: Some("saga"),
        },
        Topic {
            episodes: "23, 13",
            module: "consensus::event_store",
            summary: "the event store on etcd's v3 API: append = a Txn comparing stream versions, subscribe = a Watch; passes the backend suite on the Raft KV through a leader failover, and on a real etcd",
            tests: "-p consensus event_store_",
            demo: Some("event-sourcing"),
        },
        Topic {
            episodes: "23, 22, 14",
            module: "consensus::bank",
            summary: "an event-sourced bank ledger: commands decide against aggregates and append with version checks, balance and audit projections, idempotent retries, transfers completed after a crash (`dslab serve ledger`)",
            tests: "-p consensus bank_",
            demo: Some("event-sourcing"),
        },
        Topic {
            episodes: "18, 40, 4",
            module: "tests/bank_transfer_saga",
            summary: "thousands of transfers across three banks through lost replies, duplicates and crashes: the books balance",
            tests: "--test bank_transfer_saga",
            demo: Some("saga"),
        },
    ]
}

/// The episode map as plain columns, for a terminal.
pub fn plain() -> String {
    topics()
        .iter()
        .map(|topic| {
            format!(
                "{:<8} {:<28} {:<20} cargo test {:<28} {}\n",
                topic.episodes,
                topic.module,
                topic.demo.unwrap_or("—"),
                topic.tests,
                topic.summary
            )
        })
        .collect()
}

/// The episode map as a Markdown table (the README embeds this verbatim).
pub fn markdown() -> String {
    let mut out =
        String::from("| Episode | Module | What it shows | Test | Demo |\n|---|---|---|---|---|\n");
    for topic in topics() {
        let demo = topic
            .demo
            .map_or_else(|| "—".to_owned(), |name| format!("`dslab demo {name}`"));
        out.push_str(&format!(
            "| {} | `{}` | {} | `cargo test {}` | {} |\n",
            topic.episodes, topic.module, topic.summary, topic.tests, demo
        ));
    }
    out
}
