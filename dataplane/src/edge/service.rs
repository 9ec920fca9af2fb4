//! The public request handler: picks the revision (stable or canary) for a request, runs the
//! [`crate::pipeline`] on it, answers a failed canary request from the stable revision, counts
//! the answer in the request metrics, and adds the headers every answer carries.

use crate::body::Body;
use crate::control::app::{App, Role};
use crate::edge::headers::finish_headers;
use crate::error;
use crate::metrics::{RequestLabels, RevisionLabels};
use crate::pipeline::error::RequestError;
use crate::pipeline::{self, CacheStatus, Ctx};
use crate::telemetry::{self, Timing, TraceContext};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use vr_crds::contract::headers as hdr;

/// The data-plane request handler.
pub struct DataPlane(pub Arc<App>);

impl crate::edge::server::Handler for DataPlane {
    async fn handle(&self, req: Request<()>, peer: SocketAddr) -> Response<Body> {
        handle(&self.0, req, peer).await
    }
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
            let resp = pipeline::run(app, &rt, &req, peer, &mut ctx).await;
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
                let mut resp = pipeline::run(app, &stable, &req, peer, &mut ctx).await;
                if let Ok(v) = HeaderValue::from_str(rt.revision()) {
                    resp.headers_mut()
                        .insert(HeaderName::from_static(hdr::CANARY_FALLBACK), v);
                }
                (resp, Some((stable, Role::Stable)))
            } else {
                (resp, Some((rt, role)))
            }
        }
        _ => (error::response(&RequestError::NotReady), None),
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

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
