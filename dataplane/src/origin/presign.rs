//! Presigned-URL cache: one URL per (origin, source, key, method), reused until a safety margin
//! before it expires, refreshed in the background before it gets there, and dropped when the
//! source's credentials change.
//!
//! Guarantees: a URL is never handed out at or after `expiry - margin` (such an entry is
//! re-signed on the request path); from `expiry - 2 × margin` on, the first lookup starts one
//! background refresh and keeps answering with the still-valid URL until it lands. Time is
//! tokio's clock, so the guarantees are tested with paused time.

use super::SourceError;
use crate::metrics::{Metrics, PresignLabels};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Most URLs held; past it, expired entries go and, if that is not enough, everything.
const MAX_ENTRIES: usize = 50_000;

/// Signs one URL now; the URL is valid for the lifetime given to [`PresignCache::url`].
pub(crate) type Signer =
    Arc<dyn Fn() -> BoxFuture<'static, Result<String, SourceError>> + Send + Sync>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EntryKey {
    origin: String,
    source: String,
    key: String,
    method: &'static str,
}

#[derive(Clone, Debug)]
struct Entry {
    url: Arc<str>,
    /// When the URL stops working (signing time + lifetime).
    expires: Instant,
    refreshing: bool,
}

/// The cache (one per process, in [`super::OriginState`]).
pub struct PresignCache {
    entries: Mutex<HashMap<EntryKey, Entry>>,
    /// Credentials fingerprint per (origin, source), to notice rotations.
    credentials: Mutex<HashMap<(String, String), String>>,
    metrics: Arc<Metrics>,
}

/// How long URLs live and how close to expiry they may be handed out.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub lifetime: Duration,
    pub margin: Duration,
}

impl PresignCache {
    pub fn new(metrics: Arc<Metrics>) -> Arc<PresignCache> {
        Arc::new(PresignCache {
            entries: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    fn count(&self, origin: &str, source: &str, result: &'static str) {
        self.metrics
            .presign
            .get_or_create(&PresignLabels {
                origin: origin.to_string(),
                source: source.to_string(),
                result,
            })
            .inc();
    }

    /// Records the credentials fingerprint of a source; when it differs from the one seen
    /// before, every URL of that source is dropped (they were signed with the old keys).
    pub fn credentials(&self, origin: &str, source: &str, fingerprint: &str) {
        let mut creds = crate::sync::lock(&self.credentials);
        let id = (origin.to_string(), source.to_string());
        let changed = creds
            .insert(id, fingerprint.to_string())
            .is_some_and(|old| old != fingerprint);
        drop(creds);
        if changed {
            crate::sync::lock(&self.entries)
                .retain(|k, _| !(k.origin == origin && k.source == source));
            tracing::info!(
                origin,
                source,
                "credentials changed: dropped the source's presigned URLs"
            );
        }
    }

    /// A URL for `key` that stays valid for at least `life.margin` from now.
    pub(crate) async fn url(
        self: &Arc<Self>,
        (origin, source, key, method): (&str, &str, &str, &'static str),
        life: Lifetime,
        sign: Signer,
    ) -> Result<Arc<str>, SourceError> {
        let ek = EntryKey {
            origin: origin.to_string(),
            source: source.to_string(),
            key: key.to_string(),
            method,
        };
        let now = Instant::now();
        let mut refresh = false;
        let cached = {
            let mut map = crate::sync::lock(&self.entries);
            match map.get_mut(&ek) {
                Some(e) if now + life.margin < e.expires => {
                    if !e.refreshing && now + life.margin * 2 >= e.expires {
                        e.refreshing = true;
                        refresh = true;
                    }
                    Some(e.url.clone())
                }
                _ => None,
            }
        };
        if let Some(url) = cached {
            self.count(origin, source, "hit");
            if refresh {
                let this = self.clone();
                let sign = sign.clone();
                tokio::spawn(async move {
                    let signed_at = Instant::now();
                    let result = sign().await;
                    let mut map = crate::sync::lock(&this.entries);
                    match result {
                        Ok(url) => {
                            this.count(&ek.origin, &ek.source, "refresh");
                            map.insert(
                                ek,
                                Entry {
                                    url: url.into(),
                                    expires: signed_at + life.lifetime,
                                    refreshing: false,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(origin = %ek.origin, source = %ek.source, error = ?e, "presigned URL refresh failed");
                            if let Some(entry) = map.get_mut(&ek) {
                                entry.refreshing = false;
                            }
                        }
                    }
                });
            }
            return Ok(url);
        }
        self.count(origin, source, "miss");
        let signed_at = Instant::now();
        let url: Arc<str> = sign().await?.into();
        let mut map = crate::sync::lock(&self.entries);
        if map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, e| e.expires > now + life.margin);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            ek,
            Entry {
                url: url.clone(),
                expires: signed_at + life.lifetime,
                refreshing: false,
            },
        );
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A signer whose URLs say when they were signed: `u<n>@<millis since start>`.
    fn signer(start: Instant, n: Arc<AtomicU64>) -> Signer {
        Arc::new(move || {
            let n = n.fetch_add(1, Ordering::SeqCst);
            let at = Instant::now().duration_since(start).as_millis();
            Box::pin(async move { Ok(format!("u{n}@{at}")) })
        })
    }

    fn signed_at(url: &str) -> Duration {
        let ms: u64 = url.split('@').nth(1).unwrap().parse().unwrap();
        Duration::from_millis(ms)
    }

    fn count(m: &Metrics, result: &'static str) -> u64 {
        m.presign
            .get_or_create(&PresignLabels {
                origin: "o".into(),
                source: "s".into(),
                result,
            })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hot_workload_is_answered_from_the_cache() {
        let metrics = Arc::new(Metrics::new());
        let cache = PresignCache::new(metrics.clone());
        let start = Instant::now();
        let sign = signer(start, Arc::new(AtomicU64::new(0)));
        let life = Lifetime {
            lifetime: Duration::from_secs(3600),
            margin: Duration::from_secs(300),
        };
        for i in 0..1000u32 {
            let key = format!("k{}", i % 20);
            cache
                .url(("o", "s", &key, "GET"), life, sign.clone())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (hits, misses) = (count(&metrics, "hit"), count(&metrics, "miss"));
        assert_eq!(hits + misses, 1000);
        assert!(hits >= 950, "hits {hits}, misses {misses}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_url_is_handed_out_inside_the_safety_margin() {
        let metrics = Arc::new(Metrics::new());
        let cache = PresignCache::new(metrics.clone());
        let start = Instant::now();
        let sign = signer(start, Arc::new(AtomicU64::new(0)));
        let life = Lifetime {
            lifetime: Duration::from_secs(10),
            margin: Duration::from_secs(2),
        };
        // 3 hot keys, one lookup every 50 ms for 2 minutes of (paused) time.
        for i in 0..2400u32 {
            let key = format!("k{}", i % 3);
            let url = cache
                .url(("o", "s", &key, "GET"), life, sign.clone())
                .await
                .unwrap();
            let now = Instant::now().duration_since(start);
            let expires = signed_at(&url) + life.lifetime;
            assert!(
                now + life.margin < expires,
                "{url} handed out at {now:?}, inside the margin of its expiry {expires:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Background refreshes kept the hot keys warm: almost no request waited for signing.
        assert!(count(&metrics, "refresh") > 0);
        assert!(count(&metrics, "miss") <= 6, "{}", count(&metrics, "miss"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_credential_change_empties_the_sources_urls() {
        let metrics = Arc::new(Metrics::new());
        let cache = PresignCache::new(metrics.clone());
        let sign = signer(Instant::now(), Arc::new(AtomicU64::new(0)));
        let life = Lifetime {
            lifetime: Duration::from_secs(3600),
            margin: Duration::from_secs(60),
        };
        cache.credentials("o", "s", "fp1");
        let a = cache.url(("o", "s", "k", "GET"), life, sign.clone()).await;
        let b = cache.url(("o", "s", "k", "GET"), life, sign.clone()).await;
        assert_eq!(a.unwrap(), b.unwrap());
        cache.credentials("o", "s", "fp1");
        assert_eq!(count(&metrics, "miss"), 1);
        cache.credentials("o", "s", "fp2");
        cache.url(("o", "s", "k", "GET"), life, sign).await.unwrap();
        assert_eq!(count(&metrics, "miss"), 2);
    }
}
