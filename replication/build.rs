//! Compiles `proto/register.proto` and `proto/crdt.proto` (see `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&["proto/register.proto", "proto/crdt.proto"])
}
