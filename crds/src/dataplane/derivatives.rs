//! Named presets (derivatives) and the responsive choice of one from client hints.

use super::defaults::*;
use crate::media::{Compression, Fit, Format, Mode, Preload, Quality};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
