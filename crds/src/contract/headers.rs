//! HTTP response headers the data plane sets (lower case, as `http::HeaderName` wants them)
//! and the CLI and tests read.

/// The config revision (`r<N>`, or `standalone`) that served the request.
pub const CONFIG_REVISION: &str = "x-config-revision";
/// How the answer was produced: `HIT`, `MISS`, `BYPASS`, `COLLAPSED`, `PASS`.
pub const CACHE_STATUS: &str = "x-cache-status";
/// The cache layer a hit came from (`memory`, `disk`, `s3`).
pub const CACHE_LAYER: &str = "x-cache-layer";
/// The request id, accepted from the client or generated.
pub const REQUEST_ID: &str = "x-request-id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Time spent per stage.
pub const SERVER_TIMING: &str = "server-timing";
/// Parameters dropped in lenient mode.
pub const PARAM_WARNINGS: &str = "x-param-warnings";
/// Set when a failed canary answer was replaced by the stable revision's: the canary revision.
pub const CANARY_FALLBACK: &str = "x-canary-fallback";
/// Set when the original was served instead of the variant: why (`oversize`,
/// `transform-error`).
pub const FALLBACK_APPLIED: &str = "x-fallback-applied";
/// The variant's cache tags (purge by tag).
pub const CACHE_TAG: &str = "cache-tag";
/// The derivative a request resolved to.
pub const DERIVATIVE: &str = "x-derivative";
/// Playback hints returned as headers.
pub const PLAYBACK_LOOP: &str = "x-playback-loop";
pub const PLAYBACK_AUTOPLAY: &str = "x-playback-autoplay";
pub const PLAYBACK_MUTED: &str = "x-playback-muted";
pub const PLAYBACK_PRELOAD: &str = "x-playback-preload";
