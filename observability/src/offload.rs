//! CPU-heavy work off the async workers — and inline where there are none.
//!
//! Episode: 26, "Little's Law Applications" (also 34)
//! Pattern: bulkheading the runtime / keeping workers responsive
//! Test it: cargo test -p observability offload_
//!
//! A tokio worker thread serves many calls in turn; one call that spends a
//! second placing a million keys or encoding a snapshot stalls every other
//! call on that worker, health checks included — the queue behind it
//! grows as Little's Law says it must. [`cpu`] moves such work to tokio's
//! blocking pool, which exists for it.
//!
//! On a current-thread runtime — each simulated host runs on one, and so
//! do most tests — there is no pool of workers to protect, and turmoil
//! does not simulate the blocking pool: work sent there would finish on
//! the real clock while simulated time runs on, and seeds would stop
//! replaying. There the work runs inline.
//!
//! The caller still bounds how much such work one request may start (a
//! semaphore, a cap on its size): this module moves work, it does not
//! limit it.

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinError;

/// Runs `work` on the blocking pool of a multi-threaded runtime, or inline
/// on a current-thread one. A panic in `work` resumes in the caller, as it
/// would inline; the error is the runtime shutting down first.
pub async fn cpu<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JoinError> {
    let multi_threaded = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if !multi_threaded {
        return Ok(work());
    }
    match tokio::task::spawn_blocking(work).await {
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline on a current-thread runtime: the work runs on the caller's
    /// own thread.
    #[tokio::test(flavor = "current_thread")]
    async fn offload_runs_inline_without_worker_threads() {
        let caller = std::thread::current().id();
        let ran_on = cpu(|| std::thread::current().id()).await.expect("ran");
        assert_eq!(ran_on, caller);
    }

    /// Off the workers on a multi-threaded runtime: a blocking-pool thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn offload_leaves_the_workers_on_a_multi_threaded_runtime() {
        let caller = std::thread::current().id();
        let ran_on = cpu(|| std::thread::current().id()).await.expect("ran");
        assert_ne!(ran_on, caller);
    }
}
