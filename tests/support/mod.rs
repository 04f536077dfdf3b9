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

/// A `dslab serve` process, stopped (SIGTERM, then waited for) on drop.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Served {
    /// Starts `dslab serve <service> --listen 127.0.0.1:0 extra…` and waits
    /// for the line announcing the port the OS picked.
    pub fn start(service: &str, extra: &[&str]) -> Self {
        let mut child = dslab()
            .args(["serve", service, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("dslab serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the announcement");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, addr }
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

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
