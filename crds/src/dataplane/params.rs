//! How query parameters are interpreted, and URL signing.

use super::defaults::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// and ignored in lenient mode). A parameter that asks for what the derivative already
    /// produces (`?imwidth=800&imformat=h264` when the picked derivative makes MP4) is never an
    /// override and is always accepted.
    #[serde(default = "default_overridable")]
    pub derivative_overrides: Vec<String>,
    /// What a parameter that may not override the derivative does: `refuse` (strict mode
    /// answers 400, lenient mode drops it with a warning) or `derivativeWins` (in either mode
    /// the derivative's value is used and the parameter is named in `X-Param-Warnings`, as the
    /// original Worker did, so URLs migrated from Akamai Image & Video Manager keep working).
    #[serde(default)]
    pub on_disallowed_override: DisallowedOverride,
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
            on_disallowed_override: DisallowedOverride::Refuse,
            accept_negotiation: false,
            bypass_params: default_bypass(),
        }
    }
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

/// What a parameter that may not override the derivative does (`params.onDisallowedOverride`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DisallowedOverride {
    /// A client error: 400 in strict mode, dropped with a warning in lenient mode.
    #[default]
    Refuse,
    /// The derivative's value is used; the parameter is ignored and named in
    /// `X-Param-Warnings`, in strict mode too.
    DerivativeWins,
}

/// URL signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signing {
    /// Refuse (403) requests without a valid signature.
    #[serde(default)]
    pub required: bool,
    /// Files each holding one HMAC-SHA256 key (hex or raw bytes); any key verifies, the first
    /// signs. List several to rotate keys without downtime.
    #[serde(default)]
    pub key_files: Vec<String>,
    /// Longest a signed URL may stay valid, in seconds: a URL without `exp`, or whose `exp`
    /// is further ahead than this, is refused (403 `signature_lifetime`, naming `exp`).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_seconds: u64,
    /// Accept signed URLs without `exp` (they never expire; only key rotation revokes them).
    #[serde(default)]
    pub allow_no_expiry: bool,
}

fn default_max_lifetime() -> u64 {
    604_800
}

impl Default for Signing {
    fn default() -> Self {
        Signing {
            required: false,
            key_files: Vec::new(),
            max_lifetime_seconds: default_max_lifetime(),
            allow_no_expiry: false,
        }
    }
}
