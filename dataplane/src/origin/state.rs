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

/// Most entries held by the source-metadata cache; past it, expired entries are dropped and,
/// if that is not enough, the whole cache is cleared (it only saves origin requests).
const META_CACHE_MAX: usize = 10_000;

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
    }

    pub(super) fn cached(&self, key: &MetaKey, ttl: Duration) -> Option<Option<SourceMeta>> {
        let map = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let (at, entry) = map.get(key)?;
        (at.elapsed() < ttl).then(|| entry.clone())
    }

    pub(super) fn remember(&self, key: MetaKey, entry: Option<SourceMeta>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= META_CACHE_MAX {
            map.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if map.len() >= META_CACHE_MAX {
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
