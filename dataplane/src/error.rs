//! Errors become responses in one place.
//!
//! Every layer returns its own typed error (thiserror) and implements [`Classify`]: who was at
//! fault, the status code, a stable machine-readable `code`, and whether a retry may help.
//! [`response`] is the only function that turns an error into an HTTP answer, so status
//! codes, JSON bodies and metric labels stay consistent.

use crate::body::{self, Body};
use http::{header, HeaderValue, Response, StatusCode};

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (4xx).
    Client,
    /// A source misbehaved or is unreachable (502/504).
    Origin,
    /// We failed or are overloaded (500/503).
    Server,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Origin => "origin",
            Fault::Server => "server",
        }
    }
}

/// What every layer's error tells the edge.
pub trait Classify: std::error::Error {
    /// The HTTP status to answer with.
    fn status(&self) -> StatusCode;
    /// Stable machine-readable code, e.g. `source_not_found`.
    fn code(&self) -> &'static str;
    /// Who was at fault.
    fn fault(&self) -> Fault;
    /// Whether the same request may succeed if retried later.
    fn retryable(&self) -> bool {
        false
    }
    /// Seconds a client should wait before retrying (sets `Retry-After`).
    fn retry_after(&self) -> Option<u32> {
        None
    }
    /// Extra structured detail for the JSON body (e.g. the list of bad parameters).
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Builds the JSON error response for `err`.
///
/// Body: `{"error": {"code", "message", "status", "fault", "retryable", "details"?}}`.
/// The message is the error's `Display`, which must never contain secrets.
pub fn response(err: &dyn Classify) -> Response<Body> {
    let status = err.status();
    let mut e = serde_json::json!({
        "code": err.code(),
        "message": err.to_string(),
        "status": status.as_u16(),
        "fault": err.fault().as_str(),
        "retryable": err.retryable(),
    });
    if let Some(d) = err.details() {
        e["details"] = d;
    }
    let mut resp = Response::new(body::json(&serde_json::json!({ "error": e })));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(secs) = err.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
