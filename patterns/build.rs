//! Compiles the crate's protos (see `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&[
        "proto/shard_router.proto",
        "proto/scalability.proto",
        "proto/batching.proto",
    ])
}
