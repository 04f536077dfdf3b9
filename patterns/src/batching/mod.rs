//! Batching: trade a little latency for a lot of throughput.
//!
//! Episode: 5, "Bandwidth vs Latency" (also 26)
//! Pattern: performance / batching and compression
//! Try it:  cargo run --release -- bench batching
//! Test it: cargo test -p patterns batching_
//!
//! Every call pays a fixed cost — a round trip, a system call, a frame
//! header, an fsync — whatever it carries. A [`Batcher`] takes single
//! items from many callers and sends them downstream together: a batch
//! leaves when it holds `max_batch` items or `linger` after it started,
//! whichever comes first. Throughput rises because the fixed cost is shared;
//! each item's latency rises by up to the linger. The thing to watch for:
//! the linger is paid in full at low load, when there is nobody to share a
//! batch with — which is why `linger = 0` (send what is already queued)
//! is often the right default, and batches grow on their own when the
//! downstream is busy.
//!
//! Compression is the same trade on the wire: gRPC can gzip or zstd each
//! message (tonic's `gzip` and `zstd` features; a client asks with
//! `send_compressed`, a server advertises `accept_compressed`). It spends
//! CPU to save bytes, so it pays on a slow link and costs on loopback;
//! batching helps it, since a bigger message compresses better.
//! `dslab bench batching` measures both.
//!
//! Why here and not in `resilience`: a batcher changes how work is shaped
//! for throughput; the one protective thing it does — refusing items when
//! its queue is full with `ResourceExhausted` — is only its own bound.
//!
//! Bounds: at most [`MAX_QUEUE`] items queued (the configured `queue`),
//! batches of at most [`MAX_BATCH`], at most [`MAX_IN_FLIGHT`] batches
//! downstream at once, a linger of at most [`MAX_LINGER`]. [`BatchStore`]
//! keeps only counters and refuses requests of more than [`MAX_BATCH`]
//! items.
//!
//! Simplified: one worker per batcher and no per-item deadline inside the
//! queue; Kafka's producer, for one, also bounds batches by bytes and
//! expires items that waited too long.

pub mod core;
pub mod service;

#[cfg(test)]
mod tests;

pub use self::core::{
    BatchConfig, BatchError, Batcher, MAX_BATCH, MAX_IN_FLIGHT, MAX_LINGER, MAX_QUEUE, Pending,
};
pub use service::BatchStore;
