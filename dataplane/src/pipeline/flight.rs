//! Joining the single-flight of a missing variant: the leader spawns the production, followers
//! read the same bytes; either way the answer streams while ffmpeg encodes.
//!
//! A `Range` is answered as soon as its bytes exist (`bytes=a-b` once byte `b` is written,
//! `bytes=a-` once byte `a` is, with what exists then), as a 206 whose `Content-Range` ends in
//! `/*` because the length is not known yet. That is sound because the output is fragmented
//! MP4 (or WebM, M4A) written to a pipe: ffmpeg only appends (`ftyp` + an empty `moov` first,
//! then `moof`/`mdat` fragments, one per 2 s keyframe interval, and an `mfra` index at the
//! end), so bytes served during production are the final object's bytes. A faststart MP4
//! could not be served before its end (its `moov` is rewritten to the front at the finish).
//! What still needs the finished object waits for it: `HEAD` (its `Content-Length`), a suffix
//! range (`bytes=-n`), conditionals, and a range past the end of what is finally written.

use super::error::{boxed, RequestError, SharedError, StageError};
use super::headers::etag_for;
use super::originals::serve_original;
use super::produce::Production;
use super::{CacheStatus, Ctx};
use crate::body::{self, Body};
use crate::cache::flight::{Joined, NextError, Progress, Reader, Start};
use crate::cache::Payload;
use crate::control::app::{Done, Failure};
use crate::control::runtime::Runtime;
use crate::origin::Route;
use crate::request::params::Resolved;
use crate::serve::{self, GrowingRange};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// How long a range request keeps the production going after its answer ends. A player that
/// reads a growing variant range by range holds no request open between two ranges; without
/// this, the flight would be abandoned (and ffmpeg killed) in every gap.
pub(crate) const RANGE_LINGER: Duration = Duration::from_secs(30);

/// Answers from the flight of `job.key`: spawns `job` when this request leads it.
pub(crate) async fn answer(
    job: Production,
    req: &Request<()>,
    ctx: &mut Ctx,
    resolved: &Resolved,
    extra: HeaderMap,
) -> Result<Response<Body>, StageError> {
    let app = job.app.clone();
    let rt = job.rt.clone();
    let route = job.route.clone();
    let key = job.key;
    let mut reader = match app.flights.join(&key) {
        Joined::Leader(producer, reader) => {
            if ctx.cache != CacheStatus::Bypass {
                ctx.cache = CacheStatus::Miss;
            }
            tokio::spawn(job.run(producer));
            reader
        }
        Joined::Follower(reader) => {
            app.metrics.collapsed.inc();
            ctx.cache = CacheStatus::Collapsed;
            reader
        }
    };

    if let Some(range) = growing_range(req, &key) {
        return match reader.until(range.needs()).await {
            Progress::Available { spool, written } => {
                ctx.timing.mark("range-ready");
                let end = match range {
                    GrowingRange::Bounded { end, .. } => end,
                    GrowingRange::From { .. } => written - 1,
                };
                let start = match range {
                    GrowingRange::Bounded { start, .. } | GrowingRange::From { start } => start,
                };
                let content_type = reader.content_type().unwrap_or_default();
                Ok(serve::respond_growing(
                    etag_for(&key),
                    &content_type,
                    spool,
                    (start, end),
                    extra,
                    Lingering(Some(reader)),
                ))
            }
            Progress::Finished(Ok(done)) => {
                ctx.timing.mark("transform");
                serve_finished(req, &reader, &done, extra).await
            }
            Progress::Finished(Err(f)) => {
                failure_response(&rt, req, &route, ctx, f, &resolved.vary).await
            }
        };
    }

    // A HEAD, a suffix range or a conditional needs the finished object; wait for it.
    let needs_whole = req.method() == Method::HEAD
        || req.headers().contains_key(header::RANGE)
        || req.headers().contains_key(header::IF_NONE_MATCH)
        || req.headers().contains_key(header::IF_MODIFIED_SINCE);
    if needs_whole {
        return match reader.outcome().await {
            Ok(done) => {
                ctx.timing.mark("transform");
                serve_finished(req, &reader, &done, extra).await
            }
            Err(f) => failure_response(&rt, req, &route, ctx, f, &resolved.vary).await,
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
        Start::Finished(Err(f)) => failure_response(&rt, req, &route, ctx, f, &resolved.vary).await,
    }
}

/// The range of a `GET` that can be answered while the variant is produced: one `Range` header
/// of the form `bytes=a-b` or `bytes=a-`, no conditional that needs the finished object, and
/// an `If-Range` (if any) naming this variant's strong ETag.
fn growing_range(req: &Request<()>, key: &crate::cache::CacheKey) -> Option<GrowingRange> {
    let h = req.headers();
    if req.method() != Method::GET
        || h.contains_key(header::IF_NONE_MATCH)
        || h.contains_key(header::IF_MODIFIED_SINCE)
    {
        return None;
    }
    if let Some(if_range) = h.get(header::IF_RANGE) {
        if if_range.as_bytes() != etag_for(key).as_bytes() {
            return None;
        }
    }
    let mut ranges = h.get_all(header::RANGE).iter();
    match (ranges.next(), ranges.next()) {
        (Some(v), None) => serve::parse_growing_range(v.to_str().ok()?),
        _ => None,
    }
}

/// A reader kept by a range answer: when the answer's body is dropped, the reader stays a
/// little longer ([`RANGE_LINGER`]) so the production survives the gap to the next range.
struct Lingering(Option<Reader<Arc<Done>, Failure>>);

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(reader) = self.0.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut reader = reader;
                tokio::select! {
                    () = tokio::time::sleep(RANGE_LINGER) => {}
                    // Nothing to keep alive once production has ended.
                    _ = reader.outcome() => {}
                }
            });
        }
    }
}

/// Serves a variant whose production has finished from its spool (ranges and conditionals
/// included), whether or not the cache kept it.
async fn serve_finished(
    req: &Request<()>,
    reader: &Reader<Arc<Done>, Failure>,
    done: &Done,
    extra: HeaderMap,
) -> Result<Response<Body>, StageError> {
    let (file, len) = reader.spool().ok_or_else(|| {
        boxed(RequestError::Internal(
            "finished variant has no spool".into(),
        ))
    })?;
    Ok(serve::respond(
        req.method(),
        req.headers(),
        &done.meta,
        Payload::File { file, len },
        extra,
    )
    .await)
}

/// The answer to a flight that made no variant: its error, or the original (fallback).
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

/// The body of a response streamed while the variant is produced. A failure mid-stream ends
/// the body with an error, so the client sees a truncated transfer, never a "complete" file.
fn streaming_body(reader: Reader<Arc<Done>, Failure>) -> Body {
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
