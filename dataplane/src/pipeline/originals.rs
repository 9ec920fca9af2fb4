//! Originals: the source served untransformed (passthrough extensions, `Transform::Original`,
//! and the serve-original fallbacks), proxied with ranges, streamed when over the input limit,
//! or redirected to a presigned URL. Never stored as a variant.

use super::error::{boxed, boxed_origin, RequestError, StageError};
use super::fallback::oversize_fallback;
use super::headers::{cache_control, content_type_for_path, origin_ttl, short_hash};
use super::{CacheStatus, Ctx};
use crate::body::{self, Body};
use crate::cache::{Meta, Payload};
use crate::control::runtime::Runtime;
use crate::origin::Route;
use crate::serve;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use vr_crds::contract::headers as hdr;

/// Serves the source untransformed, with ranges and conditionals; never stored as a variant.
pub(crate) async fn serve_original(
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
    // Remote originals are streamed: HEAD from the source metadata, ranges forwarded.
    let meta = match rt.origins.stat(route).await {
        Ok(m) => m,
        Err(e) if oversize_fallback(rt, &e) => return stream_original(rt, req, route, vary).await,
        Err(e) => return Err(boxed_origin(e)),
    };
    if let (true, Some(total)) = (rt.origins.is_remote(route, &meta), meta.length) {
        return remote_original(rt, req, route, ctx, fallback, vary, &meta, total).await;
    }
    let fetched = match rt.origins.fetch(route).await {
        Ok(f) => f,
        // Too large to spool: stream it through instead (the configured oversize policy).
        Err(e) if oversize_fallback(rt, &e) => return stream_original(rt, req, route, vary).await,
        Err(e) => return Err(boxed_origin(e)),
    };
    ctx.timing.mark("source");
    let file = std::fs::File::open(&fetched.path)
        .map_err(|e| boxed(RequestError::Internal(format!("cannot open source: {e}"))))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (meta, extra) = original_meta(rt, route, &fetched.meta, len, fallback, vary);
    let payload = Payload::File {
        file: Arc::new(file),
        len,
    };
    let resp = serve::respond(req.method(), req.headers(), &meta, payload, extra).await;
    // The spooled copy (if any) can go: the open handle keeps the bytes for the response.
    drop(fetched);
    Ok(resp)
}

/// An original at an HTTP or S3 source, answered from its metadata (`HEAD`, 304, 416 cost
/// the origin nothing more) and streamed with exactly the bytes the answer carries asked of
/// the origin (a 1-byte range costs the origin one byte).
#[allow(clippy::too_many_arguments)]
async fn remote_original(
    rt: &Arc<Runtime>,
    req: &Request<()>,
    route: &Route,
    ctx: &mut Ctx,
    fallback: Option<&'static str>,
    vary: &[&'static str],
    source: &crate::origin::SourceMeta,
    total: u64,
) -> Result<Response<Body>, StageError> {
    let (meta, extra) = original_meta(rt, route, source, total, fallback, vary);
    let answer = serve::answer(req.method(), req.headers(), &meta, total);
    let body = match answer.bytes {
        Some((start, count)) if count > 0 => rt
            .origins
            .open_range(route, start, count, total)
            .await
            .map_err(boxed_origin)?,
        _ => body::empty(),
    };
    ctx.timing.mark("source");
    Ok(answer.finish(extra, body))
}

/// The stored-object view of an original and the headers every answer about it carries.
fn original_meta(
    rt: &Arc<Runtime>,
    route: &Route,
    source: &crate::origin::SourceMeta,
    len: u64,
    fallback: Option<&'static str>,
    vary: &[&'static str],
) -> (Meta, HeaderMap) {
    let ttl = origin_ttl(rt, route).ok;
    let now = SystemTime::now();
    let meta = Meta {
        content_type: source
            .content_type
            .clone()
            .unwrap_or_else(|| content_type_for_path(&route.path).to_owned()),
        length: len,
        status: 200,
        created: now,
        expires: now + Duration::from_secs(ttl.into()),
        tags: Vec::new(),
        etag: format!("\"o-{}\"", short_hash(&source.validator)),
        last_modified: source.last_modified.unwrap_or(now),
        variant: "original".into(),
        cache_control: None,
    };
    let mut extra = HeaderMap::new();
    match fallback {
        Some(reason) => {
            extra.insert(hdr::FALLBACK_APPLIED, HeaderValue::from_static(reason));
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
    (meta, extra)
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
    h.insert(hdr::FALLBACK_APPLIED, HeaderValue::from_static("oversize"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    if !vary.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&vary.join(", ")) {
            h.insert(header::VARY, v);
        }
    }
    Ok(resp)
}
