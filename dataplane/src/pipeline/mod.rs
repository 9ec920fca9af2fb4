//! The request path on one config revision, one stage after another:
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
//!
//! * this module — the stages up to the cache lookup, and the one place a stage's error
//!   becomes this revision's answer ([`run`]);
//! * `flight` — joining the single-flight as leader or follower and answering from it;
//! * `produce` — the leader's production task; `fallback` — what a failed production ends as;
//! * `originals` — the source served untransformed; `debug` — the debug view;
//! * [`headers`] — cache tags and the headers of a variant's answer;
//! * [`error`] — the pipeline's own errors.

mod debug;
pub mod error;
mod fallback;
mod flight;
pub mod headers;
mod originals;
mod produce;

use crate::body::Body;
use crate::cache::{CacheKey, KeyParts};
use crate::control::app::App;
use crate::control::runtime::Runtime;
use crate::error::Classify;
use crate::origin::Route;
use crate::request::params::{self, Resolved};
use crate::request::variant::{Transform, Variant};
use crate::serve;
use crate::telemetry::{Timing, TraceContext};
use error::{boxed, boxed_origin, RequestError, StageError};
use fallback::oversize_fallback;
use headers::{cache_control, cache_tags, origin_ttl, variant_headers};
use http::{header, HeaderName, HeaderValue, Method, Request, Response};
use originals::serve_original;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use vr_crds::contract::headers as hdr;

/// How the response was produced, for `X-Cache-Status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
    Collapsed,
    /// Not a cacheable variant (original, errors).
    Pass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
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
pub struct Ctx {
    pub request_id: String,
    pub trace: TraceContext,
    pub timing: Timing,
    pub cache: CacheStatus,
    pub warnings: Option<HeaderValue>,
}

/// Runs the pipeline on one revision and turns its error into a response.
pub async fn run(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    req: &Request<()>,
    peer: SocketAddr,
    ctx: &mut Ctx,
) -> Response<Body> {
    // Boxed: the pipeline's future is large, and a request may run it twice (canary fallback).
    match Box::pin(stages(app, rt, req, peer, ctx)).await {
        Ok(r) => r,
        Err(e) => error_response(rt, e.as_ref()),
    }
}

/// Method, signature, route and params: everything decided from the request alone, before any
/// source is touched.
async fn stages(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    req: &Request<()>,
    peer: SocketAddr,
    ctx: &mut Ctx,
) -> Result<Response<Body>, StageError> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return Err(boxed(RequestError::Method(method.to_string())));
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
        .ok_or_else(|| boxed(RequestError::NoOrigin(path.to_owned())))?;

    // Non-video extensions are served untransformed (images, captions…).
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !rt.video_extensions.contains(&ext) {
        ctx.timing.mark("route");
        return serve_original(rt, req, &route, ctx, None, &[]).await;
    }

    let mut resolved = params::resolve(query, req.headers(), &rt.params).map_err(boxed)?;
    if resolved.bypass && !may_bypass(rt, req, path, query) {
        // Anyone could otherwise force a fresh ffmpeg run per request: ignored, and said so.
        resolved.bypass = false;
        resolved.warnings.push(params::ParamIssue {
            param: rt.config.params.bypass_params.join(","),
            value: String::new(),
            message: "cache bypass needs an admin token (purge scope) or a signed URL; ignored"
                .into(),
        });
    }
    ctx.timing.mark("params");
    // Lenient mode: whatever the answer turns out to be (variant, original, fallback), the
    // client learns which parameters were dropped.
    ctx.warnings = params::warnings_header(&resolved.warnings);
    if resolved.debug && !rt.debug_allowed(peer.ip()) {
        return Err(boxed(RequestError::DebugForbidden));
    }
    let variant = match &resolved.transform {
        Transform::Original => {
            return serve_original(rt, req, &route, ctx, None, &resolved.vary).await;
        }
        Transform::Variant(v) => v.clone(),
    };
    variant_stages(app, rt, req, ctx, route, &resolved, variant).await
}

/// Whether this request may skip cache reads: it carries an admin token with the `purge`
/// scope, or a valid signature (checked above when signing is required).
fn may_bypass(rt: &Runtime, req: &Request<()>, path: &str, query: &str) -> bool {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if rt
        .tokens
        .authenticate(auth)
        .is_some_and(|p| p.allows(vr_crds::dataplane::Scope::Purge))
    {
        return true;
    }
    rt.signer
        .as_ref()
        .is_some_and(|s| s.verify(path, query, unix_now()).is_ok())
}

/// Source validator → cache key → cache lookup, then the single-flight ([`flight::answer`]).
async fn variant_stages(
    app: &Arc<App>,
    rt: &Arc<Runtime>,
    req: &Request<()>,
    ctx: &mut Ctx,
    route: Route,
    resolved: &Resolved,
    variant: Variant,
) -> Result<Response<Body>, StageError> {
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
    let tags = cache_tags(rt, &route, &source, resolved, &variant);
    let ttl = origin_ttl(rt, &route).ok;
    let extra = variant_headers(resolved, &variant, &tags, ttl);

    if debug::query_has_debug_view(req.uri().query().unwrap_or("")) {
        return Ok(debug::debug_view(
            rt, &route, &source, resolved, &variant, &key,
        ));
    }

    let skip_read = resolved.bypass || resolved.debug;
    if skip_read {
        ctx.cache = CacheStatus::Bypass;
    } else if let Some(hit) = app.cache.get(&key, SystemTime::now()).await {
        ctx.cache = CacheStatus::Hit;
        ctx.timing.mark("cache");
        let mut extra = extra;
        if let Ok(v) = HeaderValue::from_str(hit.layer) {
            extra.insert(HeaderName::from_static(hdr::CACHE_LAYER), v);
        }
        return Ok(
            serve::respond(req.method(), req.headers(), &hit.meta, hit.payload, extra).await,
        );
    }
    ctx.timing.mark("cache");

    let job = produce::Production {
        app: app.clone(),
        rt: rt.clone(),
        route,
        variant,
        key,
        tags,
        ttl,
        store: !resolved.debug,
        request_id: ctx.request_id.clone(),
    };
    flight::answer(job, req, ctx, resolved, extra).await
}

/// This revision's answer to a stage's error: the JSON error, cacheable briefly downstream
/// when it is the client's mistake and retrying cannot change it; a server-side failure
/// (5xx) is never cached downstream (`no-store`): a CDN keeping it would serve our fault to
/// everyone after it is gone.
fn error_response(rt: &Runtime, e: &(dyn Classify + Send + Sync)) -> Response<Body> {
    let mut resp = crate::error::response(e);
    let status = resp.status();
    if status.is_server_error() {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if !e.retryable() && status.is_client_error() {
        let ttl = rt.config.cache.ttl.for_status(status.as_u16());
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, cache_control(ttl));
    }
    resp
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
