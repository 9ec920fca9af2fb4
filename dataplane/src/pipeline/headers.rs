//! What a variant's answer says about itself: cache tags, `Cache-Control` from the origin's TTL,
//! the ETag, `Content-Disposition`, playback hints, and the content type of an original.

use crate::cache::CacheKey;
use crate::control::runtime::Runtime;
use crate::origin::{Route, SourceMeta};
use crate::request::params::Resolved;
use crate::request::variant::Variant;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use vr_crds::contract::headers as hdr;

pub(crate) fn etag_for(key: &CacheKey) -> HeaderValue {
    let hex = key.hex();
    HeaderValue::from_str(&format!("\"v-{}\"", &hex[..32.min(hex.len())]))
        .unwrap_or_else(|_| HeaderValue::from_static("\"v\""))
}

pub(crate) fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..12])
}

pub(crate) fn origin_ttl(rt: &Runtime, route: &Route) -> vr_crds::dataplane::TtlByStatus {
    rt.origin_settings
        .get(&route.origin)
        .map(|o| o.ttl)
        .unwrap_or(rt.config.cache.ttl)
}

pub(crate) fn cache_control(ttl: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={ttl}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

/// Tags: `<prefix>origin-<origin>`, `<prefix><source path>`, `<prefix>derivative-<name>`,
/// `<prefix>format-<format>`, `<prefix>mode-<mode>`, and the origin's own tags.
pub(crate) fn cache_tags(
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

pub(crate) fn variant_headers(
    resolved: &Resolved,
    variant: &Variant,
    tags: &[String],
    ttl: u32,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, cache_control(ttl));
    if let Ok(v) = HeaderValue::from_str(&tags.join(",")) {
        h.insert(HeaderName::from_static(hdr::CACHE_TAG), v);
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
            h.insert(HeaderName::from_static(hdr::DERIVATIVE), v);
        }
    }
    let hints = &resolved.hints;
    for (name, value) in [
        (hdr::PLAYBACK_LOOP, hints.loop_.map(|b| b.to_string())),
        (
            hdr::PLAYBACK_AUTOPLAY,
            hints.autoplay.map(|b| b.to_string()),
        ),
        (hdr::PLAYBACK_MUTED, hints.muted.map(|b| b.to_string())),
        (
            hdr::PLAYBACK_PRELOAD,
            hints.preload.map(|p| p.as_str().to_owned()),
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    h
}

pub(crate) fn content_type_for_path(path: &str) -> &'static str {
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
