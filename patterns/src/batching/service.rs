//! `BatchStore`: the gRPC service the batcher is measured against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::{Request, Response, Status};

use super::core::MAX_BATCH;

/// Generated protobuf types and gRPC stubs for `patterns.batching.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("patterns.batching.v1");

    /// Encoded `FileDescriptorSet` of the crate's protos, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

use proto::batch_store_server::BatchStoreServer;
use proto::{StoreReply, StoreRequest};

/// Numbers each item it receives and counts the bytes; it keeps nothing
/// else, so no request can make it grow.
#[derive(Clone, Debug, Default)]
pub struct BatchStore {
    next: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl BatchStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Items stored so far.
    pub fn stored(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Payload bytes stored so far (as decoded, after any decompression).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub fn store(&self, items: &[Vec<u8>]) -> Result<StoreReply, Status> {
        if items.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} items exceed the batch limit of {MAX_BATCH}",
                items.len()
            )));
        }
        let size: usize = items.iter().map(Vec::len).sum();
        self.bytes.fetch_add(size as u64, Ordering::SeqCst);
        // One atomic step per batch, not per item: the sequence numbers of
        // a batch are consecutive, in request order.
        let first = self.next.fetch_add(items.len() as u64, Ordering::SeqCst);
        Ok(StoreReply {
            sequence: (first..first + items.len() as u64).collect(),
        })
    }

    pub fn into_service(self) -> BatchStoreServer<Self> {
        BatchStoreServer::new(self)
    }
}

#[tonic::async_trait]
impl proto::batch_store_server::BatchStore for BatchStore {
    async fn store(&self, request: Request<StoreRequest>) -> Result<Response<StoreReply>, Status> {
        Ok(Response::new(BatchStore::store(
            self,
            &request.into_inner().items,
        )?))
    }
}
