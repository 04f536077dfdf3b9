//! Failure detectors: the monitor's bookkeeping, the gRPC service on the
//! simulated and the real network, and the trade-off experiment's maths.

mod experiment;
mod monitor;
mod service;
