//! The rendered data-plane config: what a versioned ConfigMap holds and what
//! `vr-dataplane --config FILE` reads (YAML or JSON, the same document).
//!
//! Plain data only. Secrets never appear inline: credentials and tokens are *file paths* (in
//! Kubernetes, mounted Secrets). [`DataPlaneConfig::validate`] checks everything that can be
//! checked without I/O and reports every error at once, each with its path
//! (`origins[0].sources[1].url`), so a user fixes a file in one pass.

use crate::media::{
    parse_bitrate_kbps, parse_fps_milli, parse_time_ms, Compression, Fit, Format, Mode, Preload,
    Quality, DIMENSION_RANGE, IMAGE_COUNT_RANGE,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The complete configuration of one data-plane revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataPlaneConfig {
    /// Revision label of this config (set by the operator; `standalone` when read from a file
    /// without one). Returned in `X-Config-Revision`.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Ordered origin rules: the first whose `matcher` matches the request path serves it.
    pub origins: Vec<Origin>,
    /// Named presets, selected with `?derivative=NAME` (or `impolicy`, `imwidth`, client hints).
    #[serde(default)]
    pub derivatives: BTreeMap<String, Derivative>,
    /// How a derivative is chosen when the request names no size and no derivative.
    #[serde(default)]
    pub responsive: Responsive,
    /// How query parameters are interpreted.
    #[serde(default)]
    pub params: ParamPolicy,
    /// URL signing; when `required`, unsigned or tampered requests get 403.
    #[serde(default)]
    pub signing: Signing,
    /// Input, transform and concurrency limits.
    #[serde(default)]
    pub limits: Limits,
    /// Variant cache layers and lifetimes.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Which request paths are transformed at all.
    #[serde(default)]
    pub passthrough: Passthrough,
    /// Circuit breakers and retries applied to every source.
    #[serde(default)]
    pub resilience: Resilience,
    /// Admin endpoint tokens and audit log.
    #[serde(default)]
    pub admin: Admin,
    /// Debug views (never public unless configured).
    #[serde(default)]
    pub debug: Debug,
}

fn default_revision() -> String {
    "standalone".into()
}

/// One origin rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Origin {
    /// Unique name, used in metrics, cache tags (`video-origin-<name>`) and errors.
    pub name: String,
    /// Regular expression (linear-time syntax: no look-around, no back-references) matched
    /// against the request path. Named groups (`(?P<id>[^/]+)`) become `${id}` in templates;
    /// numbered groups become `${1}`.
    pub matcher: String,
    /// Sources tried in order on not-found and on retryable failure.
    pub sources: Vec<Source>,
    /// Cache lifetimes by response status class for this origin (defaults: `cache.ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlByStatus>,
    /// Extra cache tags added to every variant of this origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_tags: Vec<String>,
    /// What to do when a transform fails: answer with an error, or serve the original
    /// (marked `X-Fallback-Applied`, never cached as the variant).
    #[serde(default)]
    pub on_transform_error: TransformErrorPolicy,
}

/// What to do when a transform fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TransformErrorPolicy {
    /// Answer with a JSON error.
    #[default]
    Error,
    /// Serve the untransformed original, marked `X-Fallback-Applied: true`.
    ServeOriginal,
}

/// A place a source video can be read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Source {
    /// A directory on the data plane's own file system (demos, tests, mounted volumes).
    /// Reads are confined to `root`: `..`, absolute paths, encoded traversal and symlinks
    /// that leave the root are refused.
    Local(LocalSource),
    /// An HTTP(S) origin.
    Http(HttpSource),
    /// An S3 bucket (AWS or any S3-compatible store), read with SigV4.
    S3(S3Source),
}

/// A directory source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalSource {
    /// Unique name within the origin (metrics, breaker, errors).
    pub name: String,
    /// Directory the files live in. Relative paths are relative to the process's working directory.
    pub root: String,
    /// Path template under `root`, e.g. `${name}.${ext}`.
    pub path: String,
}

/// An HTTP(S) source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSource {
    /// Unique name within the origin (metrics, breaker, errors).
    pub name: String,
    /// URL template, e.g. `https://media.example.com/raw/${id}.mp4`. Captures are
    /// percent-encoded as path segments when substituted.
    pub url: String,
    /// Authentication sent to this source (read from a file, i.e. a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// Per-request timeout in seconds for this source (default: `limits.fetchTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// An S3 source: `key` is a template expanded with the matcher's captures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Source {
    /// Unique name within the origin (metrics, breaker, errors).
    pub name: String,
    /// Where the bucket is and how to sign for it.
    #[serde(flatten)]
    pub bucket: S3Bucket,
    /// Object key template, e.g. `raw/${id}.mp4`.
    pub key: String,
    /// Per-request timeout in seconds (default: `limits.fetchTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Presigned URLs handed to ffmpeg (and optionally to clients).
    #[serde(default)]
    pub presign: Presign,
}

/// An S3 bucket and how to reach it (shared by S3 sources and the shared cache layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Bucket {
    /// Bucket name.
    pub bucket: String,
    /// Region used for signing.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Endpoint URL of an S3-compatible store, e.g. `http://minio:9000` (default: AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    #[serde(default)]
    pub force_path_style: bool,
    /// Static credentials read from files (a mounted Secret); when omitted, the default AWS
    /// provider chain (environment, profile, web identity, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3Credentials>,
}

/// Static S3 credentials, each read from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Credentials {
    /// File holding the access key id (trailing whitespace is trimmed).
    pub access_key_id_file: String,
    /// File holding the secret access key.
    pub secret_access_key_file: String,
    /// File holding a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_file: Option<String>,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

/// Presigned-URL settings of an S3 source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Presign {
    /// ffmpeg reads the object through a presigned URL (only the byte ranges it needs)
    /// instead of a downloaded copy.
    #[serde(default = "default_true")]
    pub transform_input: bool,
    /// Originals (passthrough, serve-original fallbacks) are answered with a 302 to a
    /// presigned URL instead of being proxied.
    #[serde(default)]
    pub redirect_originals: bool,
    /// Lifetime of a presigned URL, in seconds (at most one week).
    #[serde(default = "default_presign_lifetime")]
    pub lifetime_seconds: u32,
    /// A cached URL is never handed out within this many seconds of its expiry, and is
    /// refreshed in the background before it gets there.
    #[serde(default = "default_presign_margin")]
    pub safety_margin_seconds: u32,
}

impl Default for Presign {
    fn default() -> Self {
        Presign {
            transform_input: true,
            redirect_originals: false,
            lifetime_seconds: default_presign_lifetime(),
            safety_margin_seconds: default_presign_margin(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_presign_lifetime() -> u32 {
    3600
}
fn default_presign_margin() -> u32 {
    300
}

/// Longest presigned-URL lifetime SigV4 allows (one week).
pub const PRESIGN_MAX_SECONDS: u32 = 7 * 24 * 3600;

/// The shared cache layer: variants stored in an S3 bucket, below memory and disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedCache {
    /// Where the bucket is and how to sign for it.
    #[serde(flatten)]
    pub bucket: S3Bucket,
    /// Key prefix of every object the layer writes (variants, metadata, the tag index).
    #[serde(default = "default_shared_prefix")]
    pub prefix: String,
    /// Timeout of each request to the bucket, in seconds.
    #[serde(default = "default_shared_timeout")]
    pub timeout_seconds: u32,
    /// How often each process looks for purges made through another process, in seconds.
    #[serde(default = "default_purge_poll")]
    pub purge_poll_seconds: u32,
}

fn default_purge_poll() -> u32 {
    2
}

fn default_shared_prefix() -> String {
    "video-resizer/".into()
}
fn default_shared_timeout() -> u32 {
    10
}

/// Authentication for an HTTP source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>` with the token read from `tokenFile`.
    #[serde(rename_all = "camelCase")]
    Bearer {
        /// File holding the token (trailing whitespace is trimmed).
        token_file: String,
    },
    /// A custom header whose value is read from `valueFile`.
    #[serde(rename_all = "camelCase")]
    Header {
        /// Header name, e.g. `X-Api-Key`.
        name: String,
        /// File holding the header value (trailing whitespace is trimmed).
        value_file: String,
    },
}

/// A named preset. Every field is optional; unset fields fall back to the URL or defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Derivative {
    /// Output width in pixels (10–8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 8192))]
    pub width: Option<u32>,
    /// Output height in pixels (10–8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 8192))]
    pub height: Option<u32>,
    /// Output mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Fit of the output box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// Output format (must suit the mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Quality preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Compression (encoder effort) preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Start time (`5s`, `1m30s`, `90`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub time: Option<String>,
    /// Clip duration (`5s`, `1m30s`, `90`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub duration: Option<String>,
    /// Keep the audio track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// Output frame rate (`30`, `29.97`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub fps: Option<String>,
    /// Target video bitrate (`800k`, `2M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub bitrate: Option<String>,
    /// Number of images in a spritesheet (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub image_count: Option<u32>,
    /// Playback hint `loop`.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_: Option<bool>,
    /// Playback hint `autoplay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoplay: Option<bool>,
    /// Playback hint `muted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// Playback hint `preload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<Preload>,
}

/// Responsive selection of a derivative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Responsive {
    /// Width breakpoints, checked in ascending `maxWidth` order; the last may omit `maxWidth`
    /// (catch-all). Used for `imwidth`/`imheight` and for client-hint widths.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub breakpoints: Vec<Breakpoint>,
    /// Derivative per device class, detected from `Sec-CH-UA-Mobile` or `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_derivatives: Option<DeviceDerivatives>,
    /// Derivative used when `Save-Data: on`, or when `ECT` is `slow-2g`/`2g`/`3g`, or when
    /// `Downlink` is below `slowDownlinkMbps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constrained_network_derivative: Option<String>,
    /// `Downlink` (Mbit/s) below which the network counts as constrained.
    #[serde(default = "default_slow_downlink")]
    pub slow_downlink_mbps: f64,
    /// Derivative used when nothing else chooses one. Without it, such requests are served
    /// as the untransformed original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_derivative: Option<String>,
}

fn default_slow_downlink() -> f64 {
    1.5
}

impl Default for Responsive {
    // Written out (not derived) so an omitted `responsive` block means the same as `{}`.
    fn default() -> Self {
        Responsive {
            breakpoints: Vec::new(),
            device_derivatives: None,
            constrained_network_derivative: None,
            slow_downlink_mbps: default_slow_downlink(),
            default_derivative: None,
        }
    }
}

/// One width breakpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Breakpoint {
    /// Largest width (CSS px × DPR) this breakpoint covers; omit on the last one for "any".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// Derivative chosen for widths up to `maxWidth`.
    pub derivative: String,
}

/// Derivative per device class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceDerivatives {
    /// Derivative for phones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Derivative for tablets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablet: Option<String>,
    /// Derivative for desktops (clients not detected as mobile or tablet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<String>,
}

/// How query parameters are interpreted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamPolicy {
    /// `strict` answers 400 naming every bad parameter; `lenient` drops them and lists them
    /// in `X-Param-Warnings`.
    #[serde(default)]
    pub validation: ValidationMode,
    /// Allow `width`/`height` (and other free-form transform parameters) without a derivative.
    /// When false, only derivatives may be requested — the defence against walking
    /// `width=300,301,302…` to burn CPU.
    #[serde(default = "yes")]
    pub allow_arbitrary: bool,
    /// Parameters a request may set on top of a derivative (others are refused in strict mode
    /// and ignored in lenient mode).
    #[serde(default = "default_overridable")]
    pub derivative_overrides: Vec<String>,
    /// Let `Accept` choose `webm` over `mp4` when the request names no format.
    #[serde(default)]
    pub accept_negotiation: bool,
    /// Query parameters that skip cache reads (the response is still stored).
    #[serde(default = "default_bypass")]
    pub bypass_params: Vec<String>,
}

impl Default for ParamPolicy {
    fn default() -> Self {
        ParamPolicy {
            validation: ValidationMode::Strict,
            allow_arbitrary: true,
            derivative_overrides: default_overridable(),
            accept_negotiation: false,
            bypass_params: default_bypass(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_overridable() -> Vec<String> {
    [
        "time", "duration", "audio", "filename", "loop", "autoplay", "muted", "preload",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn default_bypass() -> Vec<String> {
    vec!["nocache".into(), "bypass".into()]
}

/// Parameters that may appear in `params.derivativeOverrides`.
pub const OVERRIDABLE_PARAMS: &[&str] = &[
    "width",
    "height",
    "mode",
    "fit",
    "format",
    "quality",
    "compression",
    "time",
    "duration",
    "audio",
    "fps",
    "bitrate",
    "imageCount",
    "filename",
    "loop",
    "autoplay",
    "muted",
    "preload",
];

/// Strict or lenient parameter validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValidationMode {
    /// 400 with a JSON body naming every bad parameter.
    #[default]
    Strict,
    /// Drop bad parameters and list them in `X-Param-Warnings`.
    Lenient,
}

/// URL signing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signing {
    /// Refuse (403) requests without a valid signature.
    #[serde(default)]
    pub required: bool,
    /// Files each holding one HMAC-SHA256 key (hex or raw bytes); any key verifies, the first
    /// signs. List several to rotate keys without downtime.
    #[serde(default)]
    pub key_files: Vec<String>,
}

/// Limits that bound every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Largest source size in bytes (checked with HEAD/stat before fetching, and while fetching).
    #[serde(default = "default_max_input")]
    pub max_input_bytes: u64,
    /// What to do with a source over `maxInputBytes`.
    #[serde(default)]
    pub oversize: OversizePolicy,
    /// Longest source duration accepted, in seconds.
    #[serde(default = "default_max_duration")]
    pub max_duration_seconds: u32,
    /// Largest source frame (width × height) accepted.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Most streams a source may have.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Bytes ffprobe/ffmpeg may read to detect the format.
    #[serde(default = "default_probe_size")]
    pub probe_size_bytes: u64,
    /// Concurrent transforms (ffmpeg processes); 0 = number of CPUs.
    #[serde(default)]
    pub max_concurrent_transforms: u32,
    /// Transforms that may wait for a slot; past it, requests get 503 with `Retry-After`.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
    /// Longest a request may wait in the queue before 503, in seconds.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout_seconds: u32,
    /// Wall-clock limit of one transform, in seconds; past it the ffmpeg process group is killed.
    #[serde(default = "default_transform_timeout")]
    pub transform_timeout_seconds: u32,
    /// Per-request timeout for fetching from a source, in seconds.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u32,
    /// Encoder threads per ffmpeg process.
    #[serde(default = "default_threads")]
    pub ffmpeg_threads: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: default_max_input(),
            oversize: OversizePolicy::default(),
            max_duration_seconds: default_max_duration(),
            max_pixels: default_max_pixels(),
            max_streams: default_max_streams(),
            probe_size_bytes: default_probe_size(),
            max_concurrent_transforms: 0,
            queue_depth: default_queue_depth(),
            queue_timeout_seconds: default_queue_timeout(),
            transform_timeout_seconds: default_transform_timeout(),
            fetch_timeout_seconds: default_fetch_timeout(),
            ffmpeg_threads: default_threads(),
        }
    }
}

fn default_max_input() -> u64 {
    1 << 30
}
fn default_max_duration() -> u32 {
    3600
}
fn default_max_pixels() -> u64 {
    8192 * 4320
}
fn default_max_streams() -> u32 {
    16
}
fn default_probe_size() -> u64 {
    5 << 20
}
fn default_queue_depth() -> u32 {
    16
}
fn default_queue_timeout() -> u32 {
    30
}
fn default_transform_timeout() -> u32 {
    300
}
fn default_fetch_timeout() -> u32 {
    30
}
fn default_threads() -> u32 {
    2
}

/// What to do with a source over the size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OversizePolicy {
    /// 413 with a JSON error.
    #[default]
    Reject,
    /// Serve the original untransformed, marked `X-Fallback-Applied`.
    ServeOriginal,
}

/// Cache lifetimes by response status class, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtlByStatus {
    /// 2xx.
    #[serde(default = "ttl_ok")]
    pub ok: u32,
    /// 3xx.
    #[serde(default = "ttl_redirects")]
    pub redirects: u32,
    /// 4xx.
    #[serde(default = "ttl_client_error")]
    pub client_error: u32,
    /// 5xx.
    #[serde(default = "ttl_server_error")]
    pub server_error: u32,
}

impl Default for TtlByStatus {
    fn default() -> Self {
        TtlByStatus {
            ok: ttl_ok(),
            redirects: ttl_redirects(),
            client_error: ttl_client_error(),
            server_error: ttl_server_error(),
        }
    }
}

impl TtlByStatus {
    /// The lifetime for a status code.
    pub fn for_status(&self, status: u16) -> u32 {
        match status {
            200..=299 => self.ok,
            300..=399 => self.redirects,
            400..=499 => self.client_error,
            _ => self.server_error,
        }
    }
}

fn ttl_ok() -> u32 {
    86_400
}
fn ttl_redirects() -> u32 {
    3_600
}
fn ttl_client_error() -> u32 {
    60
}
fn ttl_server_error() -> u32 {
    10
}

/// Variant cache configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    /// Default lifetimes by status class (an origin's `ttl` overrides them).
    #[serde(default)]
    pub ttl: TtlByStatus,
    /// In-memory layer.
    #[serde(default)]
    pub memory: MemoryCache,
    /// On-disk layer (off when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskCache>,
    /// Shared layer in an S3 bucket, below memory and disk (off when omitted). Not part of
    /// the CRD's `spec.cache` (whose credentials are Secret references): the CRD has
    /// `spec.sharedCache`, which the renderer maps here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub shared: Option<SharedCache>,
    /// Prefix of generated cache tags.
    #[serde(default = "default_tag_prefix")]
    pub tag_prefix: String,
    /// How long a source's validator (ETag, Last-Modified, size) is trusted before it is
    /// checked again, in seconds. Cache hits within this window cost no origin request.
    #[serde(default = "default_revalidate")]
    pub source_revalidate_seconds: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: TtlByStatus::default(),
            memory: MemoryCache::default(),
            disk: None,
            shared: None,
            tag_prefix: default_tag_prefix(),
            source_revalidate_seconds: default_revalidate(),
        }
    }
}

fn default_tag_prefix() -> String {
    "video-".into()
}
fn default_revalidate() -> u32 {
    30
}

/// In-memory cache layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryCache {
    /// Total bytes held (0 disables the layer).
    #[serde(default = "default_memory_bytes")]
    pub max_bytes: u64,
    /// Largest single object held in memory (larger ones live on disk only).
    #[serde(default = "default_memory_object")]
    pub max_object_bytes: u64,
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache {
            max_bytes: default_memory_bytes(),
            max_object_bytes: default_memory_object(),
        }
    }
}

fn default_memory_bytes() -> u64 {
    256 << 20
}
fn default_memory_object() -> u64 {
    32 << 20
}

/// On-disk cache layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskCache {
    /// Directory for cached variants (created if missing).
    pub path: String,
    /// Total bytes held; least recently used objects are evicted past it.
    #[serde(default = "default_disk_bytes")]
    pub max_bytes: u64,
}

fn default_disk_bytes() -> u64 {
    10 << 30
}

/// Which paths are transformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Passthrough {
    /// Extensions (lower case, no dot) that are treated as video and transformed; any other
    /// matched path is served untransformed.
    #[serde(default = "default_video_extensions")]
    pub video_extensions: Vec<String>,
}

impl Default for Passthrough {
    fn default() -> Self {
        Passthrough {
            video_extensions: default_video_extensions(),
        }
    }
}

fn default_video_extensions() -> Vec<String> {
    ["mp4", "m4v", "mov", "webm", "mkv"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Circuit breaker and retry policy applied per source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resilience {
    /// Failures within `windowSeconds` that open a source's breaker.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Window in which failures are counted, in seconds.
    #[serde(default = "default_window")]
    pub window_seconds: u32,
    /// How long an open breaker skips the source before one half-open probe, in seconds.
    #[serde(default = "default_open")]
    pub open_seconds: u32,
    /// Attempts per source for a retryable failure (1 = no retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Base delay of the exponential backoff, in milliseconds (full jitter is applied).
    #[serde(default = "default_base_delay")]
    pub base_delay_ms: u32,
    /// Largest backoff delay, in milliseconds.
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u32,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            failure_threshold: default_failure_threshold(),
            window_seconds: default_window(),
            open_seconds: default_open(),
            attempts: default_attempts(),
            base_delay_ms: default_base_delay(),
            max_delay_ms: default_max_delay(),
        }
    }
}

fn default_failure_threshold() -> u32 {
    5
}
fn default_window() -> u32 {
    30
}
fn default_open() -> u32 {
    10
}
fn default_attempts() -> u32 {
    3
}
fn default_base_delay() -> u32 {
    100
}
fn default_max_delay() -> u32 {
    2_000
}

/// Admin API configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Admin {
    /// Bearer tokens accepted by the admin port, each with its scopes.
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
}

/// One admin token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminToken {
    /// Who holds the token (written to the audit log).
    pub name: String,
    /// File holding the token (a mounted Secret); at least 16 bytes.
    pub token_file: String,
    /// What the token may do.
    pub scopes: Vec<Scope>,
}

/// Admin token scopes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Read stats, health details and the active config.
    Read,
    /// Purge cache entries.
    Purge,
    /// Start prewarm jobs.
    Prewarm,
    /// Everything.
    Admin,
}

/// Debug views.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Debug {
    /// Networks (CIDR) whose clients may use `?debug` (which is never cached).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// Largest config document accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;

/// One validation problem, located by a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path such as `origins[0].sources[1].url`.
    pub path: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Why a config document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The document is larger than [`MAX_CONFIG_BYTES`].
    #[error("config is {0} bytes; the limit is {MAX_CONFIG_BYTES}")]
    TooLarge(usize),
    /// The document is not valid YAML/JSON for the schema (the message names the field).
    #[error("config does not parse: {0}")]
    Parse(String),
    /// The document parses but breaks rules (every one is listed).
    #[error("config is invalid:\n{0}")]
    Invalid(ValidationErrors),
}

impl DataPlaneConfig {
    /// Parses a YAML (or JSON) document and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(text.len()));
        }
        let cfg: DataPlaneConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Checks every rule that needs no I/O and returns all violations at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        validate_name(&self.revision, "revision", &mut errs);
        if self.origins.is_empty() {
            errs.push("origins", "at least one origin is required");
        }
        let mut origin_names = BTreeSet::new();
        for (i, o) in self.origins.iter().enumerate() {
            let p = format!("origins[{i}]");
            validate_name(&o.name, &format!("{p}.name"), &mut errs);
            if !origin_names.insert(o.name.as_str()) {
                errs.push(
                    format!("{p}.name"),
                    format!("duplicate origin name {:?}", o.name),
                );
            }
            let captures = match validate_regex(&o.matcher) {
                Ok(c) => Some(c),
                Err(m) => {
                    errs.push(format!("{p}.matcher"), m);
                    None
                }
            };
            if o.sources.is_empty() {
                errs.push(format!("{p}.sources"), "at least one source is required");
            }
            let mut source_names = BTreeSet::new();
            for (j, s) in o.sources.iter().enumerate() {
                let sp = format!("{p}.sources[{j}]");
                let name = s.name();
                validate_name(name, &format!("{sp}.name"), &mut errs);
                if !source_names.insert(name) {
                    errs.push(
                        format!("{sp}.name"),
                        format!("duplicate source name {name:?}"),
                    );
                }
                match s {
                    Source::Local(l) => {
                        if l.root.trim().is_empty() {
                            errs.push(format!("{sp}.root"), "must not be empty");
                        }
                        validate_template(
                            &l.path,
                            captures.as_ref(),
                            &format!("{sp}.path"),
                            &mut errs,
                        );
                    }
                    Source::S3(s3) => {
                        validate_template(
                            &s3.key,
                            captures.as_ref(),
                            &format!("{sp}.key"),
                            &mut errs,
                        );
                        validate_s3_bucket(&s3.bucket, &sp, &mut errs);
                        if let Some(t) = s3.timeout_seconds {
                            if t == 0 || t > 3600 {
                                errs.push(
                                    format!("{sp}.timeoutSeconds"),
                                    "must be between 1 and 3600",
                                );
                            }
                        }
                        let pr = &s3.presign;
                        if pr.lifetime_seconds == 0 || pr.lifetime_seconds > PRESIGN_MAX_SECONDS {
                            errs.push(
                                format!("{sp}.presign.lifetimeSeconds"),
                                format!("must be between 1 and {PRESIGN_MAX_SECONDS} (one week)"),
                            );
                        } else if pr.safety_margin_seconds >= pr.lifetime_seconds {
                            errs.push(
                                format!("{sp}.presign.safetyMarginSeconds"),
                                "must be less than presign.lifetimeSeconds",
                            );
                        }
                    }
                    Source::Http(h) => {
                        validate_template(
                            &h.url,
                            captures.as_ref(),
                            &format!("{sp}.url"),
                            &mut errs,
                        );
                        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                            errs.push(format!("{sp}.url"), "must start with http:// or https://");
                        } else if h.url.split("://").nth(1).is_none_or(|r| {
                            r.starts_with('$') || r.starts_with('/') || r.is_empty()
                        }) {
                            errs.push(
                                format!("{sp}.url"),
                                "the host must be literal (captures may only appear in the path)",
                            );
                        }
                        if let Some(t) = h.timeout_seconds {
                            if t == 0 || t > 3600 {
                                errs.push(
                                    format!("{sp}.timeoutSeconds"),
                                    "must be between 1 and 3600",
                                );
                            }
                        }
                        match &h.auth {
                            Some(HttpAuth::Bearer { token_file })
                                if token_file.trim().is_empty() =>
                            {
                                errs.push(format!("{sp}.auth.tokenFile"), "must not be empty");
                            }
                            Some(HttpAuth::Header { name, value_file }) => {
                                if http_header_name_ok(name) {
                                    if is_hop_or_reserved_header(name) {
                                        errs.push(
                                            format!("{sp}.auth.name"),
                                            format!("{name:?} cannot be used as an auth header"),
                                        );
                                    }
                                } else {
                                    errs.push(
                                        format!("{sp}.auth.name"),
                                        "must be a valid HTTP header name",
                                    );
                                }
                                if value_file.trim().is_empty() {
                                    errs.push(format!("{sp}.auth.valueFile"), "must not be empty");
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            if let Some(t) = &o.ttl {
                validate_ttl(t, &format!("{p}.ttl"), &mut errs);
            }
            for (k, tag) in o.cache_tags.iter().enumerate() {
                if !tag_ok(tag) {
                    errs.push(
                        format!("{p}.cacheTags[{k}]"),
                        "tags use letters, digits, '-', '_', '.', ':' (1–128 characters)",
                    );
                }
            }
        }

        for (name, d) in &self.derivatives {
            let p = format!("derivatives.{name}");
            validate_name(name, &p, &mut errs);
            validate_derivative(d, &p, &mut errs);
        }

        let r = &self.responsive;
        let known = |n: &str| self.derivatives.contains_key(n);
        let mut last_max: Option<u32> = None;
        for (i, b) in r.breakpoints.iter().enumerate() {
            let p = format!("responsive.breakpoints[{i}]");
            if !known(&b.derivative) {
                errs.push(
                    format!("{p}.derivative"),
                    format!("unknown derivative {:?}", b.derivative),
                );
            }
            match b.max_width {
                Some(w) => {
                    if w == 0 {
                        errs.push(format!("{p}.maxWidth"), "must be positive");
                    }
                    if last_max.is_some_and(|l| w <= l) {
                        errs.push(
                            format!("{p}.maxWidth"),
                            "breakpoints must be in ascending maxWidth order",
                        );
                    }
                    last_max = Some(w);
                }
                None if i + 1 != r.breakpoints.len() => {
                    errs.push(
                        format!("{p}.maxWidth"),
                        "only the last breakpoint may omit maxWidth",
                    );
                }
                None => {}
            }
        }
        if let Some(dd) = &r.device_derivatives {
            for (field, v) in [
                ("mobile", &dd.mobile),
                ("tablet", &dd.tablet),
                ("desktop", &dd.desktop),
            ] {
                if let Some(n) = v {
                    if !known(n) {
                        errs.push(
                            format!("responsive.deviceDerivatives.{field}"),
                            format!("unknown derivative {n:?}"),
                        );
                    }
                }
            }
        }
        for (field, v) in [
            (
                "constrainedNetworkDerivative",
                &r.constrained_network_derivative,
            ),
            ("defaultDerivative", &r.default_derivative),
        ] {
            if let Some(n) = v {
                if !known(n) {
                    errs.push(
                        format!("responsive.{field}"),
                        format!("unknown derivative {n:?}"),
                    );
                }
            }
        }
        if !(r.slow_downlink_mbps.is_finite() && r.slow_downlink_mbps >= 0.0) {
            errs.push(
                "responsive.slowDownlinkMbps",
                "must be a non-negative number",
            );
        }

        for (i, name) in self.params.derivative_overrides.iter().enumerate() {
            if !OVERRIDABLE_PARAMS.contains(&name.as_str()) {
                errs.push(
                    format!("params.derivativeOverrides[{i}]"),
                    format!(
                        "unknown parameter {name:?}; expected one of {}",
                        OVERRIDABLE_PARAMS.join(", ")
                    ),
                );
            }
        }
        for (i, name) in self.params.bypass_params.iter().enumerate() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errs.push(
                    format!("params.bypassParams[{i}]"),
                    "must be a plain parameter name",
                );
            }
        }

        if self.signing.required && self.signing.key_files.is_empty() {
            errs.push(
                "signing.keyFiles",
                "at least one key file is required when signing.required is true",
            );
        }

        let l = &self.limits;
        let ranges: [(&str, u64, u64, u64); 10] = [
            ("maxInputBytes", l.max_input_bytes, 1, u64::MAX),
            (
                "maxDurationSeconds",
                l.max_duration_seconds.into(),
                1,
                86_400,
            ),
            ("maxPixels", l.max_pixels, 1, 1 << 32),
            ("maxStreams", l.max_streams.into(), 1, 64),
            ("probeSizeBytes", l.probe_size_bytes, 32, 1 << 30),
            (
                "maxConcurrentTransforms",
                l.max_concurrent_transforms.into(),
                0,
                1024,
            ),
            (
                "queueTimeoutSeconds",
                l.queue_timeout_seconds.into(),
                1,
                3600,
            ),
            (
                "transformTimeoutSeconds",
                l.transform_timeout_seconds.into(),
                1,
                86_400,
            ),
            (
                "fetchTimeoutSeconds",
                l.fetch_timeout_seconds.into(),
                1,
                3600,
            ),
            ("ffmpegThreads", l.ffmpeg_threads.into(), 1, 64),
        ];
        for (field, v, lo, hi) in ranges {
            if v < lo || v > hi {
                errs.push(
                    format!("limits.{field}"),
                    format!("must be between {lo} and {hi}"),
                );
            }
        }
        if l.queue_depth > 100_000 {
            errs.push("limits.queueDepth", "must be at most 100000");
        }

        validate_ttl(&self.cache.ttl, "cache.ttl", &mut errs);
        if self.cache.memory.max_object_bytes > self.cache.memory.max_bytes
            && self.cache.memory.max_bytes > 0
        {
            errs.push(
                "cache.memory.maxObjectBytes",
                "must not exceed cache.memory.maxBytes",
            );
        }
        if let Some(d) = &self.cache.disk {
            if d.path.trim().is_empty() {
                errs.push("cache.disk.path", "must not be empty");
            }
            if d.max_bytes == 0 {
                errs.push("cache.disk.maxBytes", "must be positive");
            }
        }
        if let Some(sh) = &self.cache.shared {
            validate_s3_bucket(&sh.bucket, "cache.shared", &mut errs);
            let prefix_ok = sh.prefix.is_empty()
                || (sh.prefix.ends_with('/')
                    && !sh.prefix.starts_with('/')
                    && sh.prefix.split('/').all(|seg| seg != ".." && seg != ".")
                    && sh.prefix.len() <= 256);
            if !prefix_ok {
                errs.push(
                    "cache.shared.prefix",
                    "must be empty or a relative key prefix ending in '/' (no '.' or '..' segments)",
                );
            }
            if sh.timeout_seconds == 0 || sh.timeout_seconds > 600 {
                errs.push("cache.shared.timeoutSeconds", "must be between 1 and 600");
            }
            if sh.purge_poll_seconds == 0 || sh.purge_poll_seconds > 3600 {
                errs.push(
                    "cache.shared.purgePollSeconds",
                    "must be between 1 and 3600",
                );
            }
        }
        if !tag_ok(&format!("{}x", self.cache.tag_prefix)) {
            errs.push(
                "cache.tagPrefix",
                "tags use letters, digits, '-', '_', '.', ':'",
            );
        }

        for (i, ext) in self.passthrough.video_extensions.iter().enumerate() {
            if ext.is_empty()
                || ext.len() > 8
                || !ext
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                errs.push(
                    format!("passthrough.videoExtensions[{i}]"),
                    "lower-case letters and digits, no dot, at most 8",
                );
            }
        }

        let rs = &self.resilience;
        if rs.failure_threshold == 0 {
            errs.push("resilience.failureThreshold", "must be at least 1");
        }
        if rs.window_seconds == 0 {
            errs.push("resilience.windowSeconds", "must be at least 1");
        }
        if rs.open_seconds == 0 {
            errs.push("resilience.openSeconds", "must be at least 1");
        }
        if rs.attempts == 0 || rs.attempts > 10 {
            errs.push("resilience.attempts", "must be between 1 and 10");
        }
        if rs.base_delay_ms > rs.max_delay_ms {
            errs.push(
                "resilience.baseDelayMs",
                "must not exceed resilience.maxDelayMs",
            );
        }

        let mut token_names = BTreeSet::new();
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let p = format!("admin.tokens[{i}]");
            validate_name(&t.name, &format!("{p}.name"), &mut errs);
            if !token_names.insert(t.name.as_str()) {
                errs.push(
                    format!("{p}.name"),
                    format!("duplicate token name {:?}", t.name),
                );
            }
            if t.token_file.trim().is_empty() {
                errs.push(format!("{p}.tokenFile"), "must not be empty");
            }
            if t.scopes.is_empty() {
                errs.push(format!("{p}.scopes"), "at least one scope is required");
            }
        }
        for (i, n) in self.debug.allowed_networks.iter().enumerate() {
            if n.parse::<ipnet::IpNet>().is_err() && n.parse::<std::net::IpAddr>().is_err() {
                errs.push(
                    format!("debug.allowedNetworks[{i}]"),
                    format!("{n:?} is not a CIDR such as 10.0.0.0/8"),
                );
            }
        }

        if errs.0.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            Source::Local(l) => &l.name,
            Source::Http(h) => &h.name,
            Source::S3(s) => &s.name,
        }
    }
}

/// Validates a derivative's values (ranges, mode/format compatibility, time syntax).
pub fn validate_derivative(d: &Derivative, p: &str, errs: &mut ValidationErrors) {
    for (field, v) in [("width", d.width), ("height", d.height)] {
        if let Some(v) = v {
            if !DIMENSION_RANGE.contains(&v) {
                errs.push(
                    format!("{p}.{field}"),
                    format!(
                        "must be between {} and {}",
                        DIMENSION_RANGE.start(),
                        DIMENSION_RANGE.end()
                    ),
                );
            }
        }
    }
    let mode = d.mode.unwrap_or(if d.format == Some(Format::M4a) {
        Mode::Audio
    } else {
        Mode::Video
    });
    if let Some(f) = d.format {
        if !mode.accepts(f) {
            errs.push(
                format!("{p}.format"),
                format!(
                    "{f} does not suit mode {mode}; expected one of {}",
                    mode.accepted_formats()
                ),
            );
        }
    }
    if mode == Mode::Audio && d.audio == Some(false) {
        errs.push(format!("{p}.audio"), "must not be false with mode audio");
    }
    for (field, v) in [("time", &d.time), ("duration", &d.duration)] {
        if let Some(v) = v {
            if let Err(m) = parse_time_ms(v) {
                errs.push(format!("{p}.{field}"), m);
            }
        }
    }
    if let Some(fps) = &d.fps {
        if let Err(m) = parse_fps_milli(fps) {
            errs.push(format!("{p}.fps"), m);
        }
    }
    if let Some(b) = &d.bitrate {
        if let Err(m) = parse_bitrate_kbps(b) {
            errs.push(format!("{p}.bitrate"), m);
        }
    }
    if let Some(n) = d.image_count {
        if !IMAGE_COUNT_RANGE.contains(&n) {
            errs.push(
                format!("{p}.imageCount"),
                format!(
                    "must be between {} and {}",
                    IMAGE_COUNT_RANGE.start(),
                    IMAGE_COUNT_RANGE.end()
                ),
            );
        }
    }
}

fn validate_ttl(t: &TtlByStatus, p: &str, errs: &mut ValidationErrors) {
    for (field, v) in [
        ("ok", t.ok),
        ("redirects", t.redirects),
        ("clientError", t.client_error),
        ("serverError", t.server_error),
    ] {
        if v > 31_536_000 {
            errs.push(
                format!("{p}.{field}"),
                "must be at most 31536000 (one year)",
            );
        }
    }
}

/// Names: 1–63 characters of `[a-z0-9-]` (DNS-label-like), since they end up in labels and tags.
fn validate_name(name: &str, path: &str, errs: &mut ValidationErrors) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        errs.push(path, format!("{name:?} must be 1–63 characters of a-z, 0-9, '-' or '.', not starting or ending with '-'"));
    }
}

fn tag_ok(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Largest compiled size of a matcher regex (bounds memory; the engine is linear-time).
pub const MATCHER_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a matcher and returns its capture names (named and numbered).
fn validate_regex(pattern: &str) -> Result<BTreeSet<String>, String> {
    if pattern.len() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(MATCHER_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            format!(
                "does not compile: {}",
                e.to_string().lines().last().unwrap_or("invalid regex")
            )
        })?;
    let mut names = BTreeSet::new();
    for (i, n) in re.capture_names().enumerate() {
        if i == 0 {
            continue;
        }
        names.insert(i.to_string());
        if let Some(n) = n {
            names.insert(n.to_string());
        }
    }
    names.insert("path".into());
    Ok(names)
}

/// Placeholders of a template (`${name}`); a `$` not followed by `{name}` is an error.
pub fn template_placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let Some(body) = after.strip_prefix('{') else {
            return Err("'$' must start a placeholder such as ${name}".into());
        };
        let end = body.find('}').ok_or("unclosed placeholder: missing '}'")?;
        let name = &body[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid placeholder name {name:?}"));
        }
        out.push(name);
        rest = &body[end + 1..];
    }
    Ok(out)
}

/// Checks a bucket block; `p` is the path of the block's parent (fields are flattened into it).
fn validate_s3_bucket(b: &S3Bucket, p: &str, errs: &mut ValidationErrors) {
    let name_ok = (3..=63).contains(&b.bucket.len())
        && b.bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !b.bucket.starts_with(['-', '.'])
        && !b.bucket.ends_with(['-', '.']);
    if !name_ok {
        errs.push(
            format!("{p}.bucket"),
            "must be a bucket name: 3–63 lower-case letters, digits, '-' and '.'",
        );
    }
    if b.region.trim().is_empty() {
        errs.push(format!("{p}.region"), "must not be empty");
    }
    if let Some(e) = &b.endpoint {
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['@', '?', '#']) => {}
            _ => errs.push(
                format!("{p}.endpoint"),
                "must be an http:// or https:// URL with a host and no credentials",
            ),
        }
    }
    if let Some(c) = &b.credentials {
        if c.access_key_id_file.trim().is_empty() {
            errs.push(
                format!("{p}.credentials.accessKeyIdFile"),
                "must not be empty",
            );
        }
        if c.secret_access_key_file.trim().is_empty() {
            errs.push(
                format!("{p}.credentials.secretAccessKeyFile"),
                "must not be empty",
            );
        }
        if c.session_token_file
            .as_ref()
            .is_some_and(|f| f.trim().is_empty())
        {
            errs.push(
                format!("{p}.credentials.sessionTokenFile"),
                "must not be empty when set",
            );
        }
    }
}

fn validate_template(
    template: &str,
    captures: Option<&BTreeSet<String>>,
    path: &str,
    errs: &mut ValidationErrors,
) {
    if template.trim().is_empty() {
        errs.push(path, "must not be empty");
        return;
    }
    match template_placeholders(template) {
        Err(m) => errs.push(path, m),
        Ok(names) => {
            if let Some(caps) = captures {
                for n in names {
                    if !caps.contains(n) {
                        errs.push(path, format!("placeholder ${{{n}}} is not a capture of the origin's matcher (known: {})", caps.iter().cloned().collect::<Vec<_>>().join(", ")));
                    }
                }
            }
        }
    }
}

fn http_header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_hop_or_reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "range",
        "te",
        "upgrade",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_CONFIG: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
    sources:
      - kind: s3
        name: bucket
        bucket: media-raw
        endpoint: http://127.0.0.1:9000
        forcePathStyle: true
        key: 'raw/${name}.mp4'
        credentials:
          accessKeyIdFile: /secrets/s3/id
          secretAccessKeyFile: /secrets/s3/secret
cache:
  shared:
    bucket: variants
    endpoint: http://127.0.0.1:9000
    forcePathStyle: true
"#;

    #[test]
    fn an_s3_source_and_a_shared_cache_parse_with_their_defaults() {
        let cfg = DataPlaneConfig::from_yaml(S3_CONFIG).expect("valid");
        let Source::S3(s) = &cfg.origins[0].sources[0] else {
            panic!("not an s3 source");
        };
        assert_eq!(s.bucket.bucket, "media-raw");
        assert_eq!(s.bucket.region, "us-east-1");
        assert!(s.bucket.force_path_style);
        assert_eq!(s.presign, Presign::default());
        let shared = cfg.cache.shared.as_ref().expect("shared layer");
        assert_eq!(shared.prefix, "video-resizer/");
        assert!(shared.bucket.credentials.is_none());
    }

    #[test]
    fn s3_blocks_refuse_unknown_fields() {
        let typo = S3_CONFIG.replace(
            "forcePathStyle: true\n        key",
            "forcePathStyl: true\n        key",
        );
        assert!(DataPlaneConfig::from_yaml(&typo).is_err());
    }

    #[test]
    fn bad_s3_settings_are_reported_with_their_paths() {
        let bad = S3_CONFIG
            .replace("bucket: media-raw", "bucket: Media_Raw")
            .replace("endpoint: http://127.0.0.1:9000\n        force", "endpoint: ftp://x\n        force")
            .replace("'raw/${name}.mp4'", "'raw/${nope}.mp4'\n        presign:\n          lifetimeSeconds: 60\n          safetyMarginSeconds: 60")
            ;
        let Err(ConfigError::Invalid(errs)) = DataPlaneConfig::from_yaml(&bad) else {
            panic!("accepted");
        };
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "origins[0].sources[0].bucket",
            "origins[0].sources[0].endpoint",
            "origins[0].sources[0].key",
            "origins[0].sources[0].presign.safetyMarginSeconds",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
    }

    const MINIMAL: &str = r#"
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.(?P<ext>mp4|webm)$'
    sources:
      - kind: local
        name: disk
        root: examples/media
        path: '${name}.${ext}'
derivatives:
  mobile: { width: 640, height: 360 }
"#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let cfg = DataPlaneConfig::from_yaml(MINIMAL).expect("valid");
        assert_eq!(cfg.revision, "standalone");
        assert_eq!(cfg.params.validation, ValidationMode::Strict);
        assert_eq!(cfg.cache.ttl.ok, 86_400);
        assert_eq!(cfg.cache.ttl.server_error, 10);
    }

    #[test]
    fn an_omitted_responsive_block_means_the_same_as_an_empty_one() {
        let omitted = DataPlaneConfig::from_yaml(MINIMAL).expect("valid");
        let empty =
            DataPlaneConfig::from_yaml(&format!("{MINIMAL}responsive: {{}}\n")).expect("valid");
        assert_eq!(omitted.responsive, empty.responsive);
        assert_eq!(omitted.responsive.slow_downlink_mbps, 1.5);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = MINIMAL.replace("derivatives:", "derivativs:");
        let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("derivativs"), "{err}");
    }

    #[test]
    fn every_error_is_reported_at_once_with_its_path() {
        let text = r#"
origins:
  - name: Videos
    matcher: '^/videos/(?P<name>[a-z'
    sources:
      - kind: http
        name: web
        url: 'ftp://x/${nope}'
derivatives:
  mobile: { width: 5, mode: frame, format: mp4, time: 'soon' }
responsive:
  defaultDerivative: tablet
limits:
  ffmpegThreads: 0
"#;
        let Err(ConfigError::Invalid(errs)) = DataPlaneConfig::from_yaml(text) else {
            panic!("expected validation errors");
        };
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "origins[0].name",
            "origins[0].matcher",
            "origins[0].sources[0].url",
            "derivatives.mobile.width",
            "derivatives.mobile.format",
            "derivatives.mobile.time",
            "responsive.defaultDerivative",
            "limits.ffmpegThreads",
        ] {
            assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
        }
    }

    #[test]
    fn template_placeholders_must_be_captures() {
        let text = MINIMAL.replace("'${name}.${ext}'", "'${name}.${missing}'");
        let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
        assert!(
            err.contains("origins[0].sources[0].path") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn http_host_cannot_come_from_a_capture() {
        let text = MINIMAL.replace(
            "      - kind: local\n        name: disk\n        root: examples/media\n        path: '${name}.${ext}'",
            "      - kind: http\n        name: web\n        url: 'https://${name}/x.mp4'",
        );
        let err = DataPlaneConfig::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("host must be literal"), "{err}");
    }

    #[test]
    fn template_placeholder_syntax() {
        assert_eq!(
            template_placeholders("a/${x}/${y_1}.mp4"),
            Ok(vec!["x", "y_1"])
        );
        assert!(template_placeholders("a/$x").is_err());
        assert!(template_placeholders("a/${x").is_err());
        assert!(template_placeholders("a/${}").is_err());
    }

    #[test]
    fn ttl_by_status_class() {
        let t = TtlByStatus::default();
        assert_eq!(t.for_status(200), 86_400);
        assert_eq!(t.for_status(304), 3_600);
        assert_eq!(t.for_status(404), 60);
        assert_eq!(t.for_status(503), 10);
    }
}
