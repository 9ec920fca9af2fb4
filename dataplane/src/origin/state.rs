//! Long-lived origin state shared by every config revision: breakers, the source-metadata
//! cache, the HTTP client and the presign cache.

use super::breaker::Breaker;
use super::presign;
use super::SourceMeta;
use crate::metrics::{Metrics, OriginLabels, SourceLabels};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Most objects the source-metadata cache holds; past it, expired entries are dropped and,
/// if that is not enough, every found object is forgotten (it only saves origin requests).
const META_CACHE_MAX: usize = 10_000;
/// Most "not found" answers held, apart from the found ones: a client can mint missing paths
/// at will, so misses have their own smaller map and can never push a found object out.
const MISSING_CACHE_MAX: usize = 1_000;
/// Longest a "not found" answer is remembered.
const MISSING_TTL: Duration = Duration::from_secs(30);

/// Connect timeout of the HTTP client (each request is also bounded by its source timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) type MetaKey = (String, String, u64, String);

/// Long-lived origin state shared by every config revision: breakers, the source-metadata
/// cache and the HTTP client (with its connection pool).
pub struct OriginState {
    metrics: Arc<Metrics>,
    pub(super) temp_dir: PathBuf,
    pub(super) client: reqwest::Client,
    breakers: Mutex<HashMap<(String, String), Arc<Breaker>>>,
    meta: Mutex<HashMap<MetaKey, (Instant, Option<SourceMeta>)>>,
    /// "Not found" answers, kept apart ([`MISSING_CACHE_MAX`]).
    missing: Mutex<HashMap<MetaKey, (Instant, Option<SourceMeta>)>>,
    /// Presigned URLs of S3 sources.
    pub presign: Arc<presign::PresignCache>,
}

impl OriginState {
    /// Builds the state; spooled downloads go under `temp_dir` (created when needed).
    ///
    /// The HTTP client follows no redirects, ignores proxy environment variables and does
    /// not decompress. Panics only if the TLS backend cannot initialise (start-up).
    pub fn new(metrics: Arc<Metrics>, temp_dir: PathBuf) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("video-resizer/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds (TLS backend available)");
        Arc::new(OriginState {
            temp_dir,
            client,
            breakers: Mutex::new(HashMap::new()),
            meta: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            presign: presign::PresignCache::new(metrics.clone()),
            metrics,
        })
    }

    pub(super) fn breaker(&self, origin: &str, source: &str) -> Arc<Breaker> {
        let mut map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((origin.to_string(), source.to_string()))
            .or_insert_with(|| {
                let gauge = self
                    .metrics
                    .breaker_state
                    .get_or_create(&SourceLabels {
                        origin: origin.to_string(),
                        source: source.to_string(),
                    })
                    .clone();
                Breaker::new(gauge)
            })
            .clone()
    }

    /// Every breaker known to this process as `(origin, source, state)`, sorted.
    pub fn breakers(&self) -> Vec<(String, String, &'static str)> {
        let now = Instant::now();
        let map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|((o, s), b)| (o.clone(), s.clone(), b.state(now).as_str()))
            .collect();
        out.sort();
        out
    }

    /// Forgets every cached source validator (e.g. after a purge), so the next request asks
    /// the sources again.
    pub fn clear_source_meta(&self) {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(super) fn cached(&self, key: &MetaKey, ttl: Duration) -> Option<Option<SourceMeta>> {
        {
            let map = self.meta.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, entry)) = map.get(key) {
                if at.elapsed() < ttl {
                    return Some(entry.clone());
                }
            }
        }
        let map = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        let (at, entry) = map.get(key)?;
        (at.elapsed() < ttl.min(MISSING_TTL)).then(|| entry.clone())
    }

    pub(super) fn remember(&self, key: MetaKey, entry: Option<SourceMeta>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let (map, max, ttl) = if entry.is_some() {
            self.missing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            (&self.meta, META_CACHE_MAX, ttl)
        } else {
            self.meta
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            (&self.missing, MISSING_CACHE_MAX, ttl.min(MISSING_TTL))
        };
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= max {
            map.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if map.len() >= max {
                map.clear();
            }
        }
        map.insert(key, (now, entry));
    }

    pub(super) fn count(&self, origin: &str, source: &str, outcome: &'static str) {
        self.metrics
            .origin_fetches
            .get_or_create(&OriginLabels {
                origin: origin.to_string(),
                source: source.to_string(),
                outcome,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> MetaKey {
        ("o".into(), "s".into(), 1, format!("k{i}"))
    }

    fn meta(i: usize) -> SourceMeta {
        SourceMeta {
            origin: "o".into(),
            source: "s".into(),
            key: format!("k{i}"),
            validator: format!("etag:{i}"),
            length: Some(1),
            content_type: None,
            last_modified: None,
        }
    }

    #[tokio::test]
    async fn misses_never_push_found_objects_out() {
        let state = OriginState::new(Arc::new(Metrics::new()), std::env::temp_dir());
        let ttl = Duration::from_secs(600);
        state.remember(key(0), Some(meta(0)), ttl);
        // 10 000 distinct missing paths (issue 15, row 9).
        for i in 1..=10_000 {
            state.remember(key(i), None, ttl);
        }
        assert_eq!(state.cached(&key(0), ttl), Some(Some(meta(0))));
        assert!(state.missing.lock().unwrap().len() <= MISSING_CACHE_MAX);
        assert_eq!(state.cached(&key(10_000), ttl), Some(None));
        // An object found later replaces its miss.
        state.remember(key(10_000), Some(meta(10_000)), ttl);
        assert_eq!(state.cached(&key(10_000), ttl), Some(Some(meta(10_000))));
    }
}
