//! Errors of the origin layer: [`OriginError`] (what the edge answers, naming origin and
//! source, never credentials or paths) and the per-attempt [`SourceError`] it is named from.

use crate::error::{Classify, Fault};
use ::http::StatusCode;
use std::fmt;
use std::time::Duration;

/// Why a source could not provide an object. Messages name the origin and source, never
/// credentials or file-system paths.
#[derive(Debug)]
pub enum OriginError {
    /// The request path is unsafe (traversal, encoded separators, double encoding, …).
    BadPath { reason: &'static str },
    /// Every source said not found.
    NotFound { origin: String },
    /// The object is larger than `limits.maxInputBytes`.
    TooLarge {
        origin: String,
        source: String,
        limit: u64,
        size: Option<u64>,
    },
    /// The source did not answer within its timeout.
    Timeout {
        origin: String,
        source: String,
        after: Duration,
    },
    /// The source answered with an unexpected status.
    Upstream {
        origin: String,
        source: String,
        status: u16,
    },
    /// The source refused our credentials (401/403).
    Auth {
        origin: String,
        source: String,
        status: u16,
    },
    /// The source could not be reached or broke the connection.
    Network {
        origin: String,
        source: String,
        detail: String,
    },
    /// The source's circuit breaker is open.
    BreakerOpen {
        origin: String,
        source: String,
        retry_after: u32,
    },
    /// Local I/O failed (reading a local source or writing a temp file).
    Io {
        origin: String,
        source: String,
        detail: String,
    },
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OriginError::*;
        match self {
            BadPath { reason } => write!(f, "request path refused: {reason}"),
            NotFound { origin } => write!(f, "no source of origin {origin:?} has this object"),
            TooLarge {
                origin,
                source,
                limit,
                size: Some(size),
            } => write!(
                f,
                "source {source:?} of origin {origin:?}: the object is {size} bytes; limits.maxInputBytes is {limit}"
            ),
            TooLarge {
                origin,
                source,
                limit,
                size: None,
            } => write!(
                f,
                "source {source:?} of origin {origin:?}: the object exceeds limits.maxInputBytes ({limit} bytes)"
            ),
            Timeout {
                origin,
                source,
                after,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} did not answer within {}s",
                after.as_secs_f64()
            ),
            Upstream {
                origin,
                source,
                status,
            } if (300..400).contains(status) => write!(
                f,
                "source {source:?} of origin {origin:?} answered with a redirect (status {status}), which is not followed"
            ),
            Upstream {
                origin,
                source,
                status,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} answered with status {status}"
            ),
            Auth {
                origin,
                source,
                status,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} refused our credentials (status {status})"
            ),
            Network {
                origin,
                source,
                detail,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} is unreachable: {detail}"
            ),
            BreakerOpen {
                origin,
                source,
                retry_after,
            } => write!(
                f,
                "source {source:?} of origin {origin:?} is failing; its circuit breaker is open for {retry_after}s"
            ),
            Io {
                origin,
                source,
                detail,
            } => write!(
                f,
                "reading source {source:?} of origin {origin:?} failed: {detail}"
            ),
        }
    }
}

impl std::error::Error for OriginError {}

impl Classify for OriginError {
    fn status(&self) -> StatusCode {
        use OriginError::*;
        match self {
            BadPath { .. } => StatusCode::BAD_REQUEST,
            NotFound { .. } => StatusCode::NOT_FOUND,
            TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Upstream { .. } | Auth { .. } | Network { .. } => StatusCode::BAD_GATEWAY,
            BreakerOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        use OriginError::*;
        match self {
            BadPath { .. } => "bad_path",
            NotFound { .. } => "source_not_found",
            TooLarge { .. } => "source_too_large",
            Timeout { .. } => "source_timeout",
            Upstream { .. } => "source_error",
            Auth { .. } => "source_auth",
            Network { .. } => "source_unreachable",
            BreakerOpen { .. } => "source_breaker_open",
            Io { .. } => "source_io",
        }
    }

    fn fault(&self) -> Fault {
        use OriginError::*;
        match self {
            BadPath { .. } | NotFound { .. } | TooLarge { .. } => Fault::Client,
            Timeout { .. } | Upstream { .. } | Auth { .. } | Network { .. } => Fault::Origin,
            BreakerOpen { .. } => Fault::Origin,
            Io { .. } => Fault::Server,
        }
    }

    fn retryable(&self) -> bool {
        use OriginError::*;
        match self {
            Timeout { .. } | Network { .. } | BreakerOpen { .. } => true,
            Upstream { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<u32> {
        match self {
            OriginError::BreakerOpen { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What one attempt on one source ended with (named into an [`OriginError`] by the caller).
#[derive(Debug)]
pub(crate) enum SourceError {
    NotFound,
    BadPath(&'static str),
    TooLarge(Option<u64>),
    Timeout(Duration),
    Upstream(u16),
    Auth(u16),
    Network(String),
    Io(String),
}

impl SourceError {
    /// Timeouts, connection errors, 5xx and 429 may clear up: retry, count against the
    /// breaker, fall through to the next source.
    pub(super) fn retryable(&self) -> bool {
        match self {
            SourceError::Timeout(_) | SourceError::Network(_) => true,
            SourceError::Upstream(s) => *s == 429 || *s >= 500,
            _ => false,
        }
    }

    pub(super) fn outcome(&self) -> &'static str {
        match self {
            SourceError::NotFound => "not_found",
            SourceError::Timeout(_) => "timeout",
            SourceError::TooLarge(_) => "too_large",
            _ => "error",
        }
    }

    pub(super) fn named(self, origin: &str, source: &str, limit: u64) -> OriginError {
        let (origin, source) = (origin.to_string(), source.to_string());
        match self {
            SourceError::NotFound => OriginError::NotFound { origin },
            SourceError::BadPath(reason) => OriginError::BadPath { reason },
            SourceError::TooLarge(size) => OriginError::TooLarge {
                origin,
                source,
                limit,
                size,
            },
            SourceError::Timeout(after) => OriginError::Timeout {
                origin,
                source,
                after,
            },
            SourceError::Upstream(status) => OriginError::Upstream {
                origin,
                source,
                status,
            },
            SourceError::Auth(status) => OriginError::Auth {
                origin,
                source,
                status,
            },
            SourceError::Network(detail) => OriginError::Network {
                origin,
                source,
                detail,
            },
            SourceError::Io(detail) => OriginError::Io {
                origin,
                source,
                detail,
            },
        }
    }
}
