//! Compiles `proto/register.proto`, `proto/crdt.proto` and `proto/quorum.proto` (see `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&[
        "proto/register.proto",
        "proto/crdt.proto",
        "proto/quorum.proto",
    ])
}
