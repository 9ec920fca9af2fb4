//! The admin port: probes and metrics (open, for the kubelet and Prometheus), and the admin API
//! (scoped bearer tokens, every action audited): health report, cache stats, purge by tag or
//! key, and the active config.
//!
//! It listens on its own address so the public port never exposes any of it.

use crate::body::{self, Body};
use crate::cache::CacheKey;
use crate::control::app::App;
use crate::guard::auth::{now_rfc3339, AuditRecord, Principal};
use crate::metrics::AdminLabels;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use vr_crds::dataplane::Scope;

/// The admin request handler.
pub struct AdminApi(pub Arc<App>);

impl crate::edge::server::Handler for AdminApi {
    async fn handle(&self, req: Request<()>, peer: SocketAddr) -> Response<Body> {
        handle(&self.0, req, peer).await
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(body::json(&v));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn problem(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"error": {"code": code, "message": message, "status": status.as_u16()}}),
    )
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        kv.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Answers one admin request.
pub async fn handle(app: &Arc<App>, req: Request<()>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    let method = req.method().clone();
    if let Some(r) = open_endpoint(app, &method, path) {
        return r;
    }
    let (action, scope) = match (&method, path) {
        (&Method::GET, "/admin/health") => ("health", Scope::Read),
        (&Method::GET, "/admin/cache/stats") => ("cache-stats", Scope::Read),
        (&Method::GET, "/admin/config") => ("config", Scope::Read),
        (&Method::POST, "/admin/purge") => ("purge", Scope::Purge),
        (_, p) if p.starts_with("/admin/") => {
            return problem(
                StatusCode::NOT_FOUND,
                "not_found",
                "unknown admin endpoint or method",
            );
        }
        _ => return problem(StatusCode::NOT_FOUND, "not_found", "not found"),
    };
    let audit = Audit {
        app,
        peer,
        action,
        request_id: crate::telemetry::request_id(req.headers()),
    };
    let Some(rt) = app.runtime() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "no config revision is loaded yet",
        );
    };
    let query = req.uri().query().unwrap_or("");
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal: Principal = match rt.tokens.authenticate(auth) {
        Some(p) if p.allows(scope) => p,
        Some(p) => {
            audit.record(
                &p.name,
                "denied",
                query.to_owned(),
                format!("token lacks scope {scope:?}"),
            );
            return problem(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                &format!("this token may not {action}"),
            );
        }
        None => {
            audit.record(
                "anonymous",
                "denied",
                query.to_owned(),
                "missing or invalid bearer token".into(),
            );
            let mut r = problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let who = principal.name.as_str();
    match action {
        "health" => {
            audit.record(who, "ok", String::new(), String::new());
            json(StatusCode::OK, health_report(app, &rt))
        }
        "cache-stats" => {
            audit.record(who, "ok", String::new(), String::new());
            json(
                StatusCode::OK,
                serde_json::json!({"layers": app.cache.stats()}),
            )
        }
        "config" => {
            audit.record(who, "ok", String::new(), String::new());
            json(
                StatusCode::OK,
                serde_json::json!({"revision": rt.revision(), "digest": rt.digest, "config": redacted(&rt.config)}),
            )
        }
        "purge" => purge(app, &audit, who, query).await,
        _ => problem(StatusCode::NOT_FOUND, "not_found", "not found"),
    }
}

/// The endpoints open to the kubelet and Prometheus: probes and metrics.
fn open_endpoint(app: &App, method: &Method, path: &str) -> Option<Response<Body>> {
    match (method.clone(), path) {
        (Method::GET, "/healthz") => {
            Some(json(StatusCode::OK, serde_json::json!({"status": "ok"})))
        }
        (Method::GET, "/readyz") => Some(match app.runtime() {
            Some(rt) => json(
                StatusCode::OK,
                serde_json::json!({"status": "ready", "revision": rt.revision()}),
            ),
            None => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "no config revision is loaded yet",
            ),
        }),
        (Method::GET, "/metrics") => {
            let mut r = Response::new(body::full(app.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Some(r)
        }
        _ => None,
    }
}

/// Writes one admin action to the audit log and counts it.
struct Audit<'a> {
    app: &'a App,
    peer: SocketAddr,
    action: &'static str,
    request_id: String,
}

impl Audit<'_> {
    /// Targets and details are cut to [`AUDIT_FIELD_MAX`] bytes (with the full length
    /// noted), so a caller — anonymous ones included — cannot grow the log by more than a
    /// bounded record per request.
    fn record(&self, who: &str, result: &str, target: String, detail: String) {
        let (target, detail) = (bounded(target), bounded(detail));
        let action = self.action;
        self.app.audit.record(&AuditRecord {
            time: now_rfc3339(),
            who,
            peer: self.peer.to_string(),
            action,
            target,
            result,
            detail,
            request_id: &self.request_id,
        });
        let outcome = match result {
            "ok" => "ok",
            "denied" => "denied",
            _ => "error",
        };
        self.app
            .metrics
            .admin_requests
            .get_or_create(&AdminLabels { action, outcome })
            .inc();
    }
}

/// Most bytes of an audit record's `target` or `detail` (a valid target — a tag of at most
/// 128 bytes, a 64-digit key — always fits).
const AUDIT_FIELD_MAX: usize = 256;

/// `s` cut to [`AUDIT_FIELD_MAX`] bytes at a character boundary, with the original length.
fn bounded(s: String) -> String {
    if s.len() <= AUDIT_FIELD_MAX {
        return s;
    }
    let mut end = AUDIT_FIELD_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

/// `POST /admin/purge?tag=T` or `?key=HEX`: removes from every layer of this process.
async fn purge(app: &App, audit: &Audit<'_>, who: &str, query: &str) -> Response<Body> {
    if let Some(tag) = query_param(query, "tag") {
        if tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            audit.record(who, "error", tag.to_owned(), "invalid tag".into());
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_tag",
                "tag: letters, digits, '-', '_', '.', ':' (1–128)",
            );
        }
        let removed = app.cache.purge_tag(tag).await;
        audit.record(
            who,
            "ok",
            format!("tag={tag}"),
            format!("removed={removed}"),
        );
        json(
            StatusCode::OK,
            serde_json::json!({"tag": tag, "removed": removed}),
        )
    } else if let Some(key) = query_param(query, "key") {
        let Ok(k) = key.parse::<CacheKey>() else {
            audit.record(who, "error", key.to_owned(), "invalid key".into());
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_key",
                "key: 64 hex characters (see X-Cache-Key / debug view)",
            );
        };
        let removed = app.cache.remove(&k).await;
        audit.record(
            who,
            "ok",
            format!("key={key}"),
            format!("removed={removed}"),
        );
        json(
            StatusCode::OK,
            serde_json::json!({"key": key, "removed": removed}),
        )
    } else {
        audit.record(who, "error", query.to_owned(), "no tag or key".into());
        problem(
            StatusCode::BAD_REQUEST,
            "missing_parameter",
            "purge needs ?tag=TAG or ?key=HEX",
        )
    }
}

fn health_report(app: &App, rt: &crate::control::runtime::Runtime) -> serde_json::Value {
    let breakers: Vec<_> = rt
        .origins
        .breakers()
        .into_iter()
        .map(|(origin, source, state)| serde_json::json!({"origin": origin, "source": source, "state": state}))
        .collect();
    let degraded = breakers.iter().any(|b| b["state"] != "closed");
    serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "config": {"revision": rt.revision(), "digest": rt.digest},
        "origins": breakers,
        "transforms": {
            "slots": app.admission.size(),
            "running": app.admission.running(),
            "queued": app.admission.queued(),
            "inFlightVariants": app.flights.len(),
        },
        "cache": app.cache.stats(),
    })
}

/// The config as JSON. It holds no secret values (only paths to Secret files), but paths are
/// still shown as given so an operator can check mounts.
fn redacted(cfg: &vr_crds::DataPlaneConfig) -> serde_json::Value {
    serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_fields_are_bounded_at_a_character_boundary() {
        assert_eq!(bounded("tag=a".into()), "tag=a");
        let long = format!("tag={}", "é".repeat(30_000));
        let cut = bounded(long.clone());
        assert!(cut.len() < AUDIT_FIELD_MAX + 32, "{}", cut.len());
        assert!(cut.ends_with(&format!("…({} bytes)", long.len())));
    }
}
