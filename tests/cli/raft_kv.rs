//! `dslab serve raft-kv` as real processes: kill -9 under load, the `kv`
//! and `bench kv` commands, and etcd's own `etcdctl`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use consensus::proto::etcdserverpb::kv_client::KvClient;
use consensus::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use consensus::proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use tonic::transport::Channel;

use crate::support::{dslab, run, stdout};

/// One `dslab serve raft-kv` process; killed on drop.
struct Member {
    address: String,
    child: Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Free ports on 127.0.0.1 (bound, read and released).
pub(crate) fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binds"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").to_string())
        .collect()
}

/// A cluster of real processes sharing one temporary directory.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    addresses: Vec<String>,
    members: Vec<Option<Member>>,
}

impl Cluster {
    pub(crate) fn start(n: usize) -> Self {
        let mut cluster = Self {
            dir: tempfile::tempdir().expect("a temp dir"),
            addresses: free_addresses(n),
            members: (0..n).map(|_| None).collect(),
        };
        for id in 1..=n as u64 {
            cluster.start_member(id, false);
        }
        cluster
    }

    fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    fn peers(&self) -> Vec<String> {
        self.addresses
            .iter()
            .enumerate()
            .flat_map(|(i, a)| ["--peer".to_owned(), format!("{}={a}", i + 1)])
            .collect()
    }

    /// Starts (or restarts, from its data directory) member `id`.
    fn start_member(&mut self, id: u64, join: bool) {
        let address = self.addresses[(id - 1) as usize].clone();
        let mut command = dslab();
        command
            .args([
                "serve",
                "raft-kv",
                "--id",
                &id.to_string(),
                "--listen",
                &address,
            ])
            .args(self.peers())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .stdout(Stdio::piped());
        if join {
            command.arg("--join");
        }
        let mut child = command.spawn().expect("dslab serve raft-kv starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("reads the announcement");
        assert!(
            line.contains("listening on"),
            "unexpected first line {line:?}"
        );
        self.members[(id - 1) as usize] = Some(Member { address, child });
    }

    fn kill(&mut self, id: u64) {
        // Dropping kills with SIGKILL: no shutdown path runs.
        self.members[(id - 1) as usize] = None;
    }

    pub(crate) fn endpoints(&self) -> String {
        self.addresses.join(",")
    }

    fn running(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().flatten()
    }
}

async fn channel(address: &str) -> Option<Channel> {
    Channel::from_shared(format!("http://{address}"))
        .ok()?
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .ok()
}

/// The leader's id, as a majority of running members report it.
async fn leader(cluster: &Cluster) -> u64 {
    for _ in 0..100 {
        let mut votes = std::collections::HashMap::new();
        for member in cluster.running() {
            let Some(channel) = channel(&member.address).await else {
                continue;
            };
            if let Ok(status) = MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await
            {
                *votes.entry(status.into_inner().leader).or_insert(0) += 1;
            }
        }
        if let Some((&leader, _)) = votes.iter().find(|(l, n)| **l != 0 && **n >= 2) {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader agreed on within 10 s");
}

/// Puts `prefix-n` keys through any member that answers until `stop`;
/// returns the keys acknowledged.
async fn writer(
    addresses: Vec<String>,
    prefix: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut target = 0;
    let mut n = 0;
    while !*stop.borrow() {
        let Some(channel) = channel(&addresses[target % addresses.len()]).await else {
            target += 1;
            continue;
        };
        let mut kv = KvClient::new(channel);
        while !*stop.borrow() {
            let key = format!("{prefix}-{n}");
            n += 1;
            let put = PutRequest {
                key: key.clone().into_bytes(),
                value: key.clone().into_bytes(),
                ..PutRequest::default()
            };
            if kv.put(put).await.is_ok() {
                acknowledged.push(key);
            } else {
                target += 1;
                break;
            }
        }
    }
    acknowledged
}

/// The value of `key` read linearizably through `address`.
async fn read(address: &str, key: &str, serializable: bool) -> Option<Vec<u8>> {
    let mut kv = KvClient::new(channel(address).await?);
    let range = RangeRequest {
        key: key.as_bytes().to_vec(),
        serializable,
        ..RangeRequest::default()
    };
    let response = kv.range(range).await.ok()?.into_inner();
    response.kvs.into_iter().next().map(|kv| kv.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_raft_kv_keeps_every_acknowledged_write_when_the_leader_is_killed() {
    let mut cluster = Cluster::start(3);
    let old = leader(&cluster).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(writer(
                cluster.addresses.clone(),
                format!("w{w}"),
                stopped.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill(old);
    // Under load, through the election and after it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let _ = stop.send(true);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer ran"));
    }
    let new = leader(&cluster).await;
    assert_ne!(new, old, "the killed leader still leads");
    assert!(
        acknowledged.len() > 50,
        "only {} writes acknowledged",
        acknowledged.len()
    );

    let survivor = cluster
        .running()
        .next()
        .expect("a survivor")
        .address
        .clone();
    for key in &acknowledged {
        assert_eq!(
            read(&survivor, key, false).await.as_deref(),
            Some(key.as_bytes()),
            "acknowledged write {key} is missing after the leader was killed"
        );
    }

    // The killed member restarts from its disk and catches up.
    cluster.start_member(old, false);
    let restarted = cluster.addresses[(old - 1) as usize].clone();
    let last = acknowledged.last().expect("some writes").clone();
    let mut caught_up = false;
    for _ in 0..100 {
        if read(&restarted, &last, true).await.as_deref() == Some(last.as_bytes()) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the restarted member did not catch up");
}

fn kv(cluster: &Cluster, args: &[&str]) -> String {
    let endpoints = cluster.endpoints();
    let output = dslab()
        .args(["kv", "--endpoints", &endpoints])
        .args(args)
        .output()
        .expect("dslab kv runs");
    assert!(
        output.status.success(),
        "dslab kv {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

#[test]
fn cli_kv_commands_read_write_and_transact_like_etcdctl() {
    let cluster = Cluster::start(1);
    assert_eq!(kv(&cluster, &["put", "fruit/apple", "red"]), "OK\n");
    assert_eq!(kv(&cluster, &["put", "fruit/banana", "yellow"]), "OK\n");
    assert_eq!(
        kv(&cluster, &["put", "fruit/apple", "green", "--prev-kv"]),
        "OK\nfruit/apple\nred\n"
    );
    assert_eq!(
        kv(&cluster, &["get", "fruit/", "--prefix"]),
        "fruit/apple\ngreen\nfruit/banana\nyellow\n"
    );
    assert_eq!(
        kv(&cluster, &["get", "", "--prefix", "--keys-only"]),
        "fruit/apple\nfruit/banana\n"
    );
    // Revision 2 is the first put.
    assert_eq!(
        kv(&cluster, &["get", "fruit/apple", "--rev", "2"]),
        "fruit/apple\nred\n"
    );
    assert_eq!(
        kv(&cluster, &["get", "fruit/", "--prefix", "--count-only"]),
        "2\n"
    );

    let mut txn = dslab()
        .args(["kv", "--endpoints", &cluster.endpoints(), "txn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dslab kv txn runs");
    txn.stdin
        .take()
        .expect("piped")
        .write_all(b"value(\"fruit/apple\") = \"green\"\n\nput fruit/apple ripe\nget fruit/banana\n\nput fruit/apple rotten\n")
        .expect("writes the txn");
    let output = txn.wait_with_output().expect("txn finishes");
    assert!(output.status.success());
    assert_eq!(stdout(&output), "SUCCESS\n\nOK\n\nfruit/banana\nyellow\n");
    assert_eq!(kv(&cluster, &["get", "fruit/apple"]), "fruit/apple\nripe\n");

    assert_eq!(kv(&cluster, &["del", "fruit/", "--prefix"]), "2\n");
    assert_eq!(kv(&cluster, &["get", "fruit/", "--prefix"]), "");
    let members = kv(&cluster, &["members"]);
    assert!(
        members.contains("started") && members.contains("node-1"),
        "{members}"
    );
    let status = kv(&cluster, &["status"]);
    assert!(status.contains(&cluster.addresses[0]), "{status}");

    // etcdctl's variables work too, and a write skips a member that is
    // down (nothing listens on the first address) for one that is up.
    let dead = free_addresses(1).remove(0);
    let output = dslab()
        .env(
            "ETCDCTL_ENDPOINTS",
            format!("http://{dead},{}", cluster.endpoints()),
        )
        .env("ETCDCTL_COMMAND_TIMEOUT", "2s")
        .args(["kv", "put", "fruit/cherry", "dark"])
        .output()
        .expect("dslab kv runs");
    assert_eq!(
        stdout(&output),
        "OK\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        kv(&cluster, &["get", "fruit/cherry"]),
        "fruit/cherry\ndark\n"
    );

    // Bad input gets etcd's words and a failing exit code.
    let refused = run(&[
        "kv",
        "--endpoints",
        &cluster.endpoints(),
        "get",
        "fruit/apple",
        "--rev",
        "999",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("etcdserver: mvcc: required revision is a future revision"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A write that reached a member and failed there is not sent again to
/// the next endpoint (it may still apply); a read is.
#[test]
fn cli_kv_sends_a_failed_write_nowhere_else_but_retries_reads() {
    let cluster = Cluster::start(1);
    // A member waiting to join a cluster that never adds it: it answers,
    // but never has a leader.
    let [lonely, nobody] = <[String; 2]>::try_from(free_addresses(2)).expect("two addresses");
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut child = dslab()
        .args([
            "serve", "raft-kv", "--id", "2", "--join", "--listen", &lonely,
        ])
        .args(["--peer", &format!("1={nobody}")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dslab serve raft-kv starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("reads the announcement");
    let _lonely = Member {
        address: lonely.clone(),
        child,
    };
    let endpoints = format!("{lonely},{}", cluster.endpoints());
    let refused = run(&[
        "kv",
        "--endpoints",
        &endpoints,
        "--command-timeout",
        "10s",
        "put",
        "k",
        "v",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("etcdserver: no leader"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        kv(&cluster, &["get", "k"]),
        "",
        "the write went to a second member"
    );
    kv(&cluster, &["put", "k", "v"]);
    let read = run(&[
        "kv",
        "--endpoints",
        &endpoints,
        "--command-timeout",
        "10s",
        "get",
        "k",
    ]);
    assert_eq!(
        stdout(&read),
        "k\nv\n",
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
}

#[test]
fn cli_bench_kv_counts_every_request_it_makes() {
    let cluster = Cluster::start(1);
    let output = dslab()
        .args(["bench", "kv", "--endpoints", &cluster.endpoints()])
        .args([
            "--clients",
            "4",
            "--connections",
            "2",
            "--duration",
            "1s",
            "--key-space",
            "100",
        ])
        .args(["--value-size", "32", "--put-ratio", "1.0", "--json"])
        .output()
        .expect("dslab bench kv runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    let report: serde_json::Value = serde_json::from_str(text.lines().last().expect("a last line"))
        .expect("the last line is JSON");
    let ops = report["ops"].as_u64().expect("ops");
    let errors = report["errors"].as_u64().expect("errors");
    assert!(ops > 0 && errors == 0, "{report}");
    for field in [
        "duration_s",
        "throughput_ops_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
    assert!(
        !String::from_utf8_lossy(&output.stderr).is_empty(),
        "no progress on stderr"
    );

    // Nothing written that was not counted: on a fresh store each put is one
    // revision, and the store started at revision 1.
    let status = kv(&cluster, &["status"]);
    let revision: u64 = status
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(6))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {status}"));
    assert_eq!(
        revision,
        1 + ops,
        "the store saw {} puts, the benchmark counted {ops}",
        revision - 1
    );
}

/// Runs `etcdctl` (ETCDCTL_API=3) against `endpoints`, feeding it `stdin`.
pub(crate) fn etcdctl_output(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs (apt-get install etcd-client)");
    let mut input = child.stdin.take().expect("piped");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("writes stdin");
    drop(input);
    child.wait_with_output().expect("etcdctl finishes")
}

/// What a successful `etcdctl` printed on stdout.
pub(crate) fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let output = etcdctl_output(endpoints, args, stdin);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}");
}

/// Compatibility: etcd's own client drives a dslab cluster and prints what
/// it prints against etcd. Needs Debian's `etcd-client`; `.ci/run`
/// installs it.
#[test]
#[ignore = "needs etcdctl; run by .ci/run"]
fn interop_etcdctl_drives_a_dslab_cluster() {
    let mut cluster = Cluster::start(3);
    cluster.addresses.push(free_addresses(1).remove(0));
    cluster.members.push(None);
    let all = cluster.addresses[..3].join(",");
    let e = all.as_str();

    assert_eq!(etcdctl(e, &["put", "a", "1"], None), "OK\n");
    assert_eq!(etcdctl(e, &["put", "ab", "2"], None), "OK\n");
    assert_eq!(etcdctl(e, &["put", "a", "3"], None), "OK\n");
    assert_eq!(etcdctl(e, &["get", "a", "--prefix"], None), "a\n3\nab\n2\n");
    assert_eq!(
        etcdctl(e, &["get", "a", "--prefix", "--keys-only"], None),
        "a\n\nab\n\n"
    );
    assert_eq!(etcdctl(e, &["get", "a", "--rev=2"], None), "a\n1\n");
    assert_eq!(etcdctl(e, &["del", "ab"], None), "1\n");
    assert_eq!(
        etcdctl(
            e,
            &["txn", "-i"],
            Some("value(\"a\") = \"3\"\n\nput a 4\n\nput a 5\n\n")
        ),
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
    );
    assert_eq!(etcdctl(e, &["get", "a"], None), "a\n4\n");
    assert_eq!(
        etcdctl(e, &["compaction", "4"], None),
        "compacted revision 4\n"
    );
    let compacted = etcdctl_output(e, &["get", "a", "--rev=2"], None);
    assert!(!compacted.status.success());
    assert!(
        String::from_utf8_lossy(&compacted.stderr)
            .contains("Error: etcdserver: mvcc: required revision has been compacted")
    );

    let listed = etcdctl(e, &["member", "list"], None);
    for (i, address) in cluster.addresses[..3].iter().enumerate() {
        let id = i + 1;
        assert!(
            listed.contains(&format!(
                "{id}, started, node-{id}, http://{address}, http://{address}, false"
            )),
            "{listed}"
        );
    }
    let status = etcdctl(e, &["endpoint", "status"], None);
    assert_eq!(status.lines().count(), 3, "{status}");
    assert_eq!(
        status.matches(", true, false, ").count(),
        1,
        "one leader: {status}"
    );
    // etcdctl 3.4 prints health to stderr.
    let health = etcdctl_output(e, &["endpoint", "health"], None);
    assert!(health.status.success());
    let health = String::from_utf8_lossy(&health.stderr);
    assert_eq!(
        health
            .matches("is healthy: successfully committed proposal")
            .count(),
        3,
        "{health}"
    );

    // Grow by a learner, promote it, move the leadership there, remove it.
    let new_address = cluster.addresses[3].clone();
    let added = etcdctl(
        e,
        &[
            "member",
            "add",
            "n4",
            &format!("--peer-urls=http://{new_address}"),
            "--learner",
        ],
        None,
    );
    assert!(
        added.starts_with("Member                4 added to cluster"),
        "{added}"
    );
    cluster.start_member(4, true);
    wait_until("member 4 publishes its name", || {
        etcdctl(e, &["member", "list"], None).contains(&format!(
            "4, started, node-4, http://{new_address}, http://{new_address}, true"
        ))
    });
    wait_until("the learner catches up and is promoted", || {
        etcdctl_output(e, &["member", "promote", "4"], None)
            .status
            .success()
    });
    assert!(etcdctl(e, &["member", "list"], None).contains("4, started, node-4"));
    let everyone = cluster.addresses.join(",");
    let leader_line = etcdctl(&everyone, &["endpoint", "status"], None)
        .lines()
        .find(|line| line.contains(", true, false, "))
        .map(str::to_owned)
        .expect("a leader");
    let leader_address = leader_line
        .split(',')
        .next()
        .expect("an endpoint")
        .to_owned();
    let moved = etcdctl(&leader_address, &["move-leader", "4"], None);
    assert!(moved.starts_with("Leadership transferred from "), "{moved}");
    assert!(moved.trim_end().ends_with(" to 4"), "{moved}");
    wait_until("member 4 leads", || {
        etcdctl(&new_address, &["endpoint", "status"], None).contains(", true, false, ")
    });
    let removed = etcdctl(e, &["member", "remove", "4"], None);
    assert!(
        removed.starts_with("Member                4 removed from cluster"),
        "{removed}"
    );
    wait_until("three members remain and elect a leader", || {
        etcdctl(e, &["member", "list"], None).lines().count() == 3
            && etcdctl(e, &["endpoint", "status"], None).contains(", true, false, ")
    });
    assert_eq!(etcdctl(e, &["get", "a"], None), "a\n4\n");
}

/// One node of etcd (Debian's `etcd-server`) on free ports; killed on drop.
pub(crate) struct Etcd {
    child: Child,
    pub(crate) client: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let [client, peer] = <[String; 2]>::try_from(free_addresses(2)).expect("two addresses");
        let child = Command::new("etcd")
            .args(["--name", "e1", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &format!("http://{client}")])
            .args(["--advertise-client-urls", &format!("http://{client}")])
            .args(["--listen-peer-urls", &format!("http://{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
            .args(["--initial-cluster", &format!("e1=http://{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (apt-get install etcd-server)");
        let etcd = Self {
            child,
            client,
            _dir: dir,
        };
        wait_until("etcd answers", || {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    &format!("--endpoints={}", etcd.client),
                    "endpoint",
                    "health",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        etcd
    }
}

/// Runs a fixed etcdctl session against `endpoint`; returns everything it
/// printed, minus what differs between any two servers (log lines with
/// timestamps, cluster and member ids).
fn etcdctl_session(endpoint: &str) -> String {
    let session: &[(&[&str], Option<&str>)] = &[
        (&["put", "a", "1"], None),
        (&["put", "ab", "2"], None),
        (&["put", "a", "3"], None),
        (&["get", "a", "--prefix"], None),
        (&["get", "a", "--prefix", "--keys-only"], None),
        (&["get", "a", "--rev=2"], None),
        (&["get", "a", "--prefix", "--limit=1", "-w", "json"], None),
        (&["del", "ab"], None),
        (
            &["txn", "-i"],
            Some("value(\"a\") = \"3\"\n\nput a 4\nget ab\n\nput a 5\n\n"),
        ),
        (
            &["txn", "-i"],
            Some("version(\"zz\") > \"0\"\n\nput q 1\n\ndel a\n\n"),
        ),
        (&["get", "a"], None),
        (&["compaction", "4"], None),
        (&["get", "a", "--rev=2"], None),
        (&["get", "a", "--rev=100"], None),
        (&["put", "", "x"], None),
        (&["get", "b", "a"], None),
        (&["member", "remove", "99"], None),
        (&["put", "c", "3", "--prev-kv"], None),
        (&["put", "c", "4", "--prev-kv"], None),
        (&["del", "c", "--prev-kv"], None),
        (&["get", "", "--from-key", "-w", "json"], None),
    ];
    let mut transcript = String::new();
    for (args, stdin) in session {
        let output = etcdctl_output(endpoint, args, *stdin);
        transcript.push_str(&format!("$ etcdctl {}\n", args.join(" ")));
        transcript.push_str(&format!("exit {:?}\n", output.status.code()));
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            if line.starts_with("{\"level\"") {
                continue;
            }
            let line = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(mut json) => {
                    if let Some(header) = json.get_mut("header") {
                        header["cluster_id"] = 0.into();
                        header["member_id"] = 0.into();
                    }
                    json.to_string()
                }
                Err(_) => line.to_owned(),
            };
            transcript.push_str(&line);
            transcript.push('\n');
        }
    }
    transcript
}

/// The same etcdctl session against etcd itself and against dslab prints
/// the same, error messages included. Needs Debian's `etcd-client` and
/// `etcd-server`; `.ci/run` installs them.
#[test]
#[ignore = "needs etcd and etcdctl; run by .ci/run"]
fn interop_etcdctl_prints_the_same_against_etcd_and_dslab() {
    let etcd = Etcd::start();
    let dslab = Cluster::start(1);
    let expected = etcdctl_session(&etcd.client);
    let actual = etcdctl_session(&dslab.endpoints());
    assert!(expected.contains("compacted revision 4"), "{expected}");
    assert!(
        expected.contains("Error: etcdserver: key is not provided"),
        "{expected}"
    );
    assert_eq!(actual, expected);
}
