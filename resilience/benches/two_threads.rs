//! Shared by the benches: time `iters` calls on each of two threads at once.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Starts two threads, releases them together, and returns the wall time
/// until both have run `work(iters)`: time per call per thread.
pub fn two_threads(iters: u64, work: impl Fn(u64) + Send + Sync + Clone + 'static) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (work, barrier) = (work.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(iters);
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for thread in threads {
        thread.join().expect("bench thread");
    }
    started.elapsed()
}
