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
mod http;
mod local;
pub mod presign;
mod retry;
pub mod rules;
mod s3;

pub use breaker::{BreakerPolicy, BreakerState};
pub use retry::RetryPolicy;

use crate::body::Body;
use crate::error::{Classify, Fault};
use crate::metrics::{Metrics, OriginLabels, SourceLabels};
use ::http::StatusCode;
use breaker::{Admission, Breaker};
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use vr_crds::dataplane::Source;
use vr_crds::{DataPlaneConfig, ValidationErrors};

/// Most entries held by the source-metadata cache; past it, expired entries are dropped and,
/// if that is not enough, the whole cache is cleared (it only saves origin requests).
const META_CACHE_MAX: usize = 10_000;

/// Connect timeout of the HTTP client (each request is also bounded by its source timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Why a source could not provide an object. Messages name the origin and source, never
/// credentials or file-system paths.
#[derive(Debug)]
pub enum OriginError {
    /// The request path is unsafe (traversal, encoded separators, double encoding, …).
    BadPath { reason: &'static str },
    /// Every source said not found.
    NotFound { origin: String },
    /// The object is larger than `limits.maxInputBytes`.
    TooLarge {
        origin: String,
        source: String,
        limit: u64,
        size: Option<u64>,
    },
    /// The source did not answer within its timeout.
    Timeout {
        origin: String,
        source: String,
        after: Duration,
    },
    /// The source answered with an unexpected status.
    Upstream {
        origin: String,
        source: String,
        status: u16,
    },
    /// The source refused our credentials (401/403).
    Auth {
        origin: String,
        source: String,
        status: u16,
    },
    /// The source could not be reached or broke the connection.
    Network {
        origin: String,
        source: String,
        detail: String,
    },
    /// The source's circuit breaker is open.
    BreakerOpen {
        origin: String,
        source: String,
        retry_after: u32,
    },
    /// Local I/O failed (reading a local source or writing a temp file).
    Io {
        origin: String,
        source: String,
        detail: String,
    },
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OriginError::*;
        match self {
            BadPath { reason } => write!(f, "request path refused: {reason}"),
            NotFound { origin } => write!(f, "no source of origin {origin:?} has this object"),
            TooLarge {
                origin,
                source,
                limit,
                size: Some(size),
            } => write!(
                f,
                "source {source:?} of origin {origin:?}: the object is {size} bytes; limits.maxInputBytes is {limit}"
            ),
            TooLarge {
                origin,
                source,
                limit,
                size: None,
            } => write!(
                f,
                "source {source:?} of origin {origin:?}: the object exceeds limits.maxInputBytes ({limit} bytes)"
            ),
            Timeout {
                origin,
                source,
                after,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} did not answer within {}s",
                after.as_secs_f64()
            ),
            Upstream {
                origin,
                source,
                status,
            } if (300..400).contains(status) => write!(
                f,
                "source {source:?} of origin {origin:?} answered with a redirect (status {status}), which is not followed"
            ),
            Upstream {
                origin,
                source,
                status,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} answered with status {status}"
            ),
            Auth {
                origin,
                source,
                status,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} refused our credentials (status {status})"
            ),
            Network {
                origin,
                source,
                detail,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} is unreachable: {detail}"
            ),
            BreakerOpen {
                origin,
                source,
                retry_after,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} is failing; its circuit breaker is open for {retry_after}s"
            ),
            Io {
                origin,
                source,
                detail,
            } => write!(
                f,
                "reading source {source:?} of origin {origin:?} failed: {detail}"
            ),
        }
    }
}

impl std::error::Error for OriginError {}

impl Classify for OriginError {
    fn status(&self) -> StatusCode {
        use OriginError::*;
        match self {
            BadPath { .. } => StatusCode::BAD_REQUEST,
            NotFound { .. } => StatusCode::NOT_FOUND,
            TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Upstream { .. } | Auth { .. } | Network { .. } => StatusCode::BAD_GATEWAY,
            BreakerOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        use OriginError::*;
        match self {
            BadPath { .. } => "bad_path",
            NotFound { .. } => "source_not_found",
            TooLarge { .. } => "source_too_large",
            Timeout { .. } => "source_timeout",
            Upstream { .. } => "source_error",
            Auth { .. } => "source_auth",
            Network { .. } => "source_unreachable",
            BreakerOpen { .. } => "source_breaker_open",
            Io { .. } => "source_io",
        }
    }

    fn fault(&self) -> Fault {
        use OriginError::*;
        match self {
            BadPath { .. } | NotFound { .. } | TooLarge { .. } => Fault::Client,
            Timeout { .. } | Upstream { .. } | Auth { .. } | Network { .. } => Fault::Origin,
            BreakerOpen { .. } => Fault::Origin,
            Io { .. } => Fault::Server,
        }
    }

    fn retryable(&self) -> bool {
        use OriginError::*;
        match self {
            Timeout { .. } | Network { .. } | BreakerOpen { .. } => true,
            Upstream { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<u32> {
        match self {
            OriginError::BreakerOpen { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What one attempt on one source ended with (named into an [`OriginError`] by the caller).
#[derive(Debug)]
pub(crate) enum SourceError {
    NotFound,
    BadPath(&'static str),
    TooLarge(Option<u64>),
    Timeout(Duration),
    Upstream(u16),
    Auth(u16),
    Network(String),
    Io(String),
}

impl SourceError {
    /// Timeouts, connection errors, 5xx and 429 may clear up: retry, count against the
    /// breaker, fall through to the next source.
    fn retryable(&self) -> bool {
        match self {
            SourceError::Timeout(_) | SourceError::Network(_) => true,
            SourceError::Upstream(s) => *s == 429 || *s >= 500,
            _ => false,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            SourceError::NotFound => "not_found",
            SourceError::Timeout(_) => "timeout",
            SourceError::TooLarge(_) => "too_large",
            _ => "error",
        }
    }

    fn named(self, origin: &str, source: &str, limit: u64) -> OriginError {
        let (origin, source) = (origin.to_string(), source.to_string());
        match self {
            SourceError::NotFound => OriginError::NotFound { origin },
            SourceError::BadPath(reason) => OriginError::BadPath { reason },
            SourceError::TooLarge(size) => OriginError::TooLarge {
                origin,
                source,
                limit,
                size,
            },
            SourceError::Timeout(after) => OriginError::Timeout {
                origin,
                source,
                after,
            },
            SourceError::Upstream(status) => OriginError::Upstream {
                origin,
                source,
                status,
            },
            SourceError::Auth(status) => OriginError::Auth {
                origin,
                source,
                status,
            },
            SourceError::Network(detail) => OriginError::Network {
                origin,
                source,
                detail,
            },
            SourceError::Io(detail) => OriginError::Io {
                origin,
                source,
                detail,
            },
        }
    }
}

type MetaKey = (String, String, u64, String);

/// Long-lived origin state shared by every config revision: breakers, the source-metadata
/// cache and the HTTP client (with its connection pool).
pub struct OriginState {
    metrics: Arc<Metrics>,
    temp_dir: PathBuf,
    client: reqwest::Client,
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

    fn breaker(&self, origin: &str, source: &str) -> Arc<Breaker> {
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

    fn cached(&self, key: &MetaKey, ttl: Duration) -> Option<Option<SourceMeta>> {
        let map = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let (at, entry) = map.get(key)?;
        (at.elapsed() < ttl).then(|| entry.clone())
    }

    fn remember(&self, key: MetaKey, entry: Option<SourceMeta>, ttl: Duration) {
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

    fn count(&self, origin: &str, source: &str, outcome: &'static str) {
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

#[derive(Debug)]
enum Kind {
    Local(local::LocalSource),
    Http(http::HttpSource),
    S3(Arc<s3::S3Source>),
}

#[derive(Debug)]
struct CompiledSource {
    name: String,
    /// Hash of the source's config: cached metadata is only reused by an identical source.
    fingerprint: u64,
    kind: Kind,
    breaker: Arc<Breaker>,
}

#[derive(Debug)]
struct Rule {
    name: String,
    matcher: regex::Regex,
    sources: Vec<CompiledSource>,
}

/// The key of an object within one source.
enum Key {
    Local(String),
    Http(reqwest::Url),
    S3(String),
}

impl Key {
    fn as_string(&self) -> String {
        match self {
            Key::Local(p) => p.clone(),
            Key::Http(u) => u.to_string(),
            Key::S3(k) => k.clone(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Stat,
    Fetch,
    /// Like `Fetch`, but an S3 source may answer with a presigned URL instead of a file.
    Input,
    Open,
}

enum Done {
    Meta(SourceMeta),
    Fetched(Fetched),
    Opened(SourceMeta, Body),
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
    /// Compiles the origins of a (validated) config: matchers (linear-time engine with a
    /// size limit), templates, local roots (must exist) and auth files (read now, so a
    /// missing Secret fails the reload, not a request). Every error names its config path,
    /// e.g. `origins[0].sources[1].auth.tokenFile`, and never the content of a secret.
    pub fn compile(
        cfg: &DataPlaneConfig,
        state: Arc<OriginState>,
    ) -> Result<Origins, ValidationErrors> {
        let mut errs = Vec::new();
        let default_timeout = Duration::from_secs(cfg.limits.fetch_timeout_seconds.into());
        let mut rules = Vec::new();
        for (i, o) in cfg.origins.iter().enumerate() {
            let matcher = regex::RegexBuilder::new(&o.matcher)
                .size_limit(vr_crds::dataplane::MATCHER_SIZE_LIMIT)
                .dfa_size_limit(vr_crds::dataplane::MATCHER_SIZE_LIMIT)
                .build();
            let matcher = match matcher {
                Ok(m) => Some(m),
                Err(e) => {
                    errs.push(field_error(
                        format!("origins[{i}].matcher"),
                        format!("does not compile: {e}"),
                    ));
                    None
                }
            };
            let mut sources = Vec::new();
            for (j, s) in o.sources.iter().enumerate() {
                let kind = match s {
                    Source::Local(l) => local::LocalSource::compile(l).map(Kind::Local),
                    Source::Http(h) => {
                        http::HttpSource::compile(h, default_timeout).map(Kind::Http)
                    }
                    Source::S3(c) => {
                        // A rotated Secret drops the source's presigned URLs at once.
                        let presign = Arc::downgrade(&state.presign);
                        let (origin, source) = (o.name.clone(), c.name.clone());
                        let on_rotate: crate::s3::OnRotate = Arc::new(move |fp: &str| {
                            if let Some(p) = presign.upgrade() {
                                p.credentials(&origin, &source, fp);
                            }
                        });
                        s3::S3Source::compile(c, default_timeout, Some(on_rotate))
                    }
                    .map(|src| {
                        state.presign.credentials(
                            &o.name,
                            &c.name,
                            &src.conn.credentials_fingerprint,
                        );
                        Kind::S3(Arc::new(src))
                    }),
                };
                match kind {
                    Ok(kind) => sources.push(CompiledSource {
                        name: s.name().to_string(),
                        fingerprint: fingerprint(s),
                        kind,
                        breaker: state.breaker(&o.name, s.name()),
                    }),
                    Err((field, message)) => errs.push(field_error(
                        format!("origins[{i}].sources[{j}].{field}"),
                        message,
                    )),
                }
            }
            if let Some(matcher) = matcher {
                rules.push(Rule {
                    name: o.name.clone(),
                    matcher,
                    sources,
                });
            }
        }
        if !errs.is_empty() {
            return Err(ValidationErrors(errs));
        }
        Ok(Origins {
            rules,
            state,
            retry: RetryPolicy::from(&cfg.resilience),
            breaker_policy: BreakerPolicy::from(&cfg.resilience),
            max_input: cfg.limits.max_input_bytes,
            revalidate: Duration::from_secs(cfg.cache.source_revalidate_seconds.into()),
        })
    }

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
            Done::Meta(_) | Done::Opened(..) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    /// Streams the original without spooling (passthrough, serve-original fallback). No size
    /// limit applies: memory stays bounded by the stream.
    pub async fn open(&self, route: &Route) -> Result<(SourceMeta, Body), OriginError> {
        match self.run(route, Op::Open).await? {
            Done::Opened(meta, body) => Ok((meta, body)),
            Done::Meta(_) | Done::Fetched(_) => Err(OriginError::NotFound {
                origin: route.origin.clone(),
            }),
        }
    }

    fn rule(&self, route: &Route) -> Option<&Rule> {
        match self.rules.get(route.origin_index) {
            Some(r) if r.name == route.origin => Some(r),
            // A route from another revision: find its origin by name.
            _ => self.rules.iter().find(|r| r.name == route.origin),
        }
    }

    /// Tries the sources in order: on not-found and on retryable failure the next one,
    /// otherwise stop with the error.
    async fn run(&self, route: &Route, op: Op) -> Result<Done, OriginError> {
        let Some(rule) = self.rule(route) else {
            return Err(OriginError::NotFound {
                origin: route.origin.clone(),
            });
        };
        let mut first_failure: Option<OriginError> = None;
        for src in &rule.sources {
            let key = match &src.kind {
                Kind::Local(l) => l.key(&route.captures).map(Key::Local),
                Kind::Http(h) => h.key(&route.captures).map(Key::Http),
                Kind::S3(s) => s.key(&route.captures).map(Key::S3),
            }
            .map_err(|e| e.named(&rule.name, &src.name, self.max_input))?;
            let meta_key = (
                rule.name.clone(),
                src.name.clone(),
                src.fingerprint,
                key.as_string(),
            );
            // A source known not to have the object is skipped by every operation, so
            // `fetch` and `open` pick the same source `stat` reported.
            match self.state.cached(&meta_key, self.revalidate) {
                Some(Some(meta)) if op == Op::Stat => {
                    self.check_size(&meta)?;
                    return Ok(Done::Meta(meta));
                }
                Some(None) => continue,
                _ => {}
            }
            match self.try_source(rule, src, &key, op).await {
                Ok(Some(done)) => {
                    let meta = match &done {
                        Done::Meta(m) | Done::Opened(m, _) => m,
                        Done::Fetched(f) => &f.meta,
                    };
                    self.state
                        .remember(meta_key, Some(meta.clone()), self.revalidate);
                    if op == Op::Stat {
                        self.check_size(meta)?;
                    }
                    return Ok(done);
                }
                Ok(None) => self.state.remember(meta_key, None, self.revalidate),
                Err(e) if e.retryable() => {
                    first_failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_failure.unwrap_or(OriginError::NotFound {
            origin: rule.name.clone(),
        }))
    }

    fn check_size(&self, meta: &SourceMeta) -> Result<(), OriginError> {
        match meta.length {
            Some(len) if len > self.max_input => Err(OriginError::TooLarge {
                origin: meta.origin.clone(),
                source: meta.source.clone(),
                limit: self.max_input,
                size: Some(len),
            }),
            _ => Ok(()),
        }
    }

    /// Up to `attempts` attempts on one source, each admitted by its breaker, with full-jitter
    /// backoff between them. `Ok(None)`: the source does not have the object.
    async fn try_source(
        &self,
        rule: &Rule,
        src: &CompiledSource,
        key: &Key,
        op: Op,
    ) -> Result<Option<Done>, OriginError> {
        let mut last: Option<OriginError> = None;
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                let delay = self.retry.delay(attempt - 1, &mut rand::rng());
                tokio::time::sleep(delay).await;
            }
            let permit = match src.breaker.acquire(Instant::now()) {
                Admission::Allowed(p) => p,
                Admission::Refused { retry_after } => {
                    self.state.count(&rule.name, &src.name, "breaker_open");
                    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                    return Err(last.unwrap_or(OriginError::BreakerOpen {
                        origin: rule.name.clone(),
                        source: src.name.clone(),
                        retry_after: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
                    }));
                }
            };
            let result = self.attempt(rule, src, key, op).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            };
            self.state.count(&rule.name, &src.name, outcome);
            match result {
                Ok(done) => {
                    permit.success();
                    return Ok(Some(done));
                }
                Err(SourceError::NotFound) => {
                    permit.success();
                    return Ok(None);
                }
                Err(e) if e.retryable() => {
                    permit.failure(Instant::now(), &self.breaker_policy);
                    last = Some(e.named(&rule.name, &src.name, self.max_input));
                }
                Err(e) => {
                    permit.success();
                    return Err(e.named(&rule.name, &src.name, self.max_input));
                }
            }
        }
        Err(last.unwrap_or(OriginError::NotFound {
            origin: rule.name.clone(),
        }))
    }

    /// One attempt on one source.
    async fn attempt(
        &self,
        rule: &Rule,
        src: &CompiledSource,
        key: &Key,
        op: Op,
    ) -> Result<Done, SourceError> {
        let (origin, source) = (rule.name.as_str(), src.name.as_str());
        let client = &self.state.client;
        match (&src.kind, key) {
            (Kind::Local(l), Key::Local(k)) => match op {
                Op::Stat => Ok(Done::Meta(l.find(k).await?.meta(origin, source, k))),
                Op::Fetch | Op::Input => {
                    let found = l.find(k).await?;
                    if found.len > self.max_input {
                        return Err(SourceError::TooLarge(Some(found.len)));
                    }
                    Ok(Done::Fetched(Fetched {
                        meta: found.meta(origin, source, k),
                        path: found.path,
                        url: None,
                        _spool: None,
                    }))
                }
                Op::Open => {
                    let (found, body) = l.open(k).await?;
                    Ok(Done::Opened(found.meta(origin, source, k), body))
                }
            },
            (Kind::Http(h), Key::Http(url)) => {
                let k = url.as_str();
                match op {
                    Op::Stat => Ok(Done::Meta(
                        h.head(client, url).await?.meta(origin, source, k),
                    )),
                    Op::Fetch | Op::Input => {
                        let head = h.head(client, url).await?;
                        if let Some(len) = head.length.filter(|l| *l > self.max_input) {
                            return Err(SourceError::TooLarge(Some(len)));
                        }
                        let (meta, spool) = h
                            .spool(client, url, self.max_input, &self.state.temp_dir)
                            .await?;
                        Ok(Done::Fetched(Fetched {
                            meta: meta.meta(origin, source, k),
                            path: spool.to_path_buf(),
                            url: None,
                            _spool: Some(spool),
                        }))
                    }
                    Op::Open => {
                        let (meta, body) = h.open(client, url).await?;
                        Ok(Done::Opened(meta.meta(origin, source, k), body))
                    }
                }
            }
            (Kind::S3(s), Key::S3(k)) => {
                let shown = || s.display_key(k);
                match op {
                    Op::Stat => Ok(Done::Meta(s.head(k).await?.meta(origin, source, shown()))),
                    Op::Input if s.presign.transform_input => {
                        let head = s.head(k).await?;
                        if let Some(len) = head.length.filter(|l| *l > self.max_input) {
                            return Err(SourceError::TooLarge(Some(len)));
                        }
                        let url = self.presigned(origin, source, s, k).await?;
                        Ok(Done::Fetched(Fetched {
                            meta: head.meta(origin, source, shown()),
                            path: PathBuf::new(),
                            url: Some(url),
                            _spool: None,
                        }))
                    }
                    Op::Fetch | Op::Input => {
                        let (meta, spool) =
                            s.spool(k, self.max_input, &self.state.temp_dir).await?;
                        Ok(Done::Fetched(Fetched {
                            meta: meta.meta(origin, source, shown()),
                            path: spool.to_path_buf(),
                            url: None,
                            _spool: Some(spool),
                        }))
                    }
                    Op::Open => {
                        let (meta, body) = s.open(k).await?;
                        Ok(Done::Opened(meta.meta(origin, source, shown()), body))
                    }
                }
            }
            // A key is always built by its own source's kind.
            _ => Err(SourceError::Io("source kind mismatch".into())),
        }
    }
}

impl Origins {
    /// A presigned GET URL for `key` of an S3 source, from the process's presign cache.
    async fn presigned(
        &self,
        origin: &str,
        source: &str,
        s: &Arc<s3::S3Source>,
        key: &str,
    ) -> Result<Arc<str>, SourceError> {
        let life = presign::Lifetime {
            lifetime: Duration::from_secs(s.presign.lifetime_seconds.into()),
            margin: Duration::from_secs(s.presign.safety_margin_seconds.into()),
        };
        let (src, k) = (s.clone(), key.to_string());
        let sign: presign::Signer = Arc::new(move || {
            let (src, k) = (src.clone(), k.clone());
            Box::pin(async move { src.presign_get(&k, SystemTime::now()).await })
        });
        self.state
            .presign
            .url((origin, source, key, "GET"), life, sign)
            .await
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

fn field_error(path: String, message: String) -> vr_crds::dataplane::FieldError {
    vr_crds::dataplane::FieldError { path, message }
}

fn fingerprint(s: &Source) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{s:?}").hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
