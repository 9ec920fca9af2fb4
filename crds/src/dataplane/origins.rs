//! Origins and their sources: local directories, HTTP(S) origins and S3 buckets.

use super::defaults::*;
use super::TtlByStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// Longest presigned-URL lifetime SigV4 allows (one week).
pub const PRESIGN_MAX_SECONDS: u32 = 7 * 24 * 3600;

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
