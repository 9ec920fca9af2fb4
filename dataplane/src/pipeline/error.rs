//! Errors of the pipeline itself (not of a stage), and the boxed error every stage returns.

use crate::error::{Classify, Fault};
use http::StatusCode;
use std::sync::Arc;

/// Errors of the request path itself (not of a stage).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("method {0} is not allowed; use GET or HEAD")]
    Method(String),
    #[error("no origin matches path {0:?}")]
    NoOrigin(String),
    #[error("the data plane has no config loaded yet")]
    NotReady,
    #[error("debug views are not allowed from this address")]
    DebugForbidden,
    #[error("the transform was abandoned")]
    Abandoned,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for RequestError {
    fn status(&self) -> StatusCode {
        match self {
            RequestError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::NoOrigin(_) => StatusCode::NOT_FOUND,
            RequestError::NotReady | RequestError::Abandoned => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::DebugForbidden => StatusCode::FORBIDDEN,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            RequestError::Method(_) => "method_not_allowed",
            RequestError::NoOrigin(_) => "no_origin",
            RequestError::NotReady => "not_ready",
            RequestError::DebugForbidden => "debug_forbidden",
            RequestError::Abandoned => "abandoned",
            RequestError::Internal(_) => "internal",
        }
    }
    fn fault(&self) -> Fault {
        match self {
            RequestError::Method(_) | RequestError::NoOrigin(_) | RequestError::DebugForbidden => {
                Fault::Client
            }
            _ => Fault::Server,
        }
    }
    fn retryable(&self) -> bool {
        matches!(self, RequestError::NotReady | RequestError::Abandoned)
    }
    fn retry_after(&self) -> Option<u32> {
        self.retryable().then_some(1)
    }
}

/// The error of any stage, classified by the stage that failed.
pub(crate) type StageError = Box<dyn Classify + Send + Sync>;

pub(crate) fn boxed<E: Classify + Send + Sync + 'static>(e: E) -> StageError {
    Box::new(e)
}

pub(crate) fn boxed_origin(e: crate::origin::OriginError) -> StageError {
    Box::new(e)
}

/// An error shared by every reader of a flight.
#[derive(Debug)]
pub(crate) struct SharedError(pub(crate) Arc<dyn Classify + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {}

impl Classify for SharedError {
    fn status(&self) -> StatusCode {
        self.0.status()
    }
    fn code(&self) -> &'static str {
        self.0.code()
    }
    fn fault(&self) -> Fault {
        self.0.fault()
    }
    fn retryable(&self) -> bool {
        self.0.retryable()
    }
    fn retry_after(&self) -> Option<u32> {
        self.0.retry_after()
    }
    fn details(&self) -> Option<serde_json::Value> {
        self.0.details()
    }
}
