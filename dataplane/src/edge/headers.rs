//! The headers the edge adds to every answer, after the pipeline (or its error) produced it.

use crate::body::Body;
use crate::pipeline::Ctx;
use http::{header, HeaderName, HeaderValue, Response};
use vr_crds::contract::headers as hdr;

/// The headers every answer carries, whatever produced it: request id, trace context, the
/// serving revision, cache status, `Server-Timing`, parameter warnings, `Server`.
pub fn finish_headers(resp: &mut Response<Body>, ctx: &Ctx, revision: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        h.insert(HeaderName::from_static(hdr::REQUEST_ID), v);
    }
    h.insert(
        HeaderName::from_static(hdr::TRACEPARENT),
        ctx.trace.header(),
    );
    if let Ok(v) = HeaderValue::from_str(revision) {
        h.insert(HeaderName::from_static(hdr::CONFIG_REVISION), v);
    }
    h.insert(
        HeaderName::from_static(hdr::CACHE_STATUS),
        HeaderValue::from_static(ctx.cache.as_str()),
    );
    h.insert(
        HeaderName::from_static(hdr::SERVER_TIMING),
        ctx.timing.header(),
    );
    if let Some(w) = &ctx.warnings {
        h.insert(HeaderName::from_static(hdr::PARAM_WARNINGS), w.clone());
    }
    h.insert(header::SERVER, HeaderValue::from_static("video-resizer"));
}
