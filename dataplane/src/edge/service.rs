//! The request path, one stage after another:
//!
//! ```text
//! method → signature → route (origin) → params (variant) → source validator → cache key
//!        → cache lookup → single-flight → [leader: admission → fetch → probe → ffmpeg → spool]
//!        → stream to every reader → store → respond (ranges, conditionals)
//! ```
//!
//! Why this order: the signature is checked before anything costs work; params are resolved
//! before the source is touched so bad requests never reach an origin; the source validator is
//! part of the cache key so a changed source never serves a stale variant; single-flight sits
//! *before* admission so followers never take a transform slot.

use crate::control::app::{App, Done, Failure, Role};
use crate::body::{self, Body};
use crate::cache::{CacheKey, KeyParts, Meta, Payload, Stored};
use crate::error::{self, Classify, Fault};
use crate::cache::flight::{Joined, NextError, Producer, Start};
use crate::metrics::{ModeLabels, RequestLabels, RevisionLabels, TransformLabels};
use crate::origin::{Route, SourceMeta};
use crate::request::params::{self, Resolved};
use crate::control::runtime::Runtime;
use crate::serve;
use crate::edge::telemetry::{self, Timing, TraceContext};
use crate::transcode::{self, ProbeLimits};
use crate::request::variant::{Transform, Variant};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use vr_crds::dataplane::{OversizePolicy, TransformErrorPolicy};

/// Errors of the request edge itself (not of a stage).
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("method {0} is not allowed; use GET or HEAD")]
    Method(String),
    #[error("no origin matches path {0:?}")]
    NoOrigin(String),
    #[error("the data plane has no config loaded yet")]
    NotReady,
    #[error("debug views are not allowed from this address")]
    DebugForbidden,
    #[error("the transform was abandoned")]
    Abandoned,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for EdgeError {
    fn status(&self) -> StatusCode {
        match self {
            EdgeError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            EdgeError::NoOrigin(_) => StatusCode::NOT_FOUND,
            EdgeError::NotReady | EdgeError::Abandoned => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::DebugForbidden => StatusCode::FORBIDDEN,
            EdgeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            EdgeError::Method(_) => "method_not_allowed",
            EdgeError::NoOrigin(_) => "no_origin",
            EdgeError::NotReady => "not_ready",
            EdgeError::DebugForbidden => "debug_forbidden",
            EdgeError::Abandoned => "abandoned",
            EdgeError::Internal(_) => "internal",
        }
    }
    fn fault(&self) -> Fault {
        match self {
            EdgeError::Method(_) | EdgeError::NoOrigin(_) | EdgeError::DebugForbidden => {
                Fault::Client
            }
            _ => Fault::Server,
        }
    }
    fn retryable(&self) -> bool {
        matches!(self, EdgeError::NotReady | EdgeError::Abandoned)
    }
    fn retry_after(&self) -> Option<u32> {
        self.retryable().then_some(1)
    }
}

/// The data-plane request handler.
pub struct DataPlane(pub Arc<App>);

impl crate::edge::server::Handler for DataPlane {
    async fn handle(&self, req: Request<()>, peer: SocketAddr) -> Response<Body> {
        handle(&self.0, req, peer).await
    }
}

/// How the response was produced, for `X-Cache-Status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheStatus {
    Hit,
    Miss,
    Bypass,
    Collapsed,
    /// Not a cacheable variant (original, errors).
    Pass,
}

impl CacheStatus {
    fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Collapsed => "COLLAPSED",
            CacheStatus::Pass => "PASS",
        }
    }
}

/// Per-request context carried through the stages.
struct Ctx {
    request_id: String,
    trace: TraceContext,
    timing: Timing,
    cache: CacheStatus,
    warnings: Option<HeaderValue>,
}

/// Answers one request; never panics on input, never blocks on config.
pub async fn handle(app: &Arc<App>, req: Request<()>, peer: SocketAddr) -> Response<Body> {
    let mut ctx = Ctx {
        request_id: telemetry::request_id(req.headers()),
        trace: TraceContext::from_headers(req.headers()),
        timing: Timing::default(),
        cache: CacheStatus::Pass,
        warnings: None,
    };
    let live = app.live();
    let picked = live
        .as_ref()
        .map(|live| live.route(req.uri().path(), req.uri().query().unwrap_or("")));
    let (mut resp, served_by) = match (&live, picked) {
        (Some(live), Some((rt, role))) => {
            let resp = run(app, &rt, &req, peer, &mut ctx).await;
            if role == Role::Canary && canary_failed(resp.status()) {
                // The canary's failure is counted against it (the analysis sees it), and the
                // client gets the stable revision's answer instead.
                record(app, &ctx, rt.revision(), Role::Canary, resp.status());
                app.metrics.canary_fallbacks.inc();
                drop(resp);
                // The stable answer is timed on its own (its latency feeds the analysis).
                ctx.cache = CacheStatus::Pass;
                ctx.warnings = None;
                ctx.timing = Timing::default();
                let stable = live.stable.clone();
                let mut resp = run(app, &stable, &req, peer, &mut ctx).await;
                if let Ok(v) = HeaderValue::from_str(rt.revision()) {
                    resp.headers_mut()
                        .insert(HeaderName::from_static("x-canary-fallback"), v);
                }
                (resp, Some((stable, Role::Stable)))
            } else {
                (resp, Some((rt, role)))
            }
        }
        _ => (error::response(&EdgeError::NotReady), None),
    };
    let (revision, role) = match &served_by {
        Some((rt, role)) => (rt.revision().to_owned(), *role),
        None => ("none".to_owned(), Role::Stable),
    };
    finish_headers(&mut resp, &ctx, &revision);
    let status = resp.status();
    record(app, &ctx, &revision, role, status);
    tracing::info!(
        request_id = %ctx.request_id,
        trace_id = %ctx.trace.trace_id,
        method = %req.method(),
        path = %req.uri().path(),
        status = status.as_u16(),
        cache = ctx.cache.as_str(),
        ms = ctx.timing.elapsed_secs() * 1000.0,
        "request"
    );
    resp
}

/// Runs the pipeline on one revision and turns its error into a response.
async fn run(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    req: &Request<()>,
    peer: SocketAddr,
    ctx: &mut Ctx,
) -> Response<Body> {
    // Boxed: the pipeline's future is large, and a request may run it twice (canary fallback).
    match Box::pin(pipeline(app, rt, req, peer, ctx)).await {
        Ok(r) => r,
        Err(e) => error_response(rt, e.as_ref()),
    }
}

/// Whether a canary's answer is a failure the stable revision should answer instead: any
/// error except those that retrying cannot change (an unsatisfiable range, load shedding) or
/// that would double a wait (a timeout).
fn canary_failed(status: StatusCode) -> bool {
    (status.is_client_error() || status.is_server_error())
        && status != StatusCode::RANGE_NOT_SATISFIABLE
        && status != StatusCode::SERVICE_UNAVAILABLE
        && status != StatusCode::TOO_MANY_REQUESTS
        // A timeout would make the client wait twice, and load a slow origin twice.
        && status != StatusCode::GATEWAY_TIMEOUT
}

/// Counts one answer of `revision` in the request metrics.
fn record(app: &App, ctx: &Ctx, revision: &str, role: Role, status: StatusCode) {
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            status_class: status_class(status),
            cache: ctx.cache.as_str(),
            revision: revision.to_owned(),
            role: role.as_str(),
        })
        .inc();
    app.metrics
        .request_duration
        .get_or_create(&RevisionLabels {
            revision: revision.to_owned(),
            role: role.as_str(),
            cache: ctx.cache.as_str(),
        })
        .observe(ctx.timing.elapsed_secs());
}

type StageError = Box<dyn Classify + Send + Sync>;

fn boxed<E: Classify + Send + Sync + 'static>(e: E) -> StageError {
    Box::new(e)
}

async fn pipeline(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    req: &Request<()>,
    peer: SocketAddr,
    ctx: &mut Ctx,
) -> Result<Response<Body>, StageError> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return Err(boxed(EdgeError::Method(method.to_string())));
    }
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");

    if let Some(signer) = &rt.signer {
        if rt.config.signing.required {
            signer.verify(path, query, unix_now()).map_err(boxed)?;
        }
    }

    let route = rt
        .origins
        .try_route(path)
        .map_err(boxed_origin)?
        .ok_or_else(|| boxed(EdgeError::NoOrigin(path.to_owned())))?;

    // Non-video extensions are served untransformed (images, captions…).
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !rt.video_extensions.contains(&ext) {
        ctx.timing.mark("route");
        return serve_original(rt, req, &route, ctx, None, &[]).await;
    }

    let resolved = params::resolve(query, req.headers(), &rt.params).map_err(boxed)?;
    ctx.timing.mark("params");
    // Lenient mode: whatever the answer turns out to be (variant, original, fallback), the
    // client learns which parameters were dropped.
    ctx.warnings = params::warnings_header(&resolved.warnings);
    if resolved.debug && !rt.debug_allowed(peer.ip()) {
        return Err(boxed(EdgeError::DebugForbidden));
    }
    let variant = match &resolved.transform {
        Transform::Original => {
            return serve_original(rt, req, &route, ctx, None, &resolved.vary).await;
        }
        Transform::Variant(v) => v.clone(),
    };

    let source = match rt.origins.stat(&route).await {
        Ok(s) => s,
        Err(e) if oversize_fallback(rt, &e) => {
            return serve_original(rt, req, &route, ctx, Some("oversize"), &resolved.vary).await;
        }
        Err(e) => return Err(boxed_origin(e)),
    };
    ctx.timing.mark("source");
    let canonical = variant.canonical();
    let key = CacheKey::derive(&KeyParts {
        origin: &source.origin,
        source: &source.source,
        source_key: &source.key,
        validator: &source.validator,
        variant: &canonical,
    });
    let tags = cache_tags(rt, &route, &source, &resolved, &variant);
    let ttl = origin_ttl(rt, &route).ok;
    let extra = variant_headers(&resolved, &variant, &tags, ttl);

    if query_has_debug_view(query) {
        return Ok(debug_view(rt, &route, &source, &resolved, &variant, &key));
    }

    let skip_read = resolved.bypass || resolved.debug;
    if skip_read {
        ctx.cache = CacheStatus::Bypass;
    } else if let Some(hit) = app.cache.get(&key, SystemTime::now()).await {
        ctx.cache = CacheStatus::Hit;
        ctx.timing.mark("cache");
        let mut extra = extra;
        if let Ok(v) = HeaderValue::from_str(hit.layer) {
            extra.insert(HeaderName::from_static("x-cache-layer"), v);
        }
        return Ok(
            serve::respond(req.method(), req.headers(), &hit.meta, hit.payload, extra).await,
        );
    }
    ctx.timing.mark("cache");

    let mut reader = match app.flights.join(&key) {
        Joined::Leader(producer, reader) => {
            if ctx.cache != CacheStatus::Bypass {
                ctx.cache = CacheStatus::Miss;
            }
            let job = Production {
                app: app.clone(),
                rt: rt.clone(),
                route: route.clone(),
                variant: variant.clone(),
                key,
                tags: tags.clone(),
                ttl,
                store: !resolved.debug,
                request_id: ctx.request_id.clone(),
            };
            tokio::spawn(job.run(producer));
            reader
        }
        Joined::Follower(reader) => {
            app.metrics.collapsed.inc();
            ctx.cache = CacheStatus::Collapsed;
            reader
        }
    };

    // A HEAD or a range needs the finished object (its length); wait for it.
    let needs_whole = req.method() == Method::HEAD || req.headers().contains_key(header::RANGE);
    if needs_whole {
        return match reader.outcome().await {
            Ok(done) => {
                ctx.timing.mark("transform");
                serve_finished(req, &reader, &done, extra).await
            }
            Err(f) => failure_response(rt, req, &route, ctx, f, &resolved.vary).await,
        };
    }

    match reader.start().await {
        Start::Streaming { content_type } => {
            ctx.timing.mark("first-byte");
            let mut resp = Response::new(streaming_body(reader));
            let h = resp.headers_mut();
            *h = extra;
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::ETAG, etag_for(&key));
            Ok(resp)
        }
        Start::Finished(Ok(done)) => serve_finished(req, &reader, &done, extra).await,
        Start::Finished(Err(f)) => failure_response(rt, req, &route, ctx, f, &resolved.vary).await,
    }
}

/// Serves a variant whose production has finished from its spool (ranges and conditionals
/// included), whether or not the cache kept it.
async fn serve_finished(
    req: &Request<()>,
    reader: &crate::cache::flight::Reader<Arc<Done>, Failure>,
    done: &Done,
    extra: HeaderMap,
) -> Result<Response<Body>, StageError> {
    let (file, len) = reader
        .spool()
        .ok_or_else(|| boxed(EdgeError::Internal("finished variant has no spool".into())))?;
    Ok(serve::respond(
        req.method(),
        req.headers(),
        &done.meta,
        Payload::File { file, len },
        extra,
    )
    .await)
}

fn boxed_origin(e: crate::origin::OriginError) -> StageError {
    Box::new(e)
}

async fn failure_response(
    rt: &Arc<Runtime>,
    req: &Request<()>,
    route: &Route,
    ctx: &mut Ctx,
    f: Failure,
    vary: &[&'static str],
) -> Result<Response<Body>, StageError> {
    match f {
        Failure::Error(e) => Err(Box::new(SharedError(e))),
        Failure::ServeOriginal(reason) => {
            serve_original(rt, req, route, ctx, Some(reason), vary).await
        }
    }
}

/// Serves the source untransformed, with ranges and conditionals; never stored as a variant.
async fn serve_original(
    rt: &Arc<Runtime>,
    req: &Request<()>,
    route: &Route,
    ctx: &mut Ctx,
    fallback: Option<&'static str>,
    vary: &[&'static str],
) -> Result<Response<Body>, StageError> {
    ctx.cache = CacheStatus::Pass;
    if let Some(location) = rt.origins.original_redirect(route).await {
        return Ok(redirect_to_original(&location));
    }
    let fetched = match rt.origins.fetch(route).await {
        Ok(f) => f,
        // Too large to spool: stream it through instead (the configured oversize policy).
        Err(e) if oversize_fallback(rt, &e) => return stream_original(rt, req, route, vary).await,
        Err(e) => return Err(boxed_origin(e)),
    };
    ctx.timing.mark("source");
    let file = std::fs::File::open(&fetched.path)
        .map_err(|e| boxed(EdgeError::Internal(format!("cannot open source: {e}"))))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let ttl = origin_ttl(rt, route).ok;
    let now = SystemTime::now();
    let meta = Meta {
        content_type: fetched
            .meta
            .content_type
            .clone()
            .unwrap_or_else(|| content_type_for_path(&route.path).to_owned()),
        length: len,
        status: 200,
        created: now,
        expires: now + Duration::from_secs(ttl.into()),
        tags: Vec::new(),
        etag: format!("\"o-{}\"", short_hash(&fetched.meta.validator)),
        last_modified: fetched.meta.last_modified.unwrap_or(now),
        variant: "original".into(),
        cache_control: None,
    };
    let mut extra = HeaderMap::new();
    match fallback {
        Some(reason) => {
            extra.insert("x-fallback-applied", HeaderValue::from_static(reason));
            // A fallback is not the variant: downstream caches must not keep it as such.
            extra.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        None => {
            extra.insert(header::CACHE_CONTROL, cache_control(ttl));
        }
    }
    if !vary.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&vary.join(", ")) {
            extra.insert(header::VARY, v);
        }
    }
    let payload = Payload::File {
        file: Arc::new(file),
        len,
    };
    let resp = serve::respond(req.method(), req.headers(), &meta, payload, extra).await;
    // The spooled copy (if any) can go: the open handle keeps the bytes for the response.
    drop(fetched);
    Ok(resp)
}

/// A 302 to a presigned URL of the original (S3 sources with `presign.redirectOriginals`).
/// `no-store`: the URL expires, so neither browsers nor CDNs may keep the redirect.
fn redirect_to_original(location: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether `e` is a source over `limits.maxInputBytes` that the config says to serve as is.
fn oversize_fallback(rt: &Runtime, e: &crate::origin::OriginError) -> bool {
    matches!(e, crate::origin::OriginError::TooLarge { .. })
        && rt.config.limits.oversize == OversizePolicy::ServeOriginal
}

/// Streams an original over `limits.maxInputBytes` straight from its source, marked
/// `X-Fallback-Applied: oversize` and `no-store`. It is never spooled (so the limit still bounds
/// disk use) and therefore served whole: no ranges, `Content-Length` only when the source gave one.
async fn stream_original(
    rt: &Arc<Runtime>,
    req: &Request<()>,
    route: &Route,
    vary: &[&'static str],
) -> Result<Response<Body>, StageError> {
    let (meta, stream) = rt.origins.open(route).await.map_err(boxed_origin)?;
    let head = req.method() == Method::HEAD;
    let mut resp = Response::new(if head { body::empty() } else { stream });
    let h = resp.headers_mut();
    let content_type = meta
        .content_type
        .clone()
        .unwrap_or_else(|| content_type_for_path(&route.path).to_owned());
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(len) = meta.length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert("x-fallback-applied", HeaderValue::from_static("oversize"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    if !vary.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&vary.join(", ")) {
            h.insert(header::VARY, v);
        }
    }
    Ok(resp)
}

/// Everything the leader's background task needs; runs even if the leader's client leaves, as
/// long as any reader remains.
struct Production {
    app: Arc<App>,
    rt: Arc<Runtime>,
    route: Route,
    variant: Variant,
    key: CacheKey,
    tags: Vec<String>,
    ttl: u32,
    store: bool,
    request_id: String,
}

impl Production {
    async fn run(self, producer: Producer<Arc<Done>, Failure>) {
        let mode = self.variant.mode.as_str();
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            r = self.produce(&producer) => r,
            () = producer.abandoned() => Err(Outcome::Abandoned),
        };
        let label = match &outcome {
            Ok(_) => "ok",
            Err(Outcome::Abandoned) => "abandoned",
            Err(Outcome::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.app
            .metrics
            .transforms
            .get_or_create(&TransformLabels {
                mode,
                outcome: label,
            })
            .inc();
        self.app
            .metrics
            .transform_duration
            .get_or_create(&ModeLabels { mode })
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(done) => {
                producer.finish(Ok(done));
            }
            Err(o) => {
                let failure = o.into_failure(&self.rt, &self.route);
                if let Failure::Error(e) = &failure {
                    tracing::warn!(request_id = %self.request_id, key = %self.key.hex(), code = e.code(), error = %e, "transform failed");
                }
                producer.finish(Err(failure));
            }
        }
        self.app.flights.remove(&self.key, &producer);
    }

    async fn produce(&self, producer: &Producer<Arc<Done>, Failure>) -> Result<Arc<Done>, Outcome> {
        let app = &self.app;
        let cfg = &self.rt.config;
        let _slot = app
            .admission
            .acquire()
            .await
            .map_err(|e| Outcome::Stage(boxed(e)))?;
        // S3 sources may hand ffmpeg a presigned URL (byte ranges) instead of a download.
        let fetched = self
            .rt
            .origins
            .input(&self.route)
            .await
            .map_err(Outcome::Origin)?;
        let limits = ProbeLimits {
            max_pixels: cfg.limits.max_pixels,
            max_duration_ms: u64::from(cfg.limits.max_duration_seconds) * 1000,
            max_streams: cfg.limits.max_streams,
            probe_size_bytes: cfg.limits.probe_size_bytes,
            timeout: Duration::from_secs(30),
        };
        let info = app
            .transcoder
            .probe_input(fetched.input(), &limits)
            .await
            .map_err(Outcome::Transcode)?;
        let plan = transcode::plan(&self.variant, &info, cfg.limits.ffmpeg_threads)
            .map_err(Outcome::Transcode)?;
        let deadline = Duration::from_secs(cfg.limits.transform_timeout_seconds.into());
        let mut job = app
            .transcoder
            .spawn_input(fetched.input(), &plan, deadline)
            .map_err(Outcome::Transcode)?;

        let spool = tempfile::Builder::new()
            .prefix("out-")
            .tempfile_in(&app.work_dir)
            .map_err(|e| {
                Outcome::Stage(boxed(EdgeError::Internal(format!(
                    "cannot create spool: {e}"
                ))))
            })?;
        let reader_handle = spool.reopen().map_err(|e| {
            Outcome::Stage(boxed(EdgeError::Internal(format!(
                "cannot reopen spool: {e}"
            ))))
        })?;
        producer.start(Arc::new(reader_handle), plan.content_type().to_owned());
        let mut writer = spool
            .as_file()
            .try_clone()
            .map_err(|e| Outcome::Stage(boxed(EdgeError::Internal(e.to_string()))))?;
        let mut total: u64 = 0;
        while let Some(chunk) = job.next_chunk().await {
            let chunk = chunk.map_err(Outcome::from_transcode)?;
            // Page-cache writes of ≤ a pipe buffer are short; a blocking task would cost more.
            writer.write_all(&chunk).map_err(|e| {
                Outcome::Stage(boxed(EdgeError::Internal(format!(
                    "spool write failed: {e}"
                ))))
            })?;
            total += chunk.len() as u64;
            producer.advance(chunk.len() as u64);
        }
        drop(fetched);
        let now = SystemTime::now();
        let meta = Meta {
            content_type: plan.content_type().to_owned(),
            length: total,
            status: 200,
            created: now,
            expires: now + Duration::from_secs(self.ttl.into()),
            tags: self.tags.clone(),
            etag: etag_for(&self.key).to_str().unwrap_or_default().to_owned(),
            last_modified: now,
            variant: self.variant.canonical(),
            cache_control: None,
        };
        if self.store {
            app.cache
                .put(&self.key, &meta, &Stored::File(spool.path().to_path_buf()))
                .await;
        }
        // `spool` is dropped (unlinked) here; readers keep their open handle.
        Ok(Arc::new(Done { meta }))
    }
}

/// How a production ended when it produced no variant.
enum Outcome {
    Abandoned,
    Timeout(transcode::TranscodeError),
    Origin(crate::origin::OriginError),
    Transcode(transcode::TranscodeError),
    Stage(StageError),
}

impl Outcome {
    fn from_transcode(e: transcode::TranscodeError) -> Outcome {
        if e.code() == "transform_timeout" {
            Outcome::Timeout(e)
        } else {
            Outcome::Transcode(e)
        }
    }

    /// Applies the config's fallback policies.
    fn into_failure(self, rt: &Runtime, route: &Route) -> Failure {
        let origin_policy = rt
            .origin_settings
            .get(&route.origin)
            .map(|o| o.on_transform_error)
            .unwrap_or_default();
        match self {
            Outcome::Abandoned => Failure::Error(Arc::new(EdgeError::Abandoned)),
            Outcome::Origin(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE
                    && rt.config.limits.oversize == OversizePolicy::ServeOriginal
                {
                    Failure::ServeOriginal("oversize")
                } else {
                    Failure::Error(Arc::new(e))
                }
            }
            Outcome::Transcode(e) | Outcome::Timeout(e) => {
                // Mistakes in the request (e.g. `time` past the end) are answered, not hidden.
                if origin_policy == TransformErrorPolicy::ServeOriginal
                    && e.status() != StatusCode::BAD_REQUEST
                {
                    return Failure::ServeOriginal("transform-error");
                }
                Failure::Error(Arc::new(e))
            }
            Outcome::Stage(e) => Failure::Error(Arc::from(e)),
        }
    }
}

/// An error shared by every reader of a flight.
#[derive(Debug)]
struct SharedError(Arc<dyn Classify + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for SharedError {}
impl Classify for SharedError {
    fn status(&self) -> StatusCode {
        self.0.status()
    }
    fn code(&self) -> &'static str {
        self.0.code()
    }
    fn fault(&self) -> Fault {
        self.0.fault()
    }
    fn retryable(&self) -> bool {
        self.0.retryable()
    }
    fn retry_after(&self) -> Option<u32> {
        self.0.retry_after()
    }
    fn details(&self) -> Option<serde_json::Value> {
        self.0.details()
    }
}

/// The body of a response streamed while the variant is produced. A failure mid-stream ends
/// the body with an error, so the client sees a truncated transfer, never a "complete" file.
fn streaming_body(reader: crate::cache::flight::Reader<Arc<Done>, Failure>) -> Body {
    let s = futures_util::stream::unfold(Some(reader), |state| async move {
        let mut r = state?;
        match r.next().await? {
            Ok(bytes) => Some((Ok(bytes), Some(r))),
            Err(NextError::Failed(f)) => Some((
                Err(std::io::Error::other(format!("transform failed: {f:?}"))),
                None,
            )),
            Err(NextError::Io(m)) => Some((Err(std::io::Error::other(m)), None)),
        }
    });
    body::stream(s)
}

fn etag_for(key: &CacheKey) -> HeaderValue {
    let hex = key.hex();
    HeaderValue::from_str(&format!("\"v-{}\"", &hex[..32.min(hex.len())]))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v\""))
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..12])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn origin_ttl(rt: &Runtime, route: &Route) -> vr_crds::dataplane::TtlByStatus {
    rt.origin_settings
        .get(&route.origin)
        .map(|o| o.ttl)
        .unwrap_or(rt.config.cache.ttl)
}

fn cache_control(ttl: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={ttl}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

/// Tags: `<prefix>origin-<origin>`, `<prefix><source path>`, `<prefix>derivative-<name>`,
/// `<prefix>format-<format>`, `<prefix>mode-<mode>`, and the origin's own tags.
fn cache_tags(
    rt: &Runtime,
    route: &Route,
    source: &SourceMeta,
    resolved: &Resolved,
    variant: &Variant,
) -> Vec<String> {
    let p = &rt.config.cache.tag_prefix;
    let mut tags = vec![
        format!("{p}origin-{}", route.origin),
        source_tag(p, &route.origin, &source.key),
        format!("{p}format-{}", variant.format),
        format!("{p}mode-{}", variant.mode),
    ];
    if let Some(d) = &resolved.derivative {
        tags.push(format!("{p}derivative-{d}"));
    }
    if let Some(o) = rt.origin_settings.get(&route.origin) {
        tags.extend(o.cache_tags.iter().cloned());
    }
    tags
}

/// The tag naming every variant of one source: `<prefix><origin>-<key, sanitized>`, or a hash
/// when the key is long.
pub fn source_tag(prefix: &str, origin: &str, key: &str) -> String {
    let clean: String = key
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let tag = format!("{prefix}{origin}-{clean}");
    if tag.len() <= 128 {
        tag
    } else {
        format!("{prefix}{origin}-h{}", short_hash(key))
    }
}

fn variant_headers(resolved: &Resolved, variant: &Variant, tags: &[String], ttl: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, cache_control(ttl));
    if let Ok(v) = HeaderValue::from_str(&tags.join(",")) {
        h.insert(HeaderName::from_static("cache-tag"), v);
    }
    if !resolved.vary.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&resolved.vary.join(", ")) {
            h.insert(header::VARY, v);
        }
    }
    if let Some(name) = &resolved.filename {
        let name = if name.contains('.') {
            name.clone()
        } else {
            format!("{name}.{}", variant.format.extension())
        };
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    if let Some(d) = &resolved.derivative {
        if let Ok(v) = HeaderValue::from_str(d) {
            h.insert(HeaderName::from_static("x-derivative"), v);
        }
    }
    let hints = &resolved.hints;
    for (name, value) in [
        ("x-playback-loop", hints.loop_.map(|b| b.to_string())),
        ("x-playback-autoplay", hints.autoplay.map(|b| b.to_string())),
        ("x-playback-muted", hints.muted.map(|b| b.to_string())),
        (
            "x-playback-preload",
            hints.preload.map(|p| p.as_str().to_owned()),
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    h
}

fn query_has_debug_view(query: &str) -> bool {
    query.split('&').any(|p| p == "debug=view")
}

fn debug_view(
    rt: &Runtime,
    route: &Route,
    source: &SourceMeta,
    resolved: &Resolved,
    variant: &Variant,
    key: &CacheKey,
) -> Response<Body> {
    let v = serde_json::json!({
        "revision": rt.revision(),
        "origin": route.origin,
        "source": { "name": source.source, "key": source.key, "validator": source.validator, "length": source.length },
        "derivative": resolved.derivative,
        "variant": variant.canonical(),
        "cacheKey": key.hex(),
        "vary": resolved.vary,
        "warnings": resolved.warnings,
    });
    let mut resp = Response::new(body::json(&v));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error_response(rt: &Runtime, e: &(dyn Classify + Send + Sync)) -> Response<Body> {
    let mut resp = error::response(e);
    let status = resp.status();
    // Answers to mistakes may be cached briefly downstream; overload answers never.
    if !e.retryable() && status.as_u16() >= 400 {
        let ttl = rt.config.cache.ttl.for_status(status.as_u16());
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, cache_control(ttl));
    }
    resp
}

fn finish_headers(resp: &mut Response<Body>, ctx: &Ctx, revision: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    h.insert(HeaderName::from_static("traceparent"), ctx.trace.header());
    if let Ok(v) = HeaderValue::from_str(revision) {
        h.insert(HeaderName::from_static("x-config-revision"), v);
    }
    h.insert(
        HeaderName::from_static("x-cache-status"),
        HeaderValue::from_static(ctx.cache.as_str()),
    );
    h.insert(
        HeaderName::from_static("server-timing"),
        ctx.timing.header(),
    );
    if let Some(w) = &ctx.warnings {
        h.insert(HeaderName::from_static("x-param-warnings"), w.clone());
    }
    h.insert(header::SERVER, HeaderValue::from_static("video-resizer"));
}

fn content_type_for_path(path: &str) -> &'static str {
    match path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("mkv") => "video/x-matroska",
        Some("m4a") => "audio/mp4",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("vtt") => "text/vtt",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
