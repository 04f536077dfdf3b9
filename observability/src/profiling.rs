//! Where a demo's CPU goes: sampling profiles drawn as flame graphs.
//!
//! Episode: 35, "Performance Profiling"
//! Pattern: observability / sampling profiler
//! Try it:  cargo run --release -- demo consistent-hashing --flamegraph hashing.svg
//! Test it: cargo test -p observability profiling_
//!
//! A sampling profiler interrupts the process at a fixed rate of CPU time
//! (asked for at [`FREQUENCY_HZ`]; a few hundred samples per CPU-second
//! arrive in practice) and records the stack it interrupted. Stacks seen often are
//! where the time goes; a flame graph stacks them so that width is time
//! and height is call depth. Unlike instrumentation, nothing in the code
//! has to know it is being measured, and the cost is the same for a hot
//! loop and a cold one: the sampling rate, not the call rate, sets it.
//!
//! This wraps the `pprof` crate (the in-process profiler Rust services
//! use, with `inferno` drawing the graph). It samples the CPU time of
//! every thread, so async work shows up under the tokio worker that ran
//! it — look for the function names, not the thread.
//!
//! Bound: the profile holds one count per distinct stack (at most a few
//! thousand in a demo), not one entry per sample.
//!
//! Pitfall: a debug build's flame graph shows where *unoptimised* code is
//! slow; profile `--release`, which keeps line tables for the names.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Samples per second: a prime, so sampling cannot fall into step with a
/// periodic task (a 1 ms tick sampled at exactly 1 kHz is always seen, or
/// never).
pub const FREQUENCY_HZ: i32 = 997;

/// A running profile of this process, and the file its graph goes to.
pub struct Profiler {
    guard: pprof::ProfilerGuard<'static>,
    path: PathBuf,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler").finish_non_exhaustive()
    }
}

impl Profiler {
    /// Checks that `path` can be written (so a bad path fails before the
    /// work, not after it; an existing file keeps its contents until the
    /// new graph replaces them) and starts sampling every thread. Only one
    /// profile can run at a time in a process: the timer signal is
    /// process-wide.
    pub fn start(path: &Path) -> Result<Self> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|err| Error::Profiling(format!("cannot write {}: {err}", path.display())))?;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY_HZ)
            // Frames inside these libraries are the signal handler's own.
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|err| Error::Profiling(format!("cannot start the profiler: {err}")))?;
        Ok(Self {
            guard,
            path: path.to_owned(),
        })
    }

    /// Stops sampling and writes the flame graph as SVG; returns how many
    /// samples it holds.
    pub fn write_flamegraph(self) -> Result<u64> {
        let report = self
            .guard
            .report()
            .build()
            .map_err(|err| Error::Profiling(format!("cannot build the profile: {err}")))?;
        let samples: u64 = report
            .data
            .values()
            .map(|&count| u64::try_from(count).unwrap_or(0))
            .sum();
        if samples == 0 {
            return Err(Error::Profiling(
                "no CPU samples: the work spent almost no time on the CPU".into(),
            ));
        }
        // Drawn in memory, then written: pprof unwraps its writer's errors,
        // and a full disk must cost a message, not a panic.
        let mut svg = Vec::new();
        report
            .flamegraph(&mut svg)
            .map_err(|err| Error::Profiling(format!("cannot draw the flame graph: {err}")))?;
        std::fs::write(&self.path, svg).map_err(|err| {
            Error::Profiling(format!("cannot write {}: {err}", self.path.display()))
        })?;
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn busy_spin_for_the_profiler(until: std::time::Instant) -> u64 {
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    }

    #[test]
    fn profiling_draws_the_hot_function_and_reports_unwritable_paths() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("flame.svg");
        let profiler = Profiler::start(&path).expect("profiler starts");
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        busy_spin_for_the_profiler(until);
        let samples = profiler.write_flamegraph().expect("written");
        let svg = std::fs::read_to_string(&path).expect("readable");
        assert!(samples > 0, "300 ms of spinning produced no sample");
        assert!(svg.contains("<svg"), "not an SVG");
        assert!(
            svg.contains("busy_spin_for_the_profiler"),
            "the hot function is missing from the graph"
        );

        // One test, not two: the profiler's timer is process-wide, so
        // profiles in parallel tests would refuse each other.
        let err = Profiler::start(Path::new("/nonexistent-dir/flame.svg"))
            .expect_err("no such directory");
        assert!(err.to_string().contains("nonexistent-dir"), "{err}");
    }
}
