//! etcd's coordination recipes — leases, watches, locks, elections — run
//! by etcd's own `etcdctl` against a dslab cluster, and compared with what
//! the same commands print against etcd itself. Needs Debian's
//! `etcd-client` and `etcd-server`; `.ci/run` installs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::raft_kv::{Cluster, Etcd, etcdctl, etcdctl_output, wait_until};

/// Runs one etcdctl command (under `timeout`, for those that wait) and
/// returns its transcript, with what differs between servers masked:
/// lease ids, remaining seconds, log lines.
fn transcript(endpoint: &str, args: &[&str], lease: &str, wait: Option<u64>) -> String {
    let output = match wait {
        Some(seconds) => Command::new("timeout")
            .arg(seconds.to_string())
            .arg("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .output()
            .expect("timeout and etcdctl run"),
        None => etcdctl_output(endpoint, args, None),
    };
    let mut text = format!(
        "$ etcdctl {}\nexit {:?}\n",
        args.join(" ").replace(lease, "<lease>"),
        output.status.code()
    );
    for line in String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
    {
        if line.starts_with("{\"level\"") {
            continue;
        }
        let mut line = line.replace(lease, "<lease>");
        if let Some(at) = line.find("remaining(")
            && let Some(end) = line[at..].find("s)")
        {
            line.replace_range(at..at + end + 2, "remaining(<n>s)");
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// A fixed session of lease and watch commands; returns its transcript.
fn lease_and_watch_session(endpoint: &str) -> String {
    let granted = etcdctl(endpoint, &["lease", "grant", "60"], None);
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("lease <id> granted …")
        .to_owned();
    let mut text = granted.replace(&lease, "<lease>");
    let l = lease.as_str();
    let with_lease = format!("--lease={l}");
    let steps: &[(&[&str], Option<u64>)] = &[
        (&["put", &with_lease, "/svc/a", "up"], None),
        // One key on the lease: etcd deletes a revoked lease's keys in
        // its map's (random) order.
        (&["put", "/svc/b", "up"], None),
        (&["put", "/svc/c", "plain"], None),
        (&["lease", "timetolive", l, "--keys"], None),
        (&["lease", "keep-alive", "--once", l], None),
        (&["lease", "list"], None),
        (&["lease", "revoke", l], None),
        (&["get", "/svc", "--prefix"], None),
        (&["lease", "timetolive", l], None),
        (&["lease", "revoke", l], None),
        (&["lease", "keep-alive", "--once", "1234"], None),
        (&["lease", "grant", "99999999999"], None),
        (&["put", "--lease=1234", "/svc/d", "x"], None),
        (&["watch", "--prefix", "/svc", "--rev=1"], Some(2)),
        (
            &["watch", "--prefix", "/svc", "--rev=3", "--prev-kv"],
            Some(2),
        ),
        (&["compaction", "4"], None),
        (&["watch", "--prefix", "/svc", "--rev=2"], Some(2)),
    ];
    for (args, wait) in steps {
        text.push_str(&transcript(endpoint, args, l, *wait));
    }
    text
}

/// Episode 16. Lease and watch commands print the same against etcd and
/// against dslab: grant, attach, time-to-live with keys, keep-alive,
/// list, revoke (its keys go), the answers for an expired or unknown
/// lease, history replayed with `--rev` (with `--prev-kv`, with a filter),
/// and a watch from a compacted revision.
#[test]
#[ignore = "needs etcd and etcdctl; run by .ci/run"]
fn interop_etcdctl_leases_and_watches_print_the_same_against_etcd_and_dslab() {
    let etcd = Etcd::start();
    let dslab = Cluster::start(1);
    let expected = lease_and_watch_session(&etcd.client);
    let actual = lease_and_watch_session(&dslab.endpoints());
    assert!(expected.contains("attached keys([/svc/a])"), "{expected}");
    assert!(expected.contains("PUT\n/svc/a\nup\n"), "{expected}");
    assert_eq!(actual, expected);
}

/// Episodes 16 and 17. Two `etcdctl lock` processes holding the same lock
/// run their commands one after the other, never interleaved; `etcdctl
/// elect` hands leadership to the next candidate when the leader resigns,
/// and `etcdctl elect -l` sees both leaders in turn.
#[test]
#[ignore = "needs etcdctl; run by .ci/run"]
fn interop_etcdctl_lock_and_elect_work_against_a_dslab_cluster() {
    let cluster = Cluster::start(3);
    let endpoints = cluster.endpoints();
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("critical-section.log");
    let critical = format!(
        "echo start $$ >> {0}; sleep 1; echo end $$ >> {0}",
        log.display()
    );
    let lockers: Vec<_> = (0..2)
        .map(|_| {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={endpoints}"))
                .args(["lock", "/locks/report", "--", "sh", "-c", &critical])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("etcdctl lock runs")
        })
        .collect();
    for locker in lockers {
        let output = locker.wait_with_output().expect("etcdctl lock finishes");
        assert!(
            output.status.success(),
            "etcdctl lock failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let sections = std::fs::read_to_string(&log).expect("both commands ran");
    let lines: Vec<&str> = sections.lines().collect();
    assert_eq!(lines.len(), 4, "{sections}");
    let pid = |line: &str| line.split_whitespace().nth(1).map(str::to_owned);
    assert!(
        lines[0].starts_with("start")
            && lines[1].starts_with("end")
            && pid(lines[0]) == pid(lines[1])
            && lines[2].starts_with("start")
            && lines[3].starts_with("end")
            && pid(lines[2]) == pid(lines[3]),
        "the critical sections interleaved:\n{sections}"
    );

    // Elections: a leader, a waiting candidate, and an observer.
    let elect = |args: &[&str]| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg("elect")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl elect runs")
    };
    let mut first = elect(&["/elect/primary", "p1"]);
    let mut first_out = BufReader::new(first.stdout.take().expect("piped"));
    let mut line = String::new();
    first_out.read_line(&mut line).expect("the leader key");
    assert!(line.starts_with("/elect/primary/"), "{line}");
    line.clear();
    first_out.read_line(&mut line).expect("the proclamation");
    assert_eq!(line, "p1\n");
    let mut second = elect(&["/elect/primary", "p2"]);
    let mut observer = elect(&["-l", "/elect/primary"]);
    let mut observed = BufReader::new(observer.stdout.take().expect("piped"));
    let mut seen = Vec::new();
    let mut next_value = |seen: &mut Vec<String>| {
        // Observer lines alternate: the key, then the value.
        let mut key = String::new();
        let mut value = String::new();
        observed.read_line(&mut key).expect("a key");
        observed.read_line(&mut value).expect("a value");
        seen.push(value.trim_end().to_owned());
    };
    next_value(&mut seen);
    assert_eq!(seen, ["p1"], "the observer sees the first leader");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        second.try_wait().expect("polls").is_none(),
        "the second candidate waits while the first leads"
    );
    // SIGINT: etcdctl resigns on its way out.
    Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .expect("kill runs");
    let _ = first.wait();
    let mut second_out = BufReader::new(second.stdout.take().expect("piped"));
    let started = Instant::now();
    line.clear();
    second_out.read_line(&mut line).expect("the new leader key");
    assert!(line.starts_with("/elect/primary/"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the handover was slow"
    );
    next_value(&mut seen);
    assert_eq!(seen, ["p1", "p2"], "the observer sees the handover");
    for mut child in [second, observer] {
        let _ = child.kill();
        let _ = child.wait();
    }
    wait_until("the cluster still answers", || {
        etcdctl_output(&endpoints, &["get", "x"], None)
            .status
            .success()
    });
}
