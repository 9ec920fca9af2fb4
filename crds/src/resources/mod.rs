//! The custom resources users write: `VideoResizerConfig` (one data-plane deployment and its
//! config) and `Derivative` (a named preset), group `videoresizer.io`, version `v1alpha1`.
//!
//! The types are shaped for the Kubernetes API, not copied from the data-plane model:
//!
//! * "one of several" is a string `kind`/`type` plus optional blocks and a CEL rule — kube's
//!   schema generation cannot express internally tagged enums;
//! * secrets appear only as `{name, key}` references; [`crate::render`] turns them into the file
//!   paths where the data plane finds them mounted;
//! * every list and string a CEL rule touches is bounded (`maxItems`, `maxLength`) so the
//!   API server's cost estimate stays within budget.
//!
//! Every field carries a doc comment: it becomes the schema `description`, so
//! `kubectl explain vrc.spec.origins` teaches the API. A test walks the generated schema and
//! fails on any property without one.

use crate::dataplane::{
    self, CacheConfig, Debug as DebugViews, Limits, ParamPolicy, Passthrough, Presign, Resilience,
    Responsive, Scope, TransformErrorPolicy, TtlByStatus,
};
use crate::rollout::RolloutSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
mod status;
mod workload;

pub use status::{HeldBack, Phase, VideoResizerConfigStatus};
pub use workload::{
    PodDisruptionBudgetSpec, PullPolicy, ResourceLimits, ResourceRequests, WorkloadResources,
    WorkloadSpec,
};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API version of both resources.
pub const VERSION: &str = "v1alpha1";

/// Desired state of one video-resizer installation: its origins, presets policy, limits and
/// cache, and the data-plane workload that serves it.
// Printer columns repeat `type_ = ".."`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "videoresizer.io",
    version = "v1alpha1",
    kind = "VideoResizerConfig",
    namespaced,
    shortname = "vrc",
    category = "videoresizer",
    status = "VideoResizerConfigStatus",
    derive = "PartialEq",
    doc = "A video-resizer installation: origins, transformation policy, limits, cache and the data-plane workload. The operator renders it, together with the Derivatives that name it, into immutable revision ConfigMaps.",
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.activeRevision",
        description = "Revision serving stable traffic"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Summary of the rollout state"
    ),
    printcolumn(
        name = "Canary",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percentage of traffic sent to the canary revision"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VideoResizerConfigSpec {
    /// Ordered origin rules: the first whose `matcher` matches the request path serves the
    /// request. At least one is required.
    #[schemars(length(min = 1, max = 64))]
    pub origins: Vec<OriginSpec>,
    /// How a derivative is chosen when a request names no size and no derivative
    /// (breakpoints, device classes, constrained networks, a default).
    #[serde(default = "default_responsive")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!has(self.breakpoints) || self.breakpoints.all(b, has(b.maxWidth)) || (self.breakpoints.filter(b, !has(b.maxWidth)).size() == 1 && !has(self.breakpoints[self.breakpoints.size() - 1].maxWidth))",
        "message": "only the last breakpoint may omit maxWidth"
    }]))]
    pub responsive: Responsive,
    /// How query parameters are interpreted (strict or lenient validation, free-form sizes,
    /// which parameters may override a derivative).
    #[serde(default)]
    pub params: ParamPolicy,
    /// Input, transform and concurrency limits that bound every request.
    #[serde(default)]
    pub limits: Limits,
    /// Variant cache layers and lifetimes.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The shared cache layer: variants kept in an S3 bucket below memory and disk, shared by
    /// every data-plane pod (off when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_cache: Option<SharedCacheSpec>,
    /// Which request paths are transformed at all (others are served untransformed).
    #[serde(default)]
    pub passthrough: Passthrough,
    /// Circuit breakers and retries applied to every source.
    #[serde(default)]
    pub resilience: Resilience,
    /// Debug views (`?debug`), allowed only from the listed networks.
    #[serde(default)]
    pub debug: DebugViews,
    /// URL signing: when `required`, unsigned or tampered requests get 403.
    #[serde(default)]
    pub signing: SigningSpec,
    /// Tokens accepted by the data plane's admin port.
    #[serde(default)]
    pub admin: AdminSpec,
    /// How many revision ConfigMaps are kept (the active ones are always kept), so a rollback
    /// needs no re-render.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub revision_history_limit: u32,
    /// The data-plane Deployment, autoscaler and disruption budget.
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// How a new revision reaches all traffic: canary steps, analysis and what to do when the
    /// metrics cannot be read.
    #[serde(default)]
    pub rollout: RolloutSpec,
}

/// What the data plane reads for an absent `responsive` block. `Responsive::default()` is not
/// used: it would set `slowDownlinkMbps` to 0 where an empty block gets the documented 1.5.
fn default_responsive() -> Responsive {
    serde_json::from_value(serde_json::json!({})).unwrap_or_default()
}

fn default_revision_history_limit() -> u32 {
    10
}

/// One origin rule: which paths it serves and where their sources live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginSpec {
    /// Unique name (1–63 of `a-z 0-9 - .`), used in metrics, cache tags and errors.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Regular expression (linear-time syntax: no look-around, no back-references) matched
    /// against the request path. Named groups (`(?P<id>[^/]+)`) become `${id}` in source
    /// templates; numbered groups become `${1}`.
    #[schemars(length(min = 1, max = 1024))]
    pub matcher: String,
    /// Sources tried in order on not-found and on retryable failure.
    #[schemars(length(min = 1, max = 16))]
    pub sources: Vec<SourceSpec>,
    /// Cache lifetimes by response status class for this origin (default: `cache.ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlByStatus>,
    /// Extra cache tags added to every variant of this origin (purge by tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub cache_tags: Vec<String>,
    /// What to do when a transform fails: `error` answers with a JSON error, `serveOriginal`
    /// serves the untransformed source (marked `X-Fallback-Applied`, never cached as the variant).
    #[serde(default)]
    pub on_transform_error: TransformErrorPolicy,
}

/// Where a source video can be read from. Set `kind` and exactly the block it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.kind == 'local' ? (has(self.local) && !has(self.http) && !has(self.s3)) : self.kind == 'http' ? (has(self.http) && !has(self.local) && !has(self.s3)) : (has(self.s3) && !has(self.local) && !has(self.http))",
    "message": "set the block named by kind (local, http or s3), and only that one"
}]))]
pub struct SourceSpec {
    /// Unique name within the origin (1–63 of `a-z 0-9 - .`), used in metrics, breakers and errors.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Kind of source: `local` (a directory in the data-plane pod), `http` (an HTTP(S) origin)
    /// or `s3` (a bucket of AWS S3 or any S3-compatible store).
    pub kind: SourceKind,
    /// Settings of a `local` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSourceSpec>,
    /// Settings of an `http` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSourceSpec>,
    /// Settings of an `s3` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3SourceSpec>,
}

/// Kind of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    /// A directory on the data plane's file system (a mounted volume).
    Local,
    /// An HTTP(S) origin.
    Http,
    /// An S3 bucket.
    S3,
}

/// An S3 bucket and how to reach it: the settings S3 sources and the shared cache layer share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3BucketSpec {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Region used for signing (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. `http://minio.storage:9000` (default: AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    #[serde(default)]
    pub force_path_style: bool,
    /// Static credentials from a Secret; when omitted, the pod's default AWS credentials
    /// (environment, web identity / IRSA, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3CredentialsSpec>,
}

/// An S3 source: one bucket, objects named by a key template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3SourceSpec {
    /// Where the bucket is and how to sign for it.
    #[serde(flatten)]
    pub bucket: S3BucketSpec,
    /// Object key template, e.g. `raw/${id}.mp4`; placeholders must be captures of the
    /// origin's matcher.
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,
    /// Per-request timeout in seconds (default: `limits.fetchTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// Presigned URLs: ffmpeg reads through them (byte ranges only), and optionally clients
    /// are redirected to originals instead of being proxied.
    #[serde(default)]
    pub presign: Presign,
}

/// S3 credentials as Secret references (mounted into the data-plane pods, read from files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSpec {
    /// The Secret key holding the access key id.
    pub access_key_id: SecretKeyRef,
    /// The Secret key holding the secret access key.
    pub secret_access_key: SecretKeyRef,
    /// The Secret key holding a session token (temporary credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretKeyRef>,
}

/// The shared cache layer in an S3 bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedCacheSpec {
    /// Where the bucket is and how to sign for it.
    #[serde(flatten)]
    pub bucket: S3BucketSpec,
    /// Key prefix of everything the layer writes (default `video-resizer/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub prefix: Option<String>,
    /// Timeout of each request to the bucket, in seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
    /// How often each pod looks for purges made through another pod, in seconds (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub purge_poll_seconds: Option<u32>,
}

/// A directory source. Reads are confined to `root`: `..`, absolute paths, encoded traversal
/// and symlinks that leave the root are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSourceSpec {
    /// Directory the files live in, inside the data-plane pod.
    #[schemars(length(min = 1, max = 1024))]
    pub root: String,
    /// Path template under `root`, e.g. `${name}.${ext}`; placeholders must be captures of the
    /// origin's matcher.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
}

/// An HTTP(S) source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSourceSpec {
    /// URL template, e.g. `https://media.example.com/raw/${id}.mp4`. The host must be literal;
    /// captures (percent-encoded as path segments) may appear only in the path.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Per-request timeout in seconds (default: `limits.fetchTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// Credentials sent to this source, read from a Secret mounted into the data-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuthSpec>,
}

/// Credentials for an HTTP source. The secret value never appears in the config: the Secret
/// is mounted and the data plane reads it from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.type == 'header' ? has(self.headerName) : !has(self.headerName)",
    "message": "headerName is required for type header and not allowed for type bearer"
}]))]
pub struct HttpAuthSpec {
    /// `bearer` sends `Authorization: Bearer <secret>`; `header` sends `<headerName>: <secret>`.
    #[serde(rename = "type")]
    pub type_: AuthType,
    /// Header name for type `header`, e.g. `X-Api-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub header_name: Option<String>,
    /// The Secret key holding the token or header value (trailing whitespace is trimmed).
    pub secret_ref: SecretKeyRef,
}

/// How credentials are sent to an HTTP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthType {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// A custom header carrying the secret.
    Header,
}

/// A key of a Secret in the config's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// URL signing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.required || (has(self.keySecretRefs) && self.keySecretRefs.size() > 0)",
    "message": "at least one key is required when signing is required"
}]))]
pub struct SigningSpec {
    /// Refuse (403) requests without a valid signature.
    #[serde(default)]
    pub required: bool,
    /// Secret keys each holding one HMAC-SHA256 key (hex or raw bytes). Any key verifies, the
    /// first signs: list several to rotate keys without downtime.
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub key_secret_refs: Vec<SecretKeyRef>,
    /// Longest a signed URL may stay valid, in seconds (default 604800, 7 days): a URL
    /// without `exp`, or with `exp` further ahead, is refused (403 naming `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31536000))]
    pub max_lifetime_seconds: Option<u64>,
    /// Accept signed URLs without `exp` (they never expire).
    #[serde(default)]
    pub allow_no_expiry: bool,
}

/// Admin API access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    /// Bearer tokens accepted by the admin port, each with its scopes.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub tokens: Vec<AdminTokenSpec>,
}

/// One admin token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminTokenSpec {
    /// Who holds the token (written to the audit log); 1–63 of `a-z 0-9 - .`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The Secret key holding the token (at least 16 bytes).
    pub secret_ref: SecretKeyRef,
    /// What the token may do: `read`, `purge`, `prewarm` or `admin` (everything).
    #[schemars(length(min = 1, max = 4))]
    pub scopes: Vec<Scope>,
}

/// A named preset (`?derivative=mobile`) for one VideoResizerConfig. The Derivative's
/// `metadata.name` is the name requests use.
// Printer columns repeat `type_ = ".."`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "videoresizer.io",
    version = "v1alpha1",
    kind = "Derivative",
    namespaced,
    shortname = "vrd",
    category = "videoresizer",
    status = "DerivativeStatus",
    derive = "PartialEq",
    doc = "A named transformation preset (requested as ?derivative=NAME) for one VideoResizerConfig in the same namespace.",
    printcolumn(
        name = "Config",
        type_ = "string",
        json_path = ".spec.config",
        description = "VideoResizerConfig this preset belongs to"
    ),
    printcolumn(name = "Width", type_ = "integer", json_path = ".spec.width"),
    printcolumn(name = "Height", type_ = "integer", json_path = ".spec.height"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DerivativeSpec {
    /// Name of the VideoResizerConfig (same namespace) this preset belongs to. Immutable, so a
    /// preset never silently moves to another config: delete and recreate it instead.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "config is immutable; delete and recreate the Derivative to move it"
    }]))]
    pub config: String,
    /// The preset itself; unset fields fall back to the request or the defaults.
    #[serde(flatten)]
    pub preset: dataplane::Derivative,
}

/// Observed state of a Derivative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DerivativeStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (`Ready`: the preset is valid and part of the active revision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Both CustomResourceDefinitions as one multi-document YAML stream (VideoResizerConfig first),
/// exactly what `crdgen` prints and what is committed as `crds/videoresizer.io_crds.yaml`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [VideoResizerConfig::crd(), Derivative::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
