//! The URL API: query parameters (canonical names and Akamai/IMQuery aliases), derivatives,
//! responsive selection from client hints, strict and lenient validation → a [`Resolved`] request.
//! OWNER: params helper. Contract below; keep these signatures.

use crate::variant::{PlaybackHints, Transform};
use http::HeaderMap;
use vr_crds::DataPlaneConfig;

/// One rejected or ignored parameter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamIssue {
    /// The parameter as the client spelled it (e.g. `w`, `width`).
    pub param: String,
    /// The value received.
    pub value: String,
    /// Why it is wrong, in plain words.
    pub message: String,
}

/// A request's meaning after parsing and resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub transform: Transform,
    /// The derivative applied, if any.
    pub derivative: Option<String>,
    pub hints: PlaybackHints,
    /// Validated download name for `Content-Disposition`.
    pub filename: Option<String>,
    /// Dropped parameters (lenient mode), for `X-Param-Warnings`.
    pub warnings: Vec<ParamIssue>,
    /// Request headers the choice read (for `Vary`), lower-case.
    pub vary: Vec<&'static str>,
    /// A bypass parameter was present: skip cache reads.
    pub bypass: bool,
    /// `debug` was present: never store the response.
    pub debug: bool,
}

/// Parses `query` (the raw query string, without `?`) with the request's headers.
///
/// Strict mode: every bad parameter is returned at once. Lenient mode: bad parameters are
/// dropped and listed in `warnings`. Signature parameters (`sig`, `exp`) are ignored here.
pub fn resolve(
    query: &str,
    headers: &HeaderMap,
    cfg: &DataPlaneConfig,
) -> Result<Resolved, Vec<ParamIssue>> {
    let _ = (query, headers, cfg);
    todo!("params helper")
}
