//! Running the data plane: circuit breakers and retries, admin tokens, debug views.

use super::defaults::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
