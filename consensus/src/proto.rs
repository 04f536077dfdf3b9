//! Generated protobuf types: etcd's v3 API (wire compatible with etcd
//! 3.4), raft-rs's messages as prost types (to decode what peers send),
//! and dslab's own protos (Raft, transactions, leader election).

#![allow(missing_debug_implementations, clippy::large_enum_variant)]

/// etcd's `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and
/// Auth services and their messages.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// etcd's `mvccpb`: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb` (the Auth service's messages).
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `v3lockpb`: the Lock service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `v3electionpb`: the Election service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// raft-rs's message schema, decoded with prost.
pub mod eraftpb {
    tonic::include_proto!("eraftpb");
}

/// `consensus.v1`: Raft's log commands, snapshots and peer transport, the
/// transaction services, and leader election (nested as the package is,
/// so its references to `etcdserverpb` resolve).
pub mod consensus {
    pub mod v1 {
        tonic::include_proto!("consensus.v1");
    }
}

pub use consensus::v1;

/// Encoded `FileDescriptorSet` of every proto above, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
