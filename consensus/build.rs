//! Compiles etcd's v3 API (with its Lock and Election services), raft-rs's
//! message schema and dslab's own protos: Raft, transactions, fencing,
//! leader election (see
//! `build-support/protos.rs`).

include!("../build-support/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos(&[
        "proto/etcdserverpb/rpc.proto",
        "proto/eraftpb/eraftpb.proto",
        "proto/consensus/v1/raft.proto",
        "proto/consensus/v1/transaction.proto",
        "proto/consensus/v1/fencing.proto",
        "proto/consensus/v1/election.proto",
        "proto/consensus/v1/bank.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
    ])
}
