//! The process's own vital signs, the way every Prometheus client library
//! exports them: CPU seconds, resident memory, open file descriptors,
//! threads.
//!
//! They answer the first questions about a misbehaving server — is it
//! burning CPU, growing, leaking sockets? — and they are what a memory
//! bound is checked against from outside. Read from `/proc/self` at scrape
//! time (Linux); elsewhere the collector exports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `USER_HZ`: the unit of CPU times in `/proc/<pid>/stat`, fixed at 100 by
/// the kernel's ABI whatever the kernel's internal tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// Registers with [`super::MetricsRegistry::register_collector`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessMetrics;

/// What `/proc/self` says now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
}

impl ProcessSample {
    /// Reads `/proc/self`; `None` where there is no procfs.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces and parentheses; the
        // fields after its closing parenthesis are plain numbers, utime and
        // stime being the 12th and 13th of them.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let cpu_ticks = ticks(11)? + ticks(12)?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| {
            status.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        };
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Self {
            cpu_seconds: cpu_ticks as f64 / TICKS_PER_SECOND,
            resident_bytes: field("VmRSS:")? * 1024,
            open_fds,
            threads: field("Threads:")?,
        })
    }
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                sample.resident_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors.",
                sample.open_fds,
            ),
            ("process_threads", "OS threads.", sample.threads),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
