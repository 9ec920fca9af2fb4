//! The URL-API part of a config revision, compiled once so that resolving a request only looks things up.

use super::names::{self, Name, COUNT};
use std::collections::HashMap;
use vr_crds::dataplane::{Derivative, DisallowedOverride, ValidationMode};
use vr_crds::media::{
    parse_bitrate_kbps, parse_fps_milli, parse_time_ms, Compression, Fit, Format, Mode, Preload,
    Quality,
};
use vr_crds::DataPlaneConfig;

/// Most derivative names listed in an error message.
const MAX_LISTED: usize = 20;

/// A set of transform values, each optional: a derivative preset or what a request asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Partial {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub mode: Option<Mode>,
    pub fit: Option<Fit>,
    pub format: Option<Format>,
    pub quality: Option<Quality>,
    pub compression: Option<Compression>,
    pub time_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub audio: Option<bool>,
    pub fps_milli: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    pub image_count: Option<u32>,
    pub loop_: Option<bool>,
    pub autoplay: Option<bool>,
    pub muted: Option<bool>,
    pub preload: Option<Preload>,
}

impl Partial {
    fn from_derivative(d: &Derivative) -> Self {
        // The config was validated, so these parse; a value that does not is left unset.
        Partial {
            width: d.width,
            height: d.height,
            mode: d.mode,
            fit: d.fit,
            format: d.format,
            quality: d.quality,
            compression: d.compression,
            time_ms: d.time.as_deref().and_then(|t| parse_time_ms(t).ok()),
            duration_ms: d.duration.as_deref().and_then(|t| parse_time_ms(t).ok()),
            audio: d.audio,
            fps_milli: d.fps.as_deref().and_then(|f| parse_fps_milli(f).ok()),
            bitrate_kbps: d
                .bitrate
                .as_deref()
                .and_then(|b| parse_bitrate_kbps(b).ok()),
            image_count: d.image_count,
            loop_: d.loop_,
            autoplay: d.autoplay,
            muted: d.muted,
            preload: d.preload,
        }
    }

    /// Only the output box (what a responsive choice contributes next to explicit parameters).
    pub(super) fn size_only(&self) -> Self {
        Partial {
            width: self.width,
            height: self.height,
            ..Partial::default()
        }
    }
}

/// A derivative as compiled: its name (for `Resolved::derivative` and cache tags) and its values.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CompiledDerivative {
    pub name: String,
    pub values: Partial,
}

/// The URL API's view of a config revision: derivatives pre-parsed, breakpoints sorted,
/// policy flags and bypass names ready. Build it once per revision with [`compile`].
#[derive(Debug, Clone)]
pub struct ParamsConfig {
    pub(super) lenient: bool,
    pub(super) allow_arbitrary: bool,
    /// Indexed by [`Name`]: whether a request may set it on top of a derivative.
    pub(super) overridable: [bool; COUNT],
    /// The allowed overrides, for error messages.
    pub(super) overridable_list: String,
    /// A disallowed override is ignored (and reported) instead of refused.
    pub(super) derivative_wins: bool,
    pub(super) accept_negotiation: bool,
    pub(super) bypass: Vec<String>,
    pub(super) derivatives: HashMap<String, CompiledDerivative>,
    /// Derivative names, sorted, for error messages.
    pub(super) derivative_list: String,
    /// `(maxWidth, derivative)` in ascending order; `None` (catch-all) last.
    pub(super) breakpoints: Vec<(Option<u32>, String)>,
    pub(super) mobile: Option<String>,
    pub(super) tablet: Option<String>,
    pub(super) desktop: Option<String>,
    pub(super) constrained: Option<String>,
    pub(super) slow_downlink_mbps: f64,
    pub(super) default_derivative: Option<String>,
}

/// Compiles the URL-API part of `cfg`. Assumes `cfg` passed [`DataPlaneConfig::validate`];
/// references to unknown derivatives are then impossible, and are ignored if present.
pub fn compile(cfg: &DataPlaneConfig) -> ParamsConfig {
    let p = &cfg.params;
    let mut overridable = [false; COUNT];
    for name in &p.derivative_overrides {
        if let Some(s) = names::lookup(name).filter(|s| !s.alias && s.name.is_overridable()) {
            overridable[s.name as usize] = true;
        }
    }
    let overridable_list = Name::ALL
        .iter()
        .filter(|n| overridable[**n as usize])
        .map(|n| n.canonical())
        .collect::<Vec<_>>()
        .join(", ");
    let derivatives: HashMap<String, CompiledDerivative> = cfg
        .derivatives
        .iter()
        .map(|(name, d)| {
            (
                name.clone(),
                CompiledDerivative {
                    name: name.clone(),
                    values: Partial::from_derivative(d),
                },
            )
        })
        .collect();
    let mut derivative_list = cfg
        .derivatives
        .keys()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if cfg.derivatives.len() > MAX_LISTED {
        derivative_list.push_str(", ...");
    }
    let known = |n: &Option<String>| n.clone().filter(|n| derivatives.contains_key(n));
    let mut breakpoints: Vec<(Option<u32>, String)> = cfg
        .responsive
        .breakpoints
        .iter()
        .filter(|b| derivatives.contains_key(&b.derivative))
        .map(|b| (b.max_width, b.derivative.clone()))
        .collect();
    breakpoints.sort_by_key(|(max, _)| max.unwrap_or(u32::MAX));
    let r = &cfg.responsive;
    let dd = r.device_derivatives.clone().unwrap_or_default();
    ParamsConfig {
        lenient: p.validation == ValidationMode::Lenient,
        allow_arbitrary: p.allow_arbitrary,
        overridable,
        overridable_list,
        derivative_wins: p.on_disallowed_override == DisallowedOverride::DerivativeWins,
        accept_negotiation: p.accept_negotiation,
        bypass: p.bypass_params.clone(),
        derivative_list,
        breakpoints,
        mobile: known(&dd.mobile),
        tablet: known(&dd.tablet),
        desktop: known(&dd.desktop),
        constrained: known(&r.constrained_network_derivative),
        slow_downlink_mbps: r.slow_downlink_mbps,
        default_derivative: known(&r.default_derivative),
        derivatives,
    }
}

impl ParamsConfig {
    /// The derivative for a width: the first breakpoint with `width ≤ maxWidth` (or without a
    /// `maxWidth`); past every breakpoint, the largest one. `None` without breakpoints.
    ///
    /// Breakpoints name derivatives, whose sizes are validated (≥ 10 px), so this can never
    /// produce a width of 1 as the original's lower-bound bucketing did.
    pub(super) fn breakpoint_for(&self, width: u32) -> Option<&CompiledDerivative> {
        let (_, name) = self
            .breakpoints
            .iter()
            .find(|(max, _)| max.is_none_or(|m| width <= m))
            .or_else(|| self.breakpoints.last())?;
        self.derivatives.get(name)
    }

    /// A configured derivative by name.
    pub(super) fn derivative(&self, name: &str) -> Option<&CompiledDerivative> {
        self.derivatives.get(name)
    }

    /// Whether `name` is a configured bypass parameter.
    pub(super) fn is_bypass(&self, name: &str) -> bool {
        self.bypass.iter().any(|b| b == name)
    }
}
