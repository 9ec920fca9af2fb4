//! Variant cache: keys, metadata, layers (memory, disk, a shared S3 bucket) behind one
//! interface, TTL on read, tags and purge.
//!
//! The cache sits after origin resolution and before single-flight in the request path: a hit
//! answers without touching the origin or ffmpeg, and only misses go on to be collapsed.
//! A broken layer never fails a request: [`Cache`] logs it and treats it as a miss.

mod disk;
pub mod flight;
mod key;
mod lru;
mod memory;
mod meta;
pub mod shared;

pub use disk::DiskLayer;
pub use key::{CacheKey, KeyParseError, KeyParts, ENCODER_VERSION};
pub use memory::MemoryLayer;
pub(crate) use meta::read_at;
pub use meta::{Meta, Payload, Stored};

use crate::error::{Classify, Fault};
use crate::metrics::{CacheLabels, LayerLabels, Metrics};
use futures_util::future::BoxFuture;
use http::StatusCode;
use serde::Serialize;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

/// A failure inside one cache layer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem or network operation failed.
    #[error("cache layer {layer}: {op} failed: {source}")]
    Io {
        layer: &'static str,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A stored metadata record could not be encoded or decoded.
    #[error("cache layer {layer}: metadata of object {key} is invalid: {source}")]
    Meta {
        layer: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A background task of the layer panicked or was cancelled.
    #[error("cache layer {layer}: background task failed")]
    Task { layer: &'static str },
}

impl CacheError {
    pub(crate) fn io(layer: &'static str, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| CacheError::Io { layer, op, source }
    }
}

impl Classify for CacheError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    fn code(&self) -> &'static str {
        "cache_error"
    }
    fn fault(&self) -> Fault {
        Fault::Server
    }
    fn retryable(&self) -> bool {
        true
    }
}

/// Occupancy of one layer (admin stats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerStats {
    pub layer: &'static str,
    pub objects: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    /// Objects evicted for space since start.
    pub evictions: u64,
}

/// One tier of the cache. Implementations must be safe to call concurrently, never expose a
/// partially written object, and keep their own byte bound.
pub trait Layer: Send + Sync {
    /// Metric label and log name (`memory`, `disk`, `s3`).
    fn name(&self) -> &'static str;
    /// Whether the layer takes part at all (the shared layer is off until a config names a
    /// bucket); disabled layers are skipped and not counted.
    fn enabled(&self) -> bool {
        true
    }
    /// Whether an object of `len` bytes may be stored here (used before filling from below).
    fn accepts(&self, _len: u64) -> bool {
        true
    }
    /// The object under `key`, whether or not it has expired (TTL is the caller's business).
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<(Meta, Payload)>, CacheError>>;
    /// Stores `src` under `key`, replacing any previous object. An object the layer does not
    /// accept is skipped with `Ok(())`.
    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        meta: &'a Meta,
        src: &'a Stored,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
    /// Removes `key`; `true` if it was present.
    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, CacheError>>;
    /// Removes every object tagged `tag`; the number removed.
    fn purge_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<usize, CacheError>>;
    /// Current occupancy.
    fn stats(&self) -> LayerStats;
}

/// A cache hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub meta: Meta,
    pub payload: Payload,
    /// The layer that answered.
    pub layer: &'static str,
}

/// The layered cache: ordered fastest first.
pub struct Cache {
    layers: Vec<Arc<dyn Layer>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    /// A cache over `layers`, tried in order (memory, then disk, then shared).
    pub fn new(layers: Vec<Arc<dyn Layer>>, metrics: Arc<Metrics>) -> Self {
        Cache { layers, metrics }
    }

    fn count(&self, layer: &'static str, result: &'static str) {
        self.metrics
            .cache_lookups
            .get_or_create(&CacheLabels { layer, result })
            .inc();
    }

    /// Looks `key` up layer by layer at time `now`.
    ///
    /// Guarantees: an object whose `expires` is not after `now` is never returned (it is removed
    /// from that layer and counted as `expired`); a hit in a lower layer is copied into every
    /// upper layer that accepts its size before returning; a failing layer is logged and
    /// counted as a miss.
    pub async fn get(&self, key: &CacheKey, now: SystemTime) -> Option<Hit> {
        for (i, layer) in self.layers.iter().enumerate() {
            if !layer.enabled() {
                continue;
            }
            let name = layer.name();
            match layer.get(key).await {
                Ok(Some((meta, _))) if meta.is_expired(now) => {
                    self.count(name, "expired");
                    if let Err(e) = layer.remove(key).await {
                        tracing::warn!(layer = name, key = %key, error = %e, "cache: removing an expired object failed");
                    }
                }
                Ok(Some((meta, payload))) => {
                    self.count(name, "hit");
                    self.fill(&self.layers[..i], key, &meta, &payload).await;
                    return Some(Hit {
                        meta,
                        payload,
                        layer: name,
                    });
                }
                Ok(None) => self.count(name, "miss"),
                Err(e) => {
                    tracing::warn!(layer = name, key = %key, error = %e, "cache: lookup failed, treated as a miss");
                    self.count(name, "miss");
                }
            }
        }
        None
    }

    async fn fill(&self, upper: &[Arc<dyn Layer>], key: &CacheKey, meta: &Meta, payload: &Payload) {
        let src = Stored::from(payload);
        for layer in upper
            .iter()
            .filter(|l| l.enabled() && l.accepts(payload.len()))
        {
            if let Err(e) = layer.put(key, meta, &src).await {
                tracing::warn!(layer = layer.name(), key = %key, error = %e, "cache: fill from a lower layer failed");
            }
        }
    }

    /// Stores a finished object in every layer that accepts it.
    ///
    /// Guarantee: no layer ever exposes a partial object; a layer that fails is logged and
    /// skipped (the object is simply not cached there).
    pub async fn put(&self, key: &CacheKey, meta: &Meta, src: &Stored) {
        for layer in self.layers.iter().filter(|l| l.enabled()) {
            if let Err(e) = layer.put(key, meta, src).await {
                tracing::warn!(layer = layer.name(), key = %key, error = %e, "cache: store failed");
            }
        }
    }

    /// Removes `key` from every layer; the number of layers that held it.
    pub async fn remove(&self, key: &CacheKey) -> usize {
        let mut n = 0;
        for layer in self.layers.iter().filter(|l| l.enabled()) {
            match layer.remove(key).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(layer = layer.name(), key = %key, error = %e, "cache: remove failed")
                }
            }
        }
        n
    }

    /// Removes every object tagged `tag` from every layer; the total removed across layers.
    pub async fn purge_tag(&self, tag: &str) -> usize {
        let mut n = 0;
        for layer in self.layers.iter().filter(|l| l.enabled()) {
            match layer.purge_tag(tag).await {
                Ok(k) => n += k,
                Err(e) => {
                    tracing::warn!(layer = layer.name(), tag, error = %e, "cache: purge by tag failed")
                }
            }
        }
        n
    }

    /// Occupancy of each layer, top first.
    pub fn stats(&self) -> Vec<LayerStats> {
        self.layers
            .iter()
            .filter(|l| l.enabled())
            .map(|l| l.stats())
            .collect()
    }
}

pub(crate) use crate::sync::lock;

/// Publishes a layer's occupancy gauges.
pub(crate) fn publish(metrics: &Metrics, layer: &'static str, bytes: u64, objects: usize) {
    let labels = LayerLabels { layer };
    metrics
        .cache_bytes
        .get_or_create(&labels)
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    metrics
        .cache_objects
        .get_or_create(&labels)
        .set(i64::try_from(objects).unwrap_or(i64::MAX));
}

/// Counts one eviction of `layer`.
pub(crate) fn count_eviction(metrics: &Metrics, layer: &'static str) {
    metrics
        .cache_evictions
        .get_or_create(&LayerLabels { layer })
        .inc();
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    pub fn key(n: &str) -> CacheKey {
        CacheKey::derive(&KeyParts {
            origin: "o",
            source: "s",
            source_key: n,
            validator: "v",
            variant: "x",
        })
    }

    pub fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    pub fn meta(len: u64, tags: &[&str]) -> Meta {
        Meta {
            content_type: "video/mp4".into(),
            length: len,
            status: 200,
            created: t(1_000),
            expires: t(2_000),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            etag: "\"e\"".into(),
            last_modified: t(900),
            variant: "x".into(),
            cache_control: None,
        }
    }

    pub fn bytes(n: usize, fill: u8) -> Stored {
        Stored::Bytes(bytes::Bytes::from(vec![fill; n]))
    }

    pub async fn payload_bytes(p: &Payload) -> Vec<u8> {
        p.to_bytes().await.unwrap().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::metrics::CacheLabels;

    struct Broken;

    impl Layer for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn get<'a>(
            &'a self,
            _: &'a CacheKey,
        ) -> BoxFuture<'a, Result<Option<(Meta, Payload)>, CacheError>> {
            Box::pin(async { Err(CacheError::Task { layer: "broken" }) })
        }
        fn put<'a>(
            &'a self,
            _: &'a CacheKey,
            _: &'a Meta,
            _: &'a Stored,
        ) -> BoxFuture<'a, Result<(), CacheError>> {
            Box::pin(async { Err(CacheError::Task { layer: "broken" }) })
        }
        fn remove<'a>(&'a self, _: &'a CacheKey) -> BoxFuture<'a, Result<bool, CacheError>> {
            Box::pin(async { Err(CacheError::Task { layer: "broken" }) })
        }
        fn purge_tag<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<usize, CacheError>> {
            Box::pin(async { Err(CacheError::Task { layer: "broken" }) })
        }
        fn stats(&self) -> LayerStats {
            LayerStats {
                layer: "broken",
                objects: 0,
                bytes: 0,
                max_bytes: 0,
                evictions: 0,
            }
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        metrics: Arc<Metrics>,
        memory: Arc<MemoryLayer>,
        disk: Arc<DiskLayer>,
        cache: Cache,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let memory = Arc::new(MemoryLayer::new(1 << 20, 1 << 16, metrics.clone()));
        let disk = Arc::new(
            DiskLayer::open(dir.path(), 1 << 24, metrics.clone())
                .await
                .unwrap(),
        );
        let cache = Cache::new(vec![memory.clone(), disk.clone()], metrics.clone());
        Setup {
            _dir: dir,
            metrics,
            memory,
            disk,
            cache,
        }
    }

    fn lookups(m: &Metrics, layer: &'static str, result: &'static str) -> u64 {
        m.cache_lookups
            .get_or_create(&CacheLabels { layer, result })
            .get()
    }

    #[tokio::test]
    async fn ttl_is_enforced_on_read() {
        let s = setup().await;
        s.cache.put(&key("a"), &meta(3, &[]), &bytes(3, 1)).await;
        assert!(s.cache.get(&key("a"), t(1_999)).await.is_some());
        assert!(s.cache.get(&key("a"), t(2_000)).await.is_none());
        assert_eq!(lookups(&s.metrics, "memory", "expired"), 1);
        assert_eq!(lookups(&s.metrics, "disk", "expired"), 1);
        // The expired object is gone from both layers, even for an earlier clock.
        assert!(s.cache.get(&key("a"), t(1_000)).await.is_none());
        assert_eq!(s.memory.stats().objects, 0);
        assert_eq!(s.disk.stats().objects, 0);
    }

    #[tokio::test]
    async fn a_hit_in_disk_fills_memory() {
        let s = setup().await;
        s.disk
            .put(&key("a"), &meta(5, &[]), &bytes(5, 7))
            .await
            .unwrap();
        let hit = s.cache.get(&key("a"), t(1_500)).await.unwrap();
        assert_eq!(hit.layer, "disk");
        assert_eq!(payload_bytes(&hit.payload).await, vec![7; 5]);
        let hit = s.cache.get(&key("a"), t(1_500)).await.unwrap();
        assert_eq!(hit.layer, "memory");
        assert_eq!(payload_bytes(&hit.payload).await, vec![7; 5]);
        assert_eq!(lookups(&s.metrics, "memory", "miss"), 1);
        assert_eq!(lookups(&s.metrics, "memory", "hit"), 1);
        assert_eq!(lookups(&s.metrics, "disk", "hit"), 1);
    }

    #[tokio::test]
    async fn a_large_disk_hit_does_not_fill_memory() {
        let s = setup().await;
        let big = (1 << 16) + 1;
        s.disk
            .put(&key("a"), &meta(big as u64, &[]), &bytes(big, 7))
            .await
            .unwrap();
        assert_eq!(
            s.cache.get(&key("a"), t(1_500)).await.unwrap().layer,
            "disk"
        );
        assert_eq!(
            s.cache.get(&key("a"), t(1_500)).await.unwrap().layer,
            "disk"
        );
        assert_eq!(s.memory.stats().objects, 0);
    }

    #[tokio::test]
    async fn purge_by_tag_removes_variant_from_every_layer() {
        let s = setup().await;
        s.cache
            .put(
                &key("a"),
                &meta(3, &["video-a", "video-format-mp4"]),
                &bytes(3, 1),
            )
            .await;
        s.cache
            .put(
                &key("b"),
                &meta(3, &["video-b", "video-format-mp4"]),
                &bytes(3, 2),
            )
            .await;
        assert_eq!(s.cache.purge_tag("video-a").await, 2);
        assert!(s.cache.get(&key("a"), t(1_500)).await.is_none());
        assert!(s.cache.get(&key("b"), t(1_500)).await.is_some());
        assert_eq!(s.cache.purge_tag("video-format-mp4").await, 2);
        assert!(s.cache.get(&key("b"), t(1_500)).await.is_none());
        assert_eq!(s.cache.purge_tag("video-format-mp4").await, 0);
    }

    #[tokio::test]
    async fn purge_by_key_removes_the_object_from_every_layer() {
        let s = setup().await;
        s.cache.put(&key("a"), &meta(3, &[]), &bytes(3, 1)).await;
        let parsed: CacheKey = key("a").hex().parse().unwrap();
        assert_eq!(s.cache.remove(&parsed).await, 2);
        assert!(s.cache.get(&key("a"), t(1_500)).await.is_none());
        assert_eq!(s.cache.remove(&parsed).await, 0);
    }

    #[tokio::test]
    async fn a_broken_layer_is_a_miss_not_a_failure() {
        let s = setup().await;
        let cache = Cache::new(vec![Arc::new(Broken), s.disk.clone()], s.metrics.clone());
        cache.put(&key("a"), &meta(3, &[]), &bytes(3, 1)).await;
        let hit = cache.get(&key("a"), t(1_500)).await.unwrap();
        assert_eq!(hit.layer, "disk");
        assert_eq!(lookups(&s.metrics, "broken", "miss"), 1);
        assert_eq!(cache.purge_tag("x").await, 0);
        assert_eq!(cache.remove(&key("a")).await, 1);
        assert!(cache.get(&key("b"), t(1_500)).await.is_none());
    }

    #[tokio::test]
    async fn stats_and_gauges_report_every_layer() {
        let s = setup().await;
        s.cache.put(&key("a"), &meta(3, &[]), &bytes(3, 1)).await;
        let stats = s.cache.stats();
        assert_eq!(stats.len(), 2);
        assert_eq!(
            (stats[0].layer, stats[0].objects, stats[0].bytes),
            ("memory", 1, 3)
        );
        assert_eq!(
            (stats[1].layer, stats[1].objects, stats[1].bytes),
            ("disk", 1, 3)
        );
        let text = s.metrics.encode();
        assert!(text.contains("vr_cache_bytes{layer=\"disk\"} 3"), "{text}");
        assert!(
            text.contains("vr_cache_objects{layer=\"memory\"} 1"),
            "{text}"
        );
    }
}
