//! `dslab chaos run` owns its replicas: none outlives the run, however
//! it ends — passed, aborted, failed half-way, stopped by a signal, or
//! killed outright.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::chaos::processes;
use crate::support::{dslab, stdout};

/// The replicas a run announced on stderr ("started replica pid P on A").
fn replicas(stderr: &str) -> Vec<(u32, SocketAddr)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("chaos: started replica pid ")?;
            let (pid, addr) = rest.split_once(" on ")?;
            Some((pid.parse().ok()?, addr.parse().ok()?))
        })
        .collect()
}

/// Whether `pid` still exists. A zombie counts: its leader thread may
/// be a zombie while the others still hold its sockets, and every
/// process here has a parent that reaps it.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pids still alive after waiting up to 20 s for them to go (a
/// bound, not a timing claim: a loaded machine may be slow to reap).
fn survivors(pids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that every replica the finished run started is gone.
pub fn assert_no_replica_left(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pids: Vec<u32> = replicas(&stderr).iter().map(|r| r.0).collect();
    assert!(!pids.is_empty(), "the run announced no replica: {stderr}");
    assert_eq!(survivors(&pids), Vec::<u32>::new(), "{stderr}");
}

/// A running `dslab chaos run` whose stderr lines arrive on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(definition: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("experiment.json");
        std::fs::write(&path, definition).expect("writes the definition");
        let mut child = dslab()
            .args(["chaos", "run"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the dslab binary runs");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
            _dir: dir,
        }
    }

    /// Waits for the first `n` replicas to announce themselves.
    fn replicas(&mut self, n: usize) -> Vec<(u32, SocketAddr)> {
        while replicas(&self.stderr.join("\n")).len() < n {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no replica announced: {:?}", self.stderr));
            self.stderr.push(line);
        }
        replicas(&self.stderr.join("\n"))
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the runner; its exit code, stdout and whole stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let output = self.child.wait_with_output().expect("the runner exits");
        self.stderr.extend(self.lines.iter());
        (
            output.status.code(),
            stdout(&output),
            self.stderr.join("\n"),
        )
    }
}

/// A 20 s run with one late fault: long enough to be stopped mid-way.
fn long_run() -> String {
    processes(
        20_000,
        r#"[{"at_ms": 15000, "for_ms": 500, "fault": {"crash": {"host": "n1"}}}]"#,
    )
}

/// SIGTERM or SIGINT (Ctrl-C) to the runner: it kills its replicas,
/// prints the windows measured so far as INCOMPLETE and exits 4. Before
/// the fix the runner died at once (143) and its replicas lived on.
#[test]
fn chaos_cli_signal_stops_the_run_and_its_replicas() {
    for signal in ["TERM", "INT"] {
        let mut run = Running::start(&long_run());
        let pids: Vec<u32> = run.replicas(3).iter().map(|r| r.0).collect();
        // Let a window or two be measured.
        std::thread::sleep(Duration::from_millis(1_500));
        run.signal(signal);
        let (code, out, err) = run.finish();
        assert_eq!(code, Some(4), "SIG{signal}: {out}\n{err}");
        assert!(out.contains("INCOMPLETE"), "{out}");
        assert!(err.contains(&format!("stopped by SIG{signal}")), "{err}");
        assert_eq!(survivors(&pids), Vec::<u32>::new(), "SIG{signal}: {err}");
    }
}

/// SIGKILL runs no handler and no destructor: the replicas notice their
/// lifeline (stdin, written only by the runner) close, and exit.
#[test]
fn chaos_cli_killed_runner_takes_its_replicas_along() {
    let mut run = Running::start(&long_run());
    let pids: Vec<u32> = run.replicas(3).iter().map(|r| r.0).collect();
    run.signal("KILL");
    let (code, _, err) = run.finish();
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(survivors(&pids), Vec::<u32>::new(), "{err}");
}

/// Episode 12. Setup: three replicas; n1 crashes at 1 s for 1 s. Break:
/// while n1 is down, something else takes its port, so the restart
/// fails. Must hold: the run stops with exit 4 (not 3: the definition was
/// fine), says the replica exited (it did not "time out"), prints the
/// windows it measured, and leaves no replica behind.
#[test]
fn chaos_cli_failed_restart_reports_what_it_measured() {
    let mut run = Running::start(&processes(
        4_000,
        r#"[{"at_ms": 1000, "for_ms": 1000, "fault": {"crash": {"host": "n1"}}}]"#,
    ));
    let started = run.replicas(3);
    let (n1, n1_addr) = started[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(n1) {
        assert!(Instant::now() < deadline, "n1 was never crashed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _thief = std::net::TcpListener::bind(n1_addr).expect("takes n1's port");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(4), "{out}\n{err}");
    assert!(
        err.contains("healing crash n1") && err.contains("exited before announcing itself"),
        "{err}"
    );
    assert!(
        out.contains("INCOMPLETE") && out.contains("crash n1"),
        "{out}"
    );
    let pids: Vec<u32> = replicas(&err).iter().map(|r| r.0).collect();
    assert_eq!(survivors(&pids), Vec::<u32>::new(), "{err}");
}

/// A definition file that never ends (a device) is cut at the limit
/// instead of being read until memory runs out.
#[test]
fn chaos_cli_endless_definition_is_refused() {
    let output = crate::support::run(&["chaos", "run", "/dev/zero"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("longer than the limit of 65536 bytes"),
        "{stderr}"
    );
}
