//! HTTP delivery of a stored object: `Range` (single range, 416), `HEAD`, `ETag`,
//! `If-None-Match`, `If-Modified-Since`, `If-Range`, `Last-Modified`.
//!
//! This is the last step of the request path: it only turns a cache entry (or a finished
//! transform) into a response, so every source of bytes gets identical HTTP semantics.

use crate::body::{self, Body, FILE_CHUNK};
use crate::cache::{read_at, Meta, Payload};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a `Range` header asks of a representation of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Serve the whole representation (no header, or one we ignore).
    Full,
    /// Serve bytes `start..=end`; always `start <= end < len`.
    Partial { start: u64, end: u64 },
    /// 416: the range starts at or past the end.
    Unsatisfiable,
}

/// Parses one `Range` header value against a representation of `len` bytes (RFC 9110 §14).
///
/// Accepts `bytes=a-b`, `bytes=a-` and `bytes=-n` (unit case-insensitive). A multi-range, an
/// other unit or any malformed value gives [`RangeSpec::Full`] (the header is ignored, as the
/// RFC allows). A first byte at or past `len`, or a zero-length suffix, is
/// [`RangeSpec::Unsatisfiable`]. Never panics; numbers too large for `u64` saturate.
pub fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeSpec::Full;
    };
    if !unit.trim_end().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeSpec::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    match (digits(first), digits(last)) {
        // bytes=-n
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial {
                    start: len - n.min(len),
                    end: len - 1,
                }
            }
        }
        // bytes=a- and bytes=a-b
        (Some(start), end) if end.is_some() || last.is_empty() => {
            let end = end.unwrap_or(u64::MAX);
            if end < start {
                RangeSpec::Full
            } else if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => RangeSpec::Full,
    }
}

/// A `Range` asked of a representation whose length is not known yet (a variant that ffmpeg
/// is still writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowingRange {
    /// `bytes=a-b`: exactly these bytes, once byte `end` exists.
    Bounded { start: u64, end: u64 },
    /// `bytes=a-`: from `start` to whatever exists when the answer is made.
    From { start: u64 },
}

impl GrowingRange {
    /// How many bytes must exist before this range can be answered.
    pub fn needs(self) -> u64 {
        match self {
            GrowingRange::Bounded { end, .. } => end.saturating_add(1),
            GrowingRange::From { start } => start.saturating_add(1),
        }
    }
}

/// Parses a `Range` value that can be answered before the length is known: `bytes=a-b` and
/// `bytes=a-`, with the same grammar as [`parse_range`]. A suffix range (`bytes=-n`) needs the
/// length, and whatever [`parse_range`] ignores is ignored too: both give `None`.
///
/// Agrees with [`parse_range`]: once the length is known and covers the range, both name the
/// same bytes.
pub fn parse_growing_range(value: &str) -> Option<GrowingRange> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim_end().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let start = digits(first)?;
    if last.is_empty() {
        return Some(GrowingRange::From { start });
    }
    let end = digits(last)?;
    (end >= start).then_some(GrowingRange::Bounded { start, end })
}

/// Answers bytes `start..=end` of a representation that is still being written (its first
/// `end + 1` bytes exist in `file` and never change): 206 with `Content-Range: bytes
/// start-end/*` (RFC 9110 §14.4: the complete length is not known yet), `Content-Length`,
/// `Accept-Ranges`, `ETag` and `Content-Type`; `extra` as in [`respond`]. `hold` is kept
/// alive until the body is dropped (the caller's stake in the production).
pub fn respond_growing<H: Send + Sync + 'static>(
    etag: HeaderValue,
    content_type: &str,
    file: Arc<std::fs::File>,
    (start, end): (u64, u64),
    extra: HeaderMap,
    hold: H,
) -> Response<Body> {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    insert(&mut h, header::CONTENT_TYPE, content_type);
    insert(
        &mut h,
        header::CONTENT_RANGE,
        &format!("bytes {start}-{end}/*"),
    );
    let count = end - start + 1;
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    let chunks = file_chunks(file, start, count);
    let body = body::stream(futures_util::StreamExt::map(chunks, move |c| {
        let _ = &hold;
        c
    }));
    finish(StatusCode::PARTIAL_CONTENT, h, extra, body)
}

/// A non-empty run of ASCII digits, saturating at `u64::MAX`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// An entity-tag split into (weak, opaque-tag with its quotes).
fn entity_tag(s: &str) -> Option<(bool, &str)> {
    let (weak, tag) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some((weak, tag))
}

/// The entity-tags of an `If-None-Match` list; stops at the first malformed element.
fn entity_tag_list(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return out;
        }
        let (weak, body) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(after_quote) = body.strip_prefix('"') else {
            return out;
        };
        let Some(close) = after_quote.find('"') else {
            return out;
        };
        out.push((weak, &body[..close + 2]));
        rest = &after_quote[close + 1..];
    }
}

/// `Meta::etag` as a header value: kept if it is a valid entity-tag, quoted if it is a bare
/// opaque value, dropped otherwise.
fn etag_value(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if entity_tag(raw).is_some() {
        return Some(raw.to_owned());
    }
    let bare_ok = !raw.is_empty() && raw.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
    bare_ok.then(|| format!("\"{raw}\""))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `If-None-Match` (or, without it, `If-Modified-Since`) says the client's copy is
/// current.
fn not_modified(req: &HeaderMap, etag: Option<&str>, last_modified: SystemTime) -> bool {
    let mut inm = req.get_all(header::IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        let ours = etag.and_then(entity_tag).map(|(_, opaque)| opaque);
        return inm.filter_map(|v| v.to_str().ok()).any(|v| {
            v.trim() == "*"
                || entity_tag_list(v)
                    .iter()
                    .any(|(_, theirs)| Some(*theirs) == ours)
        });
    }
    req.get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        .is_some_and(|since| unix_secs(last_modified) <= unix_secs(since))
}

/// Whether `If-Range` allows a partial answer: a strong ETag match or an exact date match.
fn if_range_holds(value: &str, etag: Option<&str>, last_modified: SystemTime) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match (entity_tag(value), etag.and_then(entity_tag)) {
            (Some((false, theirs)), Some((false, ours))) => theirs == ours,
            _ => false,
        };
    }
    httpdate::parse_http_date(value).is_ok_and(|date| unix_secs(date) == unix_secs(last_modified))
}

/// Streams `len` bytes of `file` from `offset` with positional reads, chunk by chunk, on the
/// blocking pool (no shared file offset, so clones of one payload may stream concurrently).
fn file_body(file: Arc<std::fs::File>, offset: u64, len: u64) -> Body {
    body::stream(file_chunks(file, offset, len))
}

/// The chunks of [`file_body`].
fn file_chunks(
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
    let end = offset.saturating_add(len);
    futures_util::stream::unfold(Some(offset), move |pos| {
        let file = file.clone();
        async move {
            let pos = pos.filter(|p| *p < end)?;
            let want = usize::try_from(end - pos).map_or(FILE_CHUNK, |r| r.min(FILE_CHUNK));
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let n = read_at(&file, &mut buf, pos)?;
                buf.truncate(n);
                Ok::<_, io::Error>(buf)
            })
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
            Some(match read {
                Ok(buf) if buf.is_empty() => (Err(io::ErrorKind::UnexpectedEof.into()), None),
                Ok(buf) => {
                    let next = pos + buf.len() as u64;
                    (Ok(Bytes::from(buf)), Some(next))
                }
                Err(e) => (Err(e), None),
            })
        }
    })
}

/// The body for bytes `start .. start+len` of `payload` (zero-copy for in-memory payloads).
fn payload_body(payload: Payload, start: u64, len: u64) -> Body {
    match payload {
        Payload::Bytes(b) => {
            let from = usize::try_from(start).unwrap_or(b.len()).min(b.len());
            let to = usize::try_from(start.saturating_add(len))
                .unwrap_or(b.len())
                .min(b.len());
            body::full(b.slice(from..to))
        }
        Payload::File { file, .. } => file_body(file, start, len),
    }
}

fn insert(h: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name, v);
        }
        Err(_) => {
            tracing::warn!(header = %name, "serve: stored header value is not valid; omitted")
        }
    }
}

/// Answers `method` on a stored object.
///
/// - Only `GET` and `HEAD` are served (others: 405 with `Allow`).
/// - `If-None-Match` (weak comparison, `*`) takes precedence over `If-Modified-Since`; either
///   gives 304 with `ETag`, `Last-Modified` and `Cache-Control`.
/// - `Range` applies to `GET` only: 206 with `Content-Range: bytes a-b/N`, or 416 with
///   `Content-Range: bytes */N`; `If-Range` that does not match (strong ETag or exact date)
///   gives the full 200. A stored status other than 200 is served as is, without ranges or 304.
/// - Every answer carries `Accept-Ranges`, `ETag`, `Last-Modified`; those with a
///   representation carry `Content-Type` and `Content-Length` (HEAD: the same length, no body).
/// - `extra` headers (Cache-Control, Cache-Tag, X-Cache-Status…) are set on every answer,
///   replacing any header of the same name.
/// - The payload length is authoritative for `Content-Length` and ranges.
pub async fn respond(
    method: &Method,
    req_headers: &HeaderMap,
    meta: &Meta,
    payload: Payload,
    extra: HeaderMap,
) -> Response<Body> {
    let a = answer(method, req_headers, meta, payload.len());
    let body = match a.bytes {
        Some((start, count)) => payload_body(payload, start, count),
        None => body::empty(),
    };
    a.finish(extra, body)
}

/// What [`respond`] answers for an object of `len` bytes, before any byte is read: the
/// status, the headers, and which bytes the body carries (`None`: no body). Lets a caller that
/// holds no payload (an original at a remote origin) fetch exactly those bytes and nothing
/// else — none for `HEAD`, 304 and 416.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// `(start, count)` of the body.
    pub bytes: Option<(u64, u64)>,
}

impl Answer {
    /// The response with `extra` headers (replacing any of the same name) and `body`.
    pub fn finish(self, extra: HeaderMap, body: Body) -> Response<Body> {
        finish(self.status, self.headers, extra, body)
    }
}

/// The decision of [`respond`] (same rules), without a payload.
pub fn answer(method: &Method, req_headers: &HeaderMap, meta: &Meta, len: u64) -> Answer {
    let etag = etag_value(&meta.etag);
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(etag) = &etag {
        insert(&mut h, header::ETAG, etag);
    }
    insert(
        &mut h,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(meta.last_modified),
    );
    if let Some(cc) = &meta.cache_control {
        insert(&mut h, header::CACHE_CONTROL, cc);
    }
    let done = |status, headers, bytes| Answer {
        status,
        headers,
        bytes,
    };

    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        return done(StatusCode::METHOD_NOT_ALLOWED, h, None);
    }
    let stored = StatusCode::from_u16(meta.status).unwrap_or(StatusCode::OK);
    let conditional = stored == StatusCode::OK;
    if conditional && not_modified(req_headers, etag.as_deref(), meta.last_modified) {
        return done(StatusCode::NOT_MODIFIED, h, None);
    }
    let range = if conditional && !head {
        requested_range(req_headers, etag.as_deref(), meta.last_modified, len)
    } else {
        RangeSpec::Full
    };
    let (status, start, count) = match range {
        RangeSpec::Full => (stored, 0, len),
        RangeSpec::Partial { start, end } => {
            insert(
                &mut h,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeSpec::Unsatisfiable => {
            insert(&mut h, header::CONTENT_RANGE, &format!("bytes */{len}"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return done(StatusCode::RANGE_NOT_SATISFIABLE, h, None);
        }
    };
    if HeaderValue::from_str(&meta.content_type).is_ok() {
        insert(&mut h, header::CONTENT_TYPE, &meta.content_type);
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    let bytes = (!head).then_some((start, count));
    done(status, h, bytes)
}

/// The range a GET asks for, after `If-Range`. Several `Range` headers are malformed: ignored.
fn requested_range(
    req: &HeaderMap,
    etag: Option<&str>,
    last_modified: SystemTime,
    len: u64,
) -> RangeSpec {
    let mut ranges = req.get_all(header::RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return RangeSpec::Full;
    };
    let Ok(range) = range.to_str() else {
        return RangeSpec::Full;
    };
    if let Some(if_range) = req.get(header::IF_RANGE) {
        let holds = if_range
            .to_str()
            .is_ok_and(|v| if_range_holds(v, etag, last_modified));
        if !holds {
            return RangeSpec::Full;
        }
    }
    parse_range(range, len)
}

fn finish(status: StatusCode, mut h: HeaderMap, extra: HeaderMap, body: Body) -> Response<Body> {
    for name in extra.keys() {
        h.remove(name);
    }
    for (name, value) in &extra {
        h.append(name.clone(), value.clone());
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = h;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use proptest::prelude::*;
    use std::io::Write;
    use std::time::Duration;

    const DATA: &[u8] = b"0123456789";

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn meta() -> Meta {
        Meta {
            content_type: "video/mp4".into(),
            length: DATA.len() as u64,
            status: 200,
            created: t(1_700_000_000),
            expires: t(1_800_000_000),
            tags: vec![],
            etag: "\"v1\"".into(),
            last_modified: t(1_700_000_000),
            variant: "original".into(),
            cache_control: Some("public, max-age=60".into()),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn extra() -> HeaderMap {
        headers(&[
            ("cache-control", "public, max-age=86400"),
            ("cache-tag", "video-a"),
            ("cache-tag", "video-format-mp4"),
            ("x-cache-status", "HIT"),
        ])
    }

    async fn get(req: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        call(
            Method::GET,
            req,
            &meta(),
            Payload::Bytes(Bytes::from_static(DATA)),
        )
        .await
    }

    async fn call(
        method: Method,
        req: &[(&str, &str)],
        meta: &Meta,
        payload: Payload,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = respond(&method, &headers(req), meta, payload, extra()).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn hv<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
        h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("<none>")
    }

    fn assert_extra(h: &HeaderMap) {
        assert_eq!(hv(h, "cache-control"), "public, max-age=86400");
        assert_eq!(h.get_all("cache-tag").iter().count(), 2);
        assert_eq!(hv(h, "x-cache-status"), "HIT");
        assert_eq!(hv(h, "etag"), "\"v1\"");
        assert_eq!(hv(h, "last-modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(hv(h, "accept-ranges"), "bytes");
    }

    #[test]
    fn parse_range_handles_every_single_range_form() {
        use RangeSpec::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range("bytes=2-4", 10), p(2, 4));
        assert_eq!(parse_range("bytes=0-0", 10), p(0, 0));
        assert_eq!(parse_range("bytes=7-", 10), p(7, 9));
        assert_eq!(parse_range("bytes=5-100", 10), p(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), p(7, 9));
        assert_eq!(parse_range("bytes=-100", 10), p(0, 9));
        assert_eq!(parse_range("Bytes=1-2", 10), p(1, 2));
        assert_eq!(parse_range(" bytes=1-2 ", 10), p(1, 2));
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 10), p(0, 9));
        assert_eq!(parse_range("bytes=-99999999999999999999999", 10), p(0, 9));
    }

    #[test]
    fn parse_range_reports_unsatisfiable_ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn parse_range_ignores_multi_ranges_and_malformed_values() {
        for v in [
            "bytes=0-1,3-4",
            "bytes=0-1,",
            "items=0-1",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=1-2-3",
            "bytes=1",
            "bytes=--1",
            "bytes=1 -2",
            "",
        ] {
            assert_eq!(parse_range(v, 10), RangeSpec::Full, "{v:?}");
        }
    }

    #[tokio::test]
    async fn a_plain_get_serves_the_whole_object_with_every_header() {
        let (s, h, body) = get(&[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, DATA);
        assert_eq!(hv(&h, "content-length"), "10");
        assert_eq!(hv(&h, "content-type"), "video/mp4");
        assert_extra(&h);
    }

    #[tokio::test]
    async fn a_range_gets_206_with_content_range() {
        for (range, want, cr) in [
            ("bytes=2-4", &b"234"[..], "bytes 2-4/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=-100", DATA, "bytes 0-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
        ] {
            let (s, h, body) = get(&[("range", range)]).await;
            assert_eq!(s, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(body, want, "{range}");
            assert_eq!(hv(&h, "content-range"), cr);
            assert_eq!(hv(&h, "content-length"), want.len().to_string());
            assert_eq!(hv(&h, "content-type"), "video/mp4");
            assert_extra(&h);
        }
    }

    #[tokio::test]
    async fn an_unsatisfiable_range_gets_416_with_the_length() {
        let (s, h, body) = get(&[("range", "bytes=10-")]).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(hv(&h, "content-range"), "bytes */10");
        assert!(body.is_empty());
        assert_extra(&h);
    }

    #[tokio::test]
    async fn multi_ranges_and_repeated_range_headers_get_the_full_object() {
        let (s, _, body) = get(&[("range", "bytes=0-1,4-5")]).await;
        assert_eq!((s, body.as_slice()), (StatusCode::OK, DATA));
        let (s, _, body) = get(&[("range", "bytes=0-1"), ("range", "bytes=4-5")]).await;
        assert_eq!((s, body.as_slice()), (StatusCode::OK, DATA));
    }

    #[tokio::test]
    async fn head_sends_headers_and_length_without_a_body() {
        let payload = Payload::Bytes(Bytes::from_static(DATA));
        let (s, h, body) = call(Method::HEAD, &[], &meta(), payload.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(hv(&h, "content-length"), "10");
        assert!(body.is_empty());
        assert_extra(&h);
        // Range is defined for GET only.
        let (s, h, body) = call(Method::HEAD, &[("range", "bytes=0-1")], &meta(), payload).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(hv(&h, "content-length"), "10");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn other_methods_get_405() {
        let payload = Payload::Bytes(Bytes::from_static(DATA));
        let (s, h, _) = call(Method::POST, &[], &meta(), payload).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(hv(&h, "allow"), "GET, HEAD");
    }

    #[tokio::test]
    async fn if_none_match_gets_304() {
        for inm in [
            "\"v1\"",
            "W/\"v1\"",
            "\"x\", \"v1\"",
            "\"a,b\" , W/\"v1\"",
            "*",
        ] {
            let (s, h, body) = get(&[("if-none-match", inm)]).await;
            assert_eq!(s, StatusCode::NOT_MODIFIED, "{inm}");
            assert!(body.is_empty());
            assert_extra(&h);
            assert_eq!(hv(&h, "content-length"), "<none>");
        }
        let (s, _, _) = get(&[("if-none-match", "\"v2\"")]).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = get(&[("if-none-match", "\"v2\""), ("if-none-match", "\"v1\"")]).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn if_none_match_takes_precedence_over_if_modified_since() {
        let (s, _, body) = get(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),
        ])
        .await;
        assert_eq!((s, body.as_slice()), (StatusCode::OK, DATA));
    }

    #[tokio::test]
    async fn if_modified_since_gets_304_when_not_modified() {
        for (ims, want) in [
            ("Tue, 14 Nov 2023 22:13:20 GMT", StatusCode::NOT_MODIFIED),
            ("Wed, 15 Nov 2023 00:00:00 GMT", StatusCode::NOT_MODIFIED),
            ("Tue, 14 Nov 2023 22:13:19 GMT", StatusCode::OK),
            ("not a date", StatusCode::OK),
        ] {
            let (s, h, _) = get(&[("if-modified-since", ims)]).await;
            assert_eq!(s, want, "{ims}");
            assert_extra(&h);
        }
    }

    #[tokio::test]
    async fn if_range_allows_a_partial_answer_only_when_it_matches() {
        for (if_range, want) in [
            ("\"v1\"", StatusCode::PARTIAL_CONTENT),
            ("Tue, 14 Nov 2023 22:13:20 GMT", StatusCode::PARTIAL_CONTENT),
            ("\"v2\"", StatusCode::OK),
            ("W/\"v1\"", StatusCode::OK),
            ("Tue, 14 Nov 2023 22:13:21 GMT", StatusCode::OK),
            ("garbage", StatusCode::OK),
        ] {
            let (s, _, body) = get(&[("range", "bytes=0-1"), ("if-range", if_range)]).await;
            assert_eq!(s, want, "{if_range}");
            assert_eq!(body.len(), if want == StatusCode::OK { 10 } else { 2 });
        }
        // A weak stored validator never satisfies If-Range.
        let mut m = meta();
        m.etag = "W/\"v1\"".into();
        let payload = Payload::Bytes(Bytes::from_static(DATA));
        let req = [("range", "bytes=0-1"), ("if-range", "W/\"v1\"")];
        let (s, _, _) = call(Method::GET, &req, &m, payload).await;
        assert_eq!(s, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_bare_etag_is_quoted_when_served() {
        let mut m = meta();
        m.etag = "v1".into();
        let payload = Payload::Bytes(Bytes::from_static(DATA));
        let (s, h, _) = call(Method::GET, &[("if-none-match", "\"v1\"")], &m, payload).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        assert_eq!(hv(&h, "etag"), "\"v1\"");
    }

    #[tokio::test]
    async fn a_stored_error_status_is_served_without_ranges_or_304() {
        let mut m = meta();
        m.status = 404;
        let payload = Payload::Bytes(Bytes::from_static(DATA));
        let req = [("range", "bytes=0-1"), ("if-none-match", "*")];
        let (s, h, body) = call(Method::GET, &req, &m, payload).await;
        assert_eq!((s, body.as_slice()), (StatusCode::NOT_FOUND, DATA));
        assert_eq!(hv(&h, "content-range"), "<none>");
    }

    #[tokio::test]
    async fn file_payloads_stream_every_range_in_chunks() {
        let data: Vec<u8> = (0..FILE_CHUNK * 2 + 1234)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let file = Arc::new(f);
        let len = data.len() as u64;
        let mut m = meta();
        m.length = len;
        let payload = Payload::File {
            file: file.clone(),
            len,
        };
        let (s, h, body) = call(Method::GET, &[], &m, payload.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(hv(&h, "content-length"), len.to_string());
        assert_eq!(body, data);
        let start = FILE_CHUNK as u64 - 10;
        let end = 2 * FILE_CHUNK as u64 + 5;
        let range = format!("bytes={start}-{end}");
        let (s, h, body) = call(Method::GET, &[("range", &range)], &m, payload.clone()).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            hv(&h, "content-range"),
            format!("bytes {start}-{end}/{len}")
        );
        assert_eq!(body, &data[start as usize..=end as usize]);
        let (s, _, body) = call(Method::GET, &[("range", "bytes=-7")], &m, payload).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, &data[data.len() - 7..]);
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_payload_length_fails_the_body_not_the_process() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        let payload = Payload::File {
            file: Arc::new(f),
            len: 10,
        };
        let resp = respond(
            &Method::GET,
            &HeaderMap::new(),
            &meta(),
            payload,
            HeaderMap::new(),
        )
        .await;
        assert!(resp.into_body().collect().await.is_err());
    }

    fn range_value() -> impl Strategy<Value = String> {
        let num = prop_oneof![
            Just(String::new()),
            (0u64..40).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            Just("99999999999999999999999".to_string()),
        ];
        (num.clone(), num).prop_map(|(a, b)| format!("bytes={a}-{b}"))
    }

    proptest! {
        #[test]
        fn parse_range_never_panics_and_partial_ranges_stay_within_the_object(
            value in prop_oneof![range_value(), any::<String>(), "[bytes=0-9, -]{0,16}"],
            len in prop_oneof![0u64..40, any::<u64>()],
        ) {
            if let RangeSpec::Partial { start, end } = parse_range(&value, len) {
                prop_assert!(start <= end, "{value} {len}");
                prop_assert!(end < len, "{value} {len}");
            }
        }

        #[test]
        fn a_first_last_range_within_the_object_is_served_exactly(
            len in 1u64..1000, a in 0u64..1000, b in 0u64..2000,
        ) {
            let got = parse_range(&format!("bytes={a}-{b}"), len);
            let want = if b < a {
                RangeSpec::Full
            } else if a >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial { start: a, end: b.min(len - 1) }
            };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn a_growing_range_names_the_bytes_parse_range_names_once_they_exist(
            value in prop_oneof![range_value(), "bytes=[0-9]{0,3}-[0-9]{0,3}", any::<String>()],
            len in 1u64..2000,
        ) {
            match parse_growing_range(&value) {
                Some(GrowingRange::Bounded { start, end }) if end < len => {
                    prop_assert_eq!(parse_range(&value, len), RangeSpec::Partial { start, end });
                }
                Some(GrowingRange::From { start }) if start < len => {
                    prop_assert_eq!(
                        parse_range(&value, len),
                        RangeSpec::Partial { start, end: len - 1 }
                    );
                }
                Some(r) => prop_assert!(r.needs() > len),
                // Not answerable early: a suffix, or ignored by both.
                None => {
                    let suffix = value
                        .split_once('=')
                        .is_some_and(|(_, set)| set.trim().starts_with('-'));
                    prop_assert!(suffix || parse_range(&value, len) == RangeSpec::Full, "{value}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_growing_range_is_a_206_with_an_unknown_length_and_exactly_its_bytes() {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(DATA).expect("write");
        let file = Arc::new(f.reopen().expect("reopen"));
        let held = Arc::new(());
        let resp = respond_growing(
            HeaderValue::from_static("\"v1\""),
            "video/mp4",
            file,
            (2, 5),
            extra(),
            held.clone(),
        );
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        let h = resp.headers();
        assert_eq!(h["content-range"], "bytes 2-5/*");
        assert_eq!(h["content-length"], "4");
        assert_eq!(h["etag"], "\"v1\"");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["x-cache-status"], "HIT");
        assert_eq!(Arc::strong_count(&held), 2, "held while the body lives");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"2345");
        assert_eq!(Arc::strong_count(&held), 1, "released with the body");
    }

    #[test]
    fn an_answer_says_which_bytes_it_needs_before_any_is_read() {
        let len = 1_000_000;
        let a = answer(
            &Method::GET,
            &headers(&[("range", "bytes=0-0")]),
            &meta(),
            len,
        );
        assert_eq!(
            (a.status, a.bytes),
            (StatusCode::PARTIAL_CONTENT, Some((0, 1)))
        );
        assert_eq!(hv(&a.headers, "content-range"), "bytes 0-0/1000000");
        let a = answer(
            &Method::HEAD,
            &headers(&[("range", "bytes=0-0")]),
            &meta(),
            len,
        );
        assert_eq!((a.status, a.bytes), (StatusCode::OK, None));
        assert_eq!(hv(&a.headers, "content-length"), "1000000");
        let a = answer(
            &Method::GET,
            &headers(&[("if-none-match", "\"v1\"")]),
            &meta(),
            len,
        );
        assert_eq!((a.status, a.bytes), (StatusCode::NOT_MODIFIED, None));
        let a = answer(
            &Method::GET,
            &headers(&[("range", "bytes=2000000-")]),
            &meta(),
            len,
        );
        assert_eq!(
            (a.status, a.bytes),
            (StatusCode::RANGE_NOT_SATISFIABLE, None)
        );
        let a = answer(&Method::GET, &headers(&[]), &meta(), len);
        assert_eq!((a.status, a.bytes), (StatusCode::OK, Some((0, len))));
    }
}
