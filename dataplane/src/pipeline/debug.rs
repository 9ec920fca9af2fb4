//! The debug view (`?debug=view`): what a request resolved to (origin, source, variant, cache
//! key), as JSON, instead of the variant. Allowed only where the config allows debug requests.

use crate::body::{self, Body};
use crate::cache::CacheKey;
use crate::control::runtime::Runtime;
use crate::origin::{Route, SourceMeta};
use crate::request::params::Resolved;
use crate::request::variant::Variant;
use http::{header, HeaderValue, Response};

pub(crate) fn query_has_debug_view(query: &str) -> bool {
    query.split('&').any(|p| p == "debug=view")
}

pub(crate) fn debug_view(
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
