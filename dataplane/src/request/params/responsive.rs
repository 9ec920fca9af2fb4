//! Responsive choice of a derivative from client hints, network hints and device class, recording every header read for `Vary`.

use super::config::{CompiledDerivative, ParamsConfig};
use super::names::{parse_dpr, parse_layout_px, MAX_LAYOUT_PX};
use http::HeaderMap;

/// Values the query supplies in place of client-hint headers (`im-viewwidth`, `im-density`)
/// and the explicit `dpr` parameter.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct QueryHints {
    pub dpr: Option<f64>,
    pub view_width: Option<u32>,
    pub density: Option<f64>,
}

/// Longest `User-Agent` prefix examined (bounds the work per request).
const MAX_UA_BYTES: usize = 512;

/// Chooses a derivative for a request that names neither a size nor a derivative.
///
/// Order: a constrained network (`Save-Data: on`, `ECT` slow-2g/2g/3g, `Downlink` below the
/// threshold) picks `constrainedNetworkDerivative` first, because it is the client asking for
/// fewer bytes; then the viewport width (`Sec-CH-Viewport-Width`, else `Width`) × DPR against
/// the breakpoints; then the device class (`Sec-CH-UA-Mobile`, then `User-Agent`); then
/// `defaultDerivative`. A mechanism that is not configured reads no header. Every header that
/// was read (present or not) is appended to `vary`, lower-case, once.
pub(super) fn choose<'c>(
    headers: &HeaderMap,
    cfg: &'c ParamsConfig,
    hints: QueryHints,
    vary: &mut Vec<&'static str>,
) -> Option<&'c CompiledDerivative> {
    let mut read = |name: &'static str| read_header(headers, vary, name);

    if let Some(name) = &cfg.constrained {
        let save_data = read("save-data").is_some_and(|v| v.eq_ignore_ascii_case("on"));
        let constrained = save_data
            || read("ect").is_some_and(|v| {
                ["slow-2g", "2g", "3g"]
                    .iter()
                    .any(|e| v.eq_ignore_ascii_case(e))
            })
            || read("downlink")
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|mbps| mbps.is_finite() && mbps < cfg.slow_downlink_mbps);
        if constrained {
            if let Some(d) = cfg.derivative(name) {
                return Some(d);
            }
        }
    }

    if !cfg.breakpoints.is_empty() {
        let viewport = read("sec-ch-viewport-width")
            .and_then(parse_layout_px)
            .or(hints.view_width)
            .or_else(|| read("width").and_then(parse_layout_px));
        if let Some(css_px) = viewport {
            let dpr = match hints.dpr {
                Some(d) => d,
                None => read("sec-ch-dpr")
                    .and_then(parse_dpr)
                    .or(hints.density)
                    .unwrap_or(1.0),
            };
            let px = (f64::from(css_px) * dpr)
                .round()
                .clamp(1.0, f64::from(MAX_LAYOUT_PX) * 8.0) as u32;
            if let Some(d) = cfg.breakpoint_for(px) {
                return Some(d);
            }
        }
    }

    if cfg.mobile.is_some() || cfg.tablet.is_some() || cfg.desktop.is_some() {
        let class = match read("sec-ch-ua-mobile") {
            Some("?1") => Some(Device::Mobile),
            ch => {
                let not_mobile = ch == Some("?0");
                read("user-agent").map(|ua| match classify_user_agent(ua) {
                    Device::Mobile if not_mobile => Device::Desktop,
                    c => c,
                })
            }
        };
        let name = match class {
            Some(Device::Mobile) => cfg.mobile.as_deref(),
            Some(Device::Tablet) => cfg.tablet.as_deref(),
            Some(Device::Desktop) => cfg.desktop.as_deref(),
            None => None,
        };
        if let Some(d) = name.and_then(|n| cfg.derivative(n)) {
            return Some(d);
        }
    }

    cfg.default_derivative
        .as_deref()
        .and_then(|n| cfg.derivative(n))
}

/// Reads a header for the choice: records it in `vary` and returns its trimmed, non-empty text.
fn read_header<'h>(
    headers: &'h HeaderMap,
    vary: &mut Vec<&'static str>,
    name: &'static str,
) -> Option<&'h str> {
    if !vary.contains(&name) {
        vary.push(name);
    }
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A device class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Device {
    Mobile,
    Tablet,
    Desktop,
}

/// Classifies a `User-Agent` by well-known substrings (case-insensitive, first 512 bytes).
pub(super) fn classify_user_agent(ua: &str) -> Device {
    let mut end = ua.len().min(MAX_UA_BYTES);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    let ua = ua[..end].to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| ua.contains(n));
    if has(&["ipad", "tablet", "playbook", "silk", "kindle"])
        || (ua.contains("android") && !ua.contains("mobile"))
    {
        Device::Tablet
    } else if has(&[
        "mobi",
        "iphone",
        "ipod",
        "android",
        "webos",
        "iemobile",
        "opera mini",
        "blackberry",
    ]) {
        Device::Mobile
    } else {
        Device::Desktop
    }
}
