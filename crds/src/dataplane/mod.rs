//! The rendered data-plane config: what a versioned ConfigMap holds and what
//! `vr-dataplane --config FILE` reads (YAML or JSON, the same document).
//!
//! Plain data only. Secrets never appear inline: credentials and tokens are *file paths* (in
//! Kubernetes, mounted Secrets). [`DataPlaneConfig::validate`] checks everything that can be
//! checked without I/O and reports every error at once, each with its path
//! (`origins[0].sources[1].url`), so a user fixes a file in one pass.

mod cache;
mod defaults;
mod derivatives;
mod limits;
mod operations;
mod origins;
mod params;
mod validate;

pub use cache::{CacheConfig, DiskCache, MemoryCache, SharedCache, TtlByStatus};
pub use derivatives::{Breakpoint, Derivative, DeviceDerivatives, Responsive};
pub use limits::{Limits, OversizePolicy, Passthrough};
pub use operations::{Admin, AdminToken, Debug, Resilience, Scope};
pub use origins::{
    HttpAuth, HttpSource, LocalSource, Origin, Presign, S3Bucket, S3Credentials, S3Source, Source,
    TransformErrorPolicy, PRESIGN_MAX_SECONDS,
};
pub use params::{DisallowedOverride, ParamPolicy, Signing, ValidationMode, OVERRIDABLE_PARAMS};
pub use validate::{template_placeholders, validate_derivative, MATCHER_SIZE_LIMIT};

use defaults::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

#[cfg(test)]
mod tests;
