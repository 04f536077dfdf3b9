//! Compiles etcd's v3 API, raft-rs's message schema and dslab's own Raft
//! protos (see `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&[
        "proto/etcdserverpb/rpc.proto",
        "proto/eraftpb/eraftpb.proto",
        "proto/consensus/v1/raft.proto",
        "proto/consensus/v1/transaction.proto",
    ])
}
