//! [`CacheTier`]: cache nodes behind the ShardRouter's consistent-hash ring.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::RwLock;

use super::{Cache, CacheConfig};
use crate::hashing::{Strategy, StrategyConfig};
use crate::shard_router::ShardRouter;
use crate::{Error, Result};

/// Why a tier lookup failed: the key had nowhere to go, or its load
/// failed (shared by every caller of that load).
#[derive(Debug, thiserror::Error)]
pub enum TierError<E> {
    #[error("placement: {0}")]
    Placement(#[from] Error),
    #[error("load failed")]
    Load(Arc<E>),
}

/// A distributed cache: each key lives on the node the ring names.
///
/// Placement is the [`ShardRouter`]'s, so a client of the router and the
/// tier agree on every key's node. Why a ring and not `hash % N`: when a
/// node leaves, `% N` renumbers almost every key — a cold cache and a
/// database flood — while the ring hands only the departed node's keys
/// to its neighbours, and every other key stays warm where it was.
#[derive(Debug)]
pub struct CacheTier<V, E> {
    router: ShardRouter,
    nodes: RwLock<BTreeMap<String, Cache<String, V, E>>>,
    config: CacheConfig,
}

impl<V, E> CacheTier<V, E>
where
    V: Clone + Send + Sync,
    E: Send + Sync,
{
    /// A tier of `nodes`, each a [`Cache`] built from `config`, placed on
    /// a ring with the router's default virtual nodes.
    pub fn new<S: AsRef<str>>(nodes: &[S], config: CacheConfig) -> Result<Self> {
        let router = ShardRouter::new(StrategyConfig::new(Strategy::Ring), nodes)?;
        let caches = nodes
            .iter()
            .map(|n| Ok((n.as_ref().to_owned(), Cache::new(config)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            router,
            nodes: RwLock::new(caches),
            config,
        })
    }

    /// The router placing keys, for clients that route by themselves.
    pub fn router(&self) -> &ShardRouter {
        &self.router
    }

    /// The node that holds `key`.
    pub async fn owner(&self, key: &str) -> Result<String> {
        Ok(self.router.route(key.as_bytes(), 1).await?.owner)
    }

    /// The cache of `node`, if it is a member.
    pub async fn node(&self, node: &str) -> Option<Cache<String, V, E>> {
        self.nodes.read().await.get(node).cloned()
    }

    /// The value of `key`, from its node's cache or from `load`.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<V, TierError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
    {
        let owner = self.owner(key).await?;
        let cache = self
            .node(&owner)
            .await
            .ok_or(Error::UnknownNode { node: owner })?;
        cache
            .get_or_load(key.to_owned(), load)
            .await
            .map_err(TierError::Load)
    }

    /// Adds an empty cache node; the keys the ring now gives it will
    /// miss once, everywhere else stays warm.
    pub async fn add_node(&self, node: &str) -> Result<()> {
        let cache = Cache::new(self.config)?;
        let mut nodes = self.nodes.write().await;
        self.router.add_node(node, 1).await?;
        nodes.insert(node.to_owned(), cache);
        Ok(())
    }

    /// Removes a node and its cache: only its keys move.
    pub async fn remove_node(&self, node: &str) -> Result<()> {
        let mut nodes = self.nodes.write().await;
        self.router.remove_node(node).await?;
        nodes.remove(node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A consistent-hashed tier: keys live where the ShardRouter's ring says,
    /// and a node leaving costs exactly its own keys one reload each.
    #[tokio::test]
    async fn cache_tier_node_leaving_moves_only_its_keys() {
        let tier: CacheTier<String, String> = CacheTier::new(
            &["c1", "c2", "c3"],
            CacheConfig::new(4096, Duration::from_secs(600)),
        )
        .expect("valid");
        let loads = AtomicU64::new(0);
        let keys: Vec<String> = (0..600).map(|i| format!("key-{i}")).collect();
        let mut owners = BTreeMap::new();
        for key in &keys {
            let owner = tier.owner(key).await.expect("placed");
            assert_eq!(
                owner,
                tier.router()
                    .route(key.as_bytes(), 1)
                    .await
                    .expect("routed")
                    .owner
            );
            let value = tier
                .get_or_load(key, || async {
                    loads.fetch_add(1, Ordering::Relaxed);
                    Ok(key.clone())
                })
                .await
                .expect("loaded");
            assert_eq!(&value, key);
            owners.insert(key.clone(), owner);
        }
        let on_c2 = owners.values().filter(|o| *o == "c2").count() as u64;
        assert!(on_c2 > 100, "c2 holds its share: {on_c2}");
        tier.remove_node("c2").await.expect("member");
        let before = loads.load(Ordering::Relaxed);
        for key in &keys {
            let owner = tier.owner(key).await.expect("placed");
            if owners[key] != "c2" {
                assert_eq!(owner, owners[key], "{key} stayed where it was");
            }
            tier.get_or_load(key, || async {
                loads.fetch_add(1, Ordering::Relaxed);
                Ok(key.clone())
            })
            .await
            .expect("loaded");
        }
        assert_eq!(
            loads.load(Ordering::Relaxed) - before,
            on_c2,
            "only c2's keys reloaded"
        );
        assert!(matches!(
            tier.remove_node("c2").await,
            Err(crate::Error::UnknownNode { .. })
        ));
    }
}
