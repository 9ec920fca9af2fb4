//! Origins: ordered rules (linear-time regex, named captures) → ordered sources (local, http,
//! s3), each behind a circuit breaker with bounded retries.
//!
//! This layer sits between routing and the cache: it answers "which source has this object,
//! and what is its validator" ([`Origins::stat`], cached so cache hits cost no origin request)
//! before the cache key is derived, and hands the transcoder a local file
//! ([`Origins::fetch`]) or the client a stream of the original ([`Origins::open`]) only on a
//! miss. Nothing a client sends chooses a host: hosts come from config, captures are encoded
//! into paths only.

mod breaker;
mod compile;
mod error;
mod fetch;
mod http;
mod local;
pub mod presign;
mod retry;
pub mod rules;
mod s3;
mod state;

pub use breaker::{BreakerPolicy, BreakerState};
pub use error::OriginError;
pub(crate) use error::SourceError;
pub use retry::RetryPolicy;
pub use state::OriginState;

use crate::body::Body;
use compile::{Kind, Rule};
use fetch::{Done, Op};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// What a source says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    /// Origin name.
    pub origin: String,
    /// Source name.
    pub source: String,
    /// Resolved relative path (local) or URL (http); never credentials.
    pub key: String,
    /// ETag, or size + mtime / Last-Modified + length: changes when the object changes.
    /// Empty when an HTTP source gives no validator at all.
    pub validator: String,
    /// Size in bytes, when known.
    pub length: Option<u64>,
    /// Content type, when known.
    pub content_type: Option<String>,
    /// Last modification time, when known.
    pub last_modified: Option<SystemTime>,
}

/// A source object available as a local file (what ffmpeg reads).
#[derive(Debug)]
pub struct Fetched {
    pub meta: SourceMeta,
    /// The file: the source file itself (local sources) or a spooled temp file (http, s3).
    /// Empty when `url` is set.
    pub path: PathBuf,
    /// A presigned URL ffmpeg reads instead of a file (S3 sources with
    /// `presign.transformInput`); built from config, never from the request.
    pub url: Option<Arc<str>>,
    /// Deletes a spooled temp file when the `Fetched` is dropped.
    _spool: Option<tempfile::TempPath>,
}

impl Fetched {
    /// What ffmpeg reads.
    pub fn input(&self) -> crate::transcode::Input<'_> {
        match &self.url {
            Some(u) => crate::transcode::Input::Url(u),
            None => crate::transcode::Input::File(&self.path),
        }
    }
}

/// A request path matched to an origin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Origin name.
    pub origin: String,
    /// The decoded request path.
    pub path: String,
    origin_index: usize,
    captures: Vec<(String, String)>,
}

impl Route {
    /// A capture by name (`name`, `1`, `path`); unknown names read as `None`.
    pub fn capture(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn capture<'a>(captures: &'a [(String, String)], name: &str) -> &'a str {
    captures
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The origin rules of one config revision, compiled.
pub struct Origins {
    rules: Vec<Rule>,
    state: Arc<OriginState>,
    retry: RetryPolicy,
    breaker_policy: BreakerPolicy,
    max_input: u64,
    revalidate: Duration,
}

impl Origins {
    /// The first origin whose matcher matches `raw_path`, with its captures; `None` when no
    /// origin matches or the path is unsafe (see [`Origins::try_route`]).
    pub fn route(&self, raw_path: &str) -> Option<Route> {
        self.try_route(raw_path).ok().flatten()
    }

    /// Like [`Origins::route`], but says why an unsafe path was refused.
    ///
    /// `raw_path` is the request path exactly as received: still percent-encoded, without
    /// the query. It is decoded here, once ([`rules::decode_path`]); callers must not
    /// decode it themselves.
    pub fn try_route(&self, raw_path: &str) -> Result<Option<Route>, OriginError> {
        let path =
            rules::decode_path(raw_path).map_err(|r| OriginError::BadPath { reason: r.0 })?;
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(captures) = rules::captures(&rule.matcher, &path) {
                return Ok(Some(Route {
                    origin: rule.name.clone(),
                    path,
                    origin_index: i,
                    captures,
                }));
            }
        }
        Ok(None)
    }

    /// Breakers of this revision's sources as `(origin, source, state)`.
    pub fn breakers(&self) -> Vec<(String, String, &'static str)> {
        let now = Instant::now();
        self.rules
            .iter()
            .flat_map(|r| {
                r.sources.iter().map(move |s| {
                    (
                        r.name.clone(),
                        s.name.clone(),
                        s.breaker.state(now).as_str(),
                    )
                })
            })
            .collect()
    }

    /// Which source has the object, and its validator.
    ///
    /// Results (found and not found) are cached per (origin, source, key) for
    /// `cache.sourceRevalidateSeconds`, so within that window a cache hit costs no origin
    /// request. Errors: `NotFound` when every source said so; `TooLarge` past
    /// `limits.maxInputBytes` (HEAD / stat, nothing downloaded); otherwise the first
    /// failure in source order.
    pub async fn stat(&self, route: &Route) -> Result<SourceMeta, OriginError> {
        match self.run(route, Op::Stat).await? {
            Done::Meta(meta) => Ok(meta),
            Done::Fetched(f) => Ok(f.meta),
            Done::Opened(meta, _) => Ok(meta),
            Done::Range(_) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    /// The object as a local file ffmpeg can read: the file itself for local sources, a
    /// temp file under the state's `temp_dir` for HTTP sources (deleted when the `Fetched`
    /// is dropped; never left behind on error). The size limit is enforced before (HEAD)
    /// and while downloading. The source timeout bounds the response headers and every wait
    /// for a body chunk (an idle timeout), not the whole download.
    pub async fn fetch(&self, route: &Route) -> Result<Fetched, OriginError> {
        self.fetch_as(route, Op::Fetch).await
    }

    /// What ffmpeg should read: like [`Origins::fetch`], except that an S3 source with
    /// `presign.transformInput` answers with a cached presigned URL (after a HEAD that
    /// enforces the size limit), so ffmpeg reads only the byte ranges it needs.
    pub async fn input(&self, route: &Route) -> Result<Fetched, OriginError> {
        self.fetch_as(route, Op::Input).await
    }

    async fn fetch_as(&self, route: &Route, op: Op) -> Result<Fetched, OriginError> {
        match self.run(route, op).await? {
            Done::Fetched(f) => Ok(f),
            Done::Meta(_) | Done::Opened(..) | Done::Range(_) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    /// Streams the original without spooling (passthrough, serve-original fallback). No size
    /// limit applies: memory stays bounded by the stream.
    pub async fn open(&self, route: &Route) -> Result<(SourceMeta, Body), OriginError> {
        match self.run(route, Op::Open).await? {
            Done::Opened(meta, body) => Ok((meta, body)),
            Done::Meta(_) | Done::Fetched(_) | Done::Range(_) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    /// Streams bytes `start .. start + count` of the original described by `meta` (from
    /// [`Origins::stat`], whose `length` is `total`), the range forwarded to the origin: HTTP
    /// `Range`, S3 ranged `GetObject`. Only for remote sources ([`Origins::is_remote`]).
    pub async fn open_range(
        &self,
        route: &Route,
        start: u64,
        count: u64,
        total: u64,
    ) -> Result<Body, OriginError> {
        match self.run(route, Op::OpenRange(start, count, total)).await? {
            Done::Range(body) => Ok(body),
            Done::Meta(_) | Done::Fetched(_) | Done::Opened(..) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    /// Whether the source that `meta` came from is remote (HTTP or S3), where an original is
    /// streamed with its range forwarded rather than read from a file.
    pub fn is_remote(&self, route: &Route, meta: &SourceMeta) -> bool {
        self.rule(route)
            .and_then(|r| r.sources.iter().find(|s| s.name == meta.source))
            .is_some_and(|s| !matches!(s.kind, Kind::Local(_)))
    }

    fn rule(&self, route: &Route) -> Option<&Rule> {
        match self.rules.get(route.origin_index) {
            Some(r) if r.name == route.origin => Some(r),
            // A route from another revision: find its origin by name.
            _ => self.rules.iter().find(|r| r.name == route.origin),
        }
    }

    /// A presigned URL of the original for `route`, when its first source that has the
    /// object is an S3 source with `presign.redirectOriginals` (for answering with a redirect
    /// instead of proxying). `None` for every other source.
    pub async fn original_redirect(&self, route: &Route) -> Option<Arc<str>> {
        let meta = self.stat(route).await.ok()?;
        let rule = self.rule(route)?;
        let src = rule.sources.iter().find(|s| s.name == meta.source)?;
        let Kind::S3(s) = &src.kind else { return None };
        if !s.presign.redirect_originals {
            return None;
        }
        let key = s.key(&route.captures).ok()?;
        self.presigned(&rule.name, &src.name, s, &key).await.ok()
    }
}

#[cfg(test)]
mod tests;
