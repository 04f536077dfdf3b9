//! Shared helpers for the root scenario tests: running the `dslab` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};

/// The `dslab` binary cargo built for these tests.
pub fn dslab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dslab"));
    command
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_PROMETHEUS_HOST")
        .env_remove("OTEL_EXPORTER_PROMETHEUS_PORT")
        .env("RUST_LOG", "warn");
    command
}

/// Runs `dslab args…` to completion.
pub fn run(args: &[&str]) -> Output {
    dslab().args(args).output().expect("the dslab binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A real OTLP/gRPC receiver (`tests/interop/otlp_receiver.py`, Python
/// grpcio + opentelemetry-proto) collecting every span it is sent.
pub struct OtlpReceiver {
    pub child: Child,
    pub port: u16,
    spans: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/otlp_receiver.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the receiver did not start"));
        let port = first
            .rsplit(' ')
            .next()
            .and_then(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(span) = serde_json::from_str(&line) {
                    collected.lock().expect("not poisoned").push(span);
                }
            }
        });
        Self { child, port, spans }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits (up to 20 s) until `done` holds for the spans received.
    pub fn wait_for(&self, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let spans = self.spans.lock().expect("not poisoned").clone();
            if done(&spans) || std::time::Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `dslab serve` process, stopped (SIGTERM, then waited for) on drop.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Served {
    /// Starts `dslab serve <service> --listen 127.0.0.1:0 extra…` and waits
    /// for the line announcing the port the OS picked.
    pub fn start(service: &str, extra: &[&str]) -> Self {
        Self::start_with(dslab(), service, extra)
    }

    /// Like [`start`](Self::start), from a prepared command (extra
    /// environment, global flags).
    pub fn start_with(command: Command, service: &str, extra: &[&str]) -> Self {
        let (child, lines) = spawn_announcing(command, service, extra, 1);
        Self {
            child,
            addr: last_address(&lines[0]),
        }
    }

    /// Like [`start`](Self::start), with a Prometheus endpoint on a port the
    /// OS picks: the service and its `http://ADDR/metrics` address.
    pub fn start_metered(service: &str, extra: &[&str]) -> (Self, SocketAddr) {
        let extra = [extra, &["--metrics-listen", "127.0.0.1:0"]].concat();
        let (child, lines) = spawn_announcing(dslab(), service, &extra, 2);
        let metrics = last_address(lines[1].trim().trim_end_matches("/metrics"));
        let served = Self {
            child,
            addr: last_address(&lines[0]),
        };
        (served, metrics)
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and returns whether the process exited cleanly.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let exited = self.child.wait().is_ok_and(|status| status.success());
        signalled && exited
    }
}

/// Starts `dslab serve <service> --listen 127.0.0.1:0 extra…` and reads
/// the first `lines` lines it prints (the ports it announces).
fn spawn_announcing(
    mut command: Command,
    service: &str,
    extra: &[&str],
    lines: usize,
) -> (Child, Vec<String>) {
    let mut child = command
        .args(["serve", service, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("dslab serve starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut reader = BufReader::new(stdout);
    let announced = (0..lines)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("reads the announcement");
            line
        })
        .collect();
    (child, announced)
}

/// The address a line ends with (`… listening on 127.0.0.1:4242`, or
/// `http://127.0.0.1:4242`).
fn last_address(line: &str) -> SocketAddr {
    line.trim()
        .rsplit([' ', '/'])
        .next()
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
