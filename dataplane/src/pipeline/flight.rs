//! Joining the single-flight of a missing variant: the leader spawns the production, followers
//! read the same bytes; either way the answer streams while ffmpeg encodes, or waits for the
//! finished object when it needs its length (`HEAD`, `Range`).

use super::error::{boxed, RequestError, SharedError, StageError};
use super::headers::etag_for;
use super::originals::serve_original;
use super::produce::Production;
use super::{CacheStatus, Ctx};
use crate::body::{self, Body};
use crate::cache::flight::{Joined, NextError, Reader, Start};
use crate::cache::Payload;
use crate::control::app::{Done, Failure};
use crate::control::runtime::Runtime;
use crate::origin::Route;
use crate::request::params::Resolved;
use crate::serve;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use std::sync::Arc;

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

    // A HEAD or a range needs the finished object (its length); wait for it.
    let needs_whole = req.method() == Method::HEAD || req.headers().contains_key(header::RANGE);
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
