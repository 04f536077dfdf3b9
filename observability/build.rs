//! Compiles `proto/relay.proto` and `proto/heartbeat.proto` (see `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&["proto/relay.proto", "proto/heartbeat.proto"])
}
