//! A cluster on loopback TCP in one process: what the demo, the
//! benchmark and the TCP tests start.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use observability::rpc::{ClientBuilder, Net, RpcServer, ServerHandle};

use super::{QuorumClient, QuorumConfig, QuorumNode, SharedStore};
use crate::clock::ReplicaId;
use crate::proto::FILE_DESCRIPTOR_SET;

/// Nodes 1..=k serving on loopback ports the OS picked.
#[derive(Debug)]
pub struct LocalCluster {
    pub nodes: Vec<QuorumNode>,
    servers: Vec<ServerHandle>,
}

impl LocalCluster {
    /// Starts `size` nodes; `configure` adjusts each node's config (it
    /// gets the node's index, 0-based) before it starts.
    pub async fn start(
        size: usize,
        mut configure: impl FnMut(usize, &mut QuorumConfig),
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut listeners = Vec::new();
        let mut addresses = BTreeMap::new();
        for i in 0..size {
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            addresses.insert(ReplicaId(i as u64 + 1), listener.local_addr()?.to_string());
            listeners.push(listener);
        }
        let mut nodes = Vec::new();
        let mut servers = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let mut config =
                QuorumConfig::new(ReplicaId(i as u64 + 1), addresses.clone(), Net::Tcp);
            configure(i, &mut config);
            let node = QuorumNode::start(config, SharedStore::new())?;
            let server = RpcServer::new()
                .add_service(node.clone().into_service(), FILE_DESCRIPTOR_SET)
                .bind_tcp(listener)?
                .spawn();
            nodes.push(node);
            servers.push(server);
        }
        Ok(Self { nodes, servers })
    }

    /// A client of node `i` (0-based).
    pub fn client(&self, i: usize) -> QuorumClient {
        QuorumClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(self.servers[i].uri()))
    }

    pub fn uri(&self, i: usize) -> tonic::transport::Uri {
        self.servers[i].uri()
    }

    /// Stops every server.
    pub async fn shutdown(self) {
        for server in self.servers {
            let _ = server.shutdown().await;
        }
    }
}
