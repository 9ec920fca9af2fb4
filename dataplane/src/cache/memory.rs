//! In-process cache layer: whole objects as `Bytes`, LRU bounded by total bytes.

use super::lru::Lru;
use super::meta::read_range;
use super::{count_eviction, lock, publish, CacheError, CacheKey, Layer, LayerStats, Meta};
use super::{Payload, Stored};
use crate::metrics::Metrics;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};

const NAME: &str = "memory";

struct State {
    lru: Lru<Bytes>,
    evictions: u64,
}

/// The memory layer.
///
/// Guarantees: total bytes held never exceed `max_bytes` (least recently used objects are
/// evicted first); objects over `max_object_bytes` are never stored; hits are zero-copy.
pub struct MemoryLayer {
    max_bytes: u64,
    max_object_bytes: u64,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

impl MemoryLayer {
    /// An empty layer holding at most `max_bytes`, each object at most `max_object_bytes`.
    pub fn new(max_bytes: u64, max_object_bytes: u64, metrics: Arc<Metrics>) -> Self {
        publish(&metrics, NAME, 0, 0);
        MemoryLayer {
            max_bytes,
            max_object_bytes,
            metrics,
            state: Mutex::new(State {
                lru: Lru::new(),
                evictions: 0,
            }),
        }
    }

    /// The bytes of `src`, or `None` when it is too large for this layer.
    async fn load(&self, src: &Stored) -> Result<Option<Bytes>, CacheError> {
        match src {
            Stored::Bytes(b) => Ok(self.accepts(b.len() as u64).then(|| b.clone())),
            Stored::File(path) => {
                let len = tokio::fs::metadata(path)
                    .await
                    .map_err(CacheError::io(NAME, "stat source file"))?
                    .len();
                if !self.accepts(len) {
                    return Ok(None);
                }
                let data = tokio::fs::read(path)
                    .await
                    .map_err(CacheError::io(NAME, "read source file"))?;
                // The file may have grown between stat and read.
                Ok(self.accepts(data.len() as u64).then(|| Bytes::from(data)))
            }
            Stored::Open { file, len } => {
                if !self.accepts(*len) {
                    return Ok(None);
                }
                let (file, len) = (file.clone(), *len);
                let data = tokio::task::spawn_blocking(move || read_range(&file, 0, len))
                    .await
                    .map_err(|_| CacheError::Task { layer: NAME })?
                    .map_err(CacheError::io(NAME, "read open file"))?;
                Ok(Some(Bytes::from(data)))
            }
        }
    }

    fn publish(&self, st: &State) {
        publish(&self.metrics, NAME, st.lru.bytes(), st.lru.len());
    }
}

impl Layer for MemoryLayer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn accepts(&self, len: u64) -> bool {
        len <= self.max_object_bytes && len <= self.max_bytes
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<(Meta, Payload)>, CacheError>> {
        Box::pin(async move {
            let mut st = lock(&self.state);
            Ok(st
                .lru
                .get(key)
                .map(|e| (e.meta.clone(), Payload::Bytes(e.value.clone()))))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        meta: &'a Meta,
        src: &'a Stored,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let Some(data) = self.load(src).await? else {
                return Ok(());
            };
            let mut meta = meta.clone();
            meta.length = data.len() as u64;
            let mut st = lock(&self.state);
            st.lru.insert(*key, meta, data.len() as u64, data);
            while st.lru.bytes() > self.max_bytes {
                if st.lru.pop_lru().is_none() {
                    break;
                }
                st.evictions += 1;
                count_eviction(&self.metrics, NAME);
            }
            self.publish(&st);
            Ok(())
        })
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let mut st = lock(&self.state);
            let removed = st.lru.remove(key).is_some();
            self.publish(&st);
            Ok(removed)
        })
    }

    fn purge_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<usize, CacheError>> {
        Box::pin(async move {
            let mut st = lock(&self.state);
            let keys = st.lru.tagged(tag);
            for k in &keys {
                st.lru.remove(k);
            }
            self.publish(&st);
            Ok(keys.len())
        })
    }

    fn stats(&self) -> LayerStats {
        let st = lock(&self.state);
        LayerStats {
            layer: NAME,
            objects: st.lru.len() as u64,
            bytes: st.lru.bytes(),
            max_bytes: self.max_bytes,
            evictions: st.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testutil::*;
    use std::io::Write;

    fn layer(max: u64, max_obj: u64) -> MemoryLayer {
        MemoryLayer::new(max, max_obj, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn lru_eviction_keeps_memory_bytes_within_max() {
        let m = layer(100, 100);
        for i in 0..10u8 {
            m.put(&key(&i.to_string()), &meta(30, &["t"]), &bytes(30, i))
                .await
                .unwrap();
            assert!(m.stats().bytes <= 100);
        }
        let s = m.stats();
        assert_eq!((s.objects, s.bytes, s.evictions), (3, 90, 7));
        // The three most recent survive.
        for i in 7..10u8 {
            let (_, p) = m.get(&key(&i.to_string())).await.unwrap().unwrap();
            assert_eq!(payload_bytes(&p).await, vec![i; 30]);
        }
        assert!(m.get(&key("6")).await.unwrap().is_none());
        assert_eq!(m.purge_tag("t").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_read_makes_an_object_most_recently_used() {
        let m = layer(60, 60);
        m.put(&key("a"), &meta(30, &[]), &bytes(30, 1))
            .await
            .unwrap();
        m.put(&key("b"), &meta(30, &[]), &bytes(30, 2))
            .await
            .unwrap();
        m.get(&key("a")).await.unwrap().unwrap();
        m.put(&key("c"), &meta(30, &[]), &bytes(30, 3))
            .await
            .unwrap();
        assert!(m.get(&key("a")).await.unwrap().is_some());
        assert!(m.get(&key("b")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_refuses_objects_over_max_object_bytes() {
        let m = layer(1000, 10);
        assert!(!m.accepts(11));
        m.put(&key("a"), &meta(11, &[]), &bytes(11, 1))
            .await
            .unwrap();
        assert!(m.get(&key("a")).await.unwrap().is_none());
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0u8; 11]).unwrap();
        m.put(
            &key("b"),
            &meta(11, &[]),
            &Stored::File(f.path().to_path_buf()),
        )
        .await
        .unwrap();
        assert!(m.get(&key("b")).await.unwrap().is_none());
        m.put(&key("c"), &meta(10, &[]), &bytes(10, 1))
            .await
            .unwrap();
        assert!(m.get(&key("c")).await.unwrap().is_some());
        assert_eq!(m.stats().bytes, 10);
    }

    #[tokio::test]
    async fn memory_stores_from_a_file_and_from_an_open_file() {
        let m = layer(1000, 100);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"abc").unwrap();
        m.put(
            &key("a"),
            &meta(3, &[]),
            &Stored::File(f.path().to_path_buf()),
        )
        .await
        .unwrap();
        let open = Stored::Open {
            file: Arc::new(std::fs::File::open(f.path()).unwrap()),
            len: 3,
        };
        m.put(&key("b"), &meta(3, &[]), &open).await.unwrap();
        for k in ["a", "b"] {
            let (meta, p) = m.get(&key(k)).await.unwrap().unwrap();
            assert_eq!(meta.length, 3);
            assert_eq!(payload_bytes(&p).await, b"abc");
        }
    }
}
