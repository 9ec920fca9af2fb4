//! The URL API: query parameters (canonical names and Akamai/IMQuery aliases), derivatives,
//! responsive selection from client hints, strict and lenient validation → a [`Resolved`] request.
//!
//! The config is compiled once per revision ([`compile`] → [`ParamsConfig`]); [`resolve`] then
//! does bounded work per request: at most [`MAX_QUERY_BYTES`] of query and [`MAX_PARAMS`]
//! parameters, table look-ups and a few header reads.
//!
//! Resolution, in order:
//! 1. Split and decode the query; parse every known parameter's value; unknown names are issues
//!    (`sig`, `exp`, `imref`, `debug` and the configured bypass names are always tolerated).
//! 2. Per parameter, canonical names beat aliases; the same parameter twice with different
//!    values is an issue (the first value is kept).
//! 3. A derivative named by `derivative`/`impolicy`, else picked by `imwidth`/`imheight`
//!    through the breakpoints, is a preset: explicit parameters may only add to it when listed
//!    in `params.derivativeOverrides`. Without a derivative, `params.allowArbitrary=false`
//!    refuses free-form transform parameters.
//! 4. No size and no derivative: the responsive choice (module `responsive`) picks one; next to
//!    other transform parameters it contributes only its width and height. Nothing at all:
//!    [`Transform::Original`].
//! 5. Mode and format are reconciled (`format=m4a` implies `mode=audio`; `Accept` may pick
//!    webm when allowed), and the variant is [`Variant::normalized`].
//!
//! Strict mode turns any issue into [`ParamErrors`] (400, every issue listed); lenient mode
//! drops the offending parameters and returns the issues as `warnings`.

mod config;
mod names;
mod query;
mod responsive;
#[cfg(test)]
mod tests;

pub use config::{compile, ParamsConfig};
pub(crate) use query::{decode as decode_component, encode_into, pairs as query_pairs};

use crate::error::{Classify, Fault};
use crate::request::variant::{PlaybackHints, Transform, Variant};
use config::{CompiledDerivative, Partial};
use http::{HeaderMap, HeaderValue, StatusCode};
use names::{Name, Value, COUNT};
use std::fmt;
use vr_crds::media::{Format, Mode};

/// Longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most parameters accepted in one query.
pub const MAX_PARAMS: usize = 64;
/// Longest parameter name or value echoed back in an issue (longer ones are cut).
const MAX_ECHO: usize = 64;
/// Longest `X-Param-Warnings` value produced.
pub const MAX_WARNINGS_HEADER: usize = 1024;

/// One rejected or ignored parameter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamIssue {
    /// The parameter as the client spelled it (e.g. `w`, `width`), cut to 64 characters.
    pub param: String,
    /// The value received, cut to 64 characters.
    pub value: String,
    /// Why it is wrong, in plain words.
    pub message: String,
}

impl ParamIssue {
    fn new(param: &str, value: &str, message: impl Into<String>) -> Self {
        ParamIssue {
            param: cut(param),
            value: cut(value),
            message: message.into(),
        }
    }
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A request's meaning after parsing and resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub transform: Transform,
    /// The derivative applied, if any (named, picked by `imwidth`, or chosen responsively).
    pub derivative: Option<String>,
    pub hints: PlaybackHints,
    /// Validated download name for `Content-Disposition`.
    pub filename: Option<String>,
    /// Dropped parameters (lenient mode), for `X-Param-Warnings`.
    pub warnings: Vec<ParamIssue>,
    /// Request headers the choice read (for `Vary`), lower-case, each once.
    pub vary: Vec<&'static str>,
    /// A bypass parameter was present: skip cache reads.
    pub bypass: bool,
    /// `debug` was present: never store the response.
    pub debug: bool,
}

/// Every bad parameter of a request (strict mode): 400 `invalid_parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamErrors(pub Vec<ParamIssue>);

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid query parameters: ")?;
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", issue.param, issue.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamErrors {}

impl Classify for ParamErrors {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
    fn code(&self) -> &'static str {
        "invalid_parameters"
    }
    fn fault(&self) -> Fault {
        Fault::Client
    }
    fn details(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.0).ok()
    }
}

/// `X-Param-Warnings` for lenient mode: `param: message; param2: message`.
///
/// Guarantees: printable ASCII only (anything else becomes `?`; `;` and `:` in parameter
/// names too, so the list stays parseable), at most [`MAX_WARNINGS_HEADER`] bytes (a longer
/// list is cut and ends in `...`). `None` when there is nothing to report.
pub fn warnings_header(issues: &[ParamIssue]) -> Option<HeaderValue> {
    if issues.is_empty() {
        return None;
    }
    let mut out = String::new();
    for issue in issues {
        if !out.is_empty() {
            out.push_str("; ");
        }
        for c in issue.param.chars() {
            out.push(if c.is_ascii_graphic() && !matches!(c, ';' | ':' | ',') {
                c
            } else {
                '?'
            });
        }
        out.push_str(": ");
        for c in issue.message.chars() {
            out.push(if c == ' ' || (c.is_ascii_graphic() && c != ';') {
                c
            } else {
                '?'
            });
        }
        if out.len() > MAX_WARNINGS_HEADER {
            break;
        }
    }
    if out.len() > MAX_WARNINGS_HEADER {
        // Only ASCII was pushed, so any byte index is a character boundary.
        out.truncate(MAX_WARNINGS_HEADER - 3);
        out.push_str("...");
    }
    HeaderValue::from_str(&out).ok()
}

/// One occurrence of a known parameter with a valid value.
#[derive(Debug, Clone)]
struct Occurrence {
    spelled: String,
    raw: String,
    alias: bool,
    value: Value,
}

/// How a derivative takes part in the result.
enum Base<'c> {
    /// None: only the request's own parameters.
    None,
    /// A preset named or picked by `imwidth`: all of its values, overrides restricted.
    Preset(&'c CompiledDerivative),
    /// A responsive choice next to other transform parameters: only its size.
    SizeOf(&'c CompiledDerivative),
}

/// Parses `query` (the raw query string, without `?`) with the request's headers.
///
/// Guarantees: bounded work (a query over [`MAX_QUERY_BYTES`] or with more than
/// [`MAX_PARAMS`] parameters is refused in either mode); never panics; the variant is
/// normalized; `vary` names exactly the request headers the choice read.
///
/// Errors: strict mode returns every bad parameter at once. Lenient mode drops bad parameters
/// and lists them in `warnings`. Signature parameters (`sig`, `exp`) are ignored here (see
/// [`crate::guard::signing`]).
pub fn resolve(
    query: &str,
    headers: &HeaderMap,
    cfg: &ParamsConfig,
) -> Result<Resolved, ParamErrors> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParamErrors(vec![ParamIssue::new(
            "query",
            "",
            format!("is {} bytes; the limit is {MAX_QUERY_BYTES}", query.len()),
        )]));
    }
    let mut issues: Vec<ParamIssue> = Vec::new();
    let Scan {
        found,
        bypass,
        debug,
    } = scan(query, cfg, &mut issues)?;

    let mut chosen = choose_occurrences(found, &mut issues);

    // Step 3: a preset named explicitly, else picked by imwidth/imheight.
    let mut base = named_base(&mut chosen, cfg, &mut issues);
    refuse_overrides(&base, &mut chosen, cfg, &mut issues);

    let req = partial_of(&chosen);
    let has_size = req.width.is_some() || req.height.is_some();
    let has_transform = Name::ALL
        .iter()
        .any(|n| n.is_transform() && chosen[*n as usize].is_some());
    let mut vary: Vec<&'static str> = Vec::new();

    // Step 4: responsive choice.
    if matches!(base, Base::None) && !has_size {
        if let Some(d) = responsive_base(&chosen, headers, cfg, &mut vary) {
            base = if has_transform {
                Base::SizeOf(d)
            } else {
                Base::Preset(d)
            };
        }
    }

    let (derivative, preset) = match base {
        Base::None => (None, None),
        Base::Preset(d) => (Some(d.name.clone()), Some(d.values.clone())),
        Base::SizeOf(d) => (Some(d.name.clone()), Some(d.values.size_only())),
    };
    let hints = PlaybackHints {
        loop_: req.loop_.or(preset.as_ref().and_then(|p| p.loop_)),
        autoplay: req.autoplay.or(preset.as_ref().and_then(|p| p.autoplay)),
        muted: req.muted.or(preset.as_ref().and_then(|p| p.muted)),
        preload: req.preload.or(preset.as_ref().and_then(|p| p.preload)),
    };
    let filename = match get(&chosen, Name::Filename) {
        Some(Value::Text(f)) => Some(f.clone()),
        _ => None,
    };

    let transform = match preset {
        None if !has_transform => Transform::Original,
        preset => Transform::Variant(build_variant(
            &req,
            &preset.unwrap_or_default(),
            &chosen,
            headers,
            cfg,
            &mut vary,
            &mut issues,
        )),
    };

    if !cfg.lenient && !issues.is_empty() {
        return Err(ParamErrors(issues));
    }
    Ok(Resolved {
        transform,
        derivative,
        hints,
        filename,
        warnings: issues,
        vary,
        bypass,
        debug,
    })
}

/// What step 1 found in the query: recognised parameters, and the bypass and debug flags.
struct Scan {
    found: Vec<(Name, Occurrence)>,
    bypass: bool,
    debug: bool,
}

/// Step 1: every parameter decoded, looked up and parsed; unknown and bad ones become issues.
/// Refuses a query with more than [`MAX_PARAMS`] parameters.
fn scan(
    query: &str,
    cfg: &ParamsConfig,
    issues: &mut Vec<ParamIssue>,
) -> Result<Scan, ParamErrors> {
    let mut found: Vec<(Name, Occurrence)> = Vec::new();
    let mut bypass = false;
    let mut debug = false;

    for (count, (raw_name, raw_value)) in query::pairs(query).enumerate() {
        if count >= MAX_PARAMS {
            return Err(ParamErrors(vec![ParamIssue::new(
                "query",
                "",
                format!("has more than {MAX_PARAMS} parameters"),
            )]));
        }
        let name = String::from_utf8_lossy(&query::decode(raw_name)).into_owned();
        let Some(spelling) = names::lookup(&name) else {
            match name.as_str() {
                "sig" | "exp" | "imref" => {}
                "debug" => debug = true,
                n if cfg.is_bypass(n) => bypass = true,
                _ => issues.push(ParamIssue::new(
                    &name,
                    &String::from_utf8_lossy(&query::decode(raw_value)),
                    "unknown parameter",
                )),
            }
            continue;
        };
        let Some(value) = query::decode_str(raw_value) else {
            issues.push(ParamIssue::new(
                &name,
                &String::from_utf8_lossy(&query::decode(raw_value)),
                "is not valid UTF-8",
            ));
            continue;
        };
        match names::parse(spelling, &value) {
            Ok(v) => found.push((
                spelling.name,
                Occurrence {
                    spelled: name,
                    raw: value.into_owned(),
                    alias: spelling.alias,
                    value: v,
                },
            )),
            Err(message) => issues.push(ParamIssue::new(&name, &value, message)),
        }
    }
    Ok(Scan {
        found,
        bypass,
        debug,
    })
}

/// Step 3: the preset a request names (`derivative`, `impolicy`), else the breakpoint its
/// `imwidth`/`imheight` falls in.
fn named_base<'c>(
    chosen: &mut [Option<Occurrence>; COUNT],
    cfg: &'c ParamsConfig,
    issues: &mut Vec<ParamIssue>,
) -> Base<'c> {
    let mut base = Base::None;
    if let Some(occ) = chosen[Name::Derivative as usize].take() {
        if let Value::Text(n) = &occ.value {
            match cfg.derivative(n) {
                Some(d) => base = Base::Preset(d),
                None => issues.push(ParamIssue::new(
                    &occ.spelled,
                    &occ.raw,
                    format!(
                        "unknown derivative; expected one of {}",
                        or_none(&cfg.derivative_list)
                    ),
                )),
            }
        }
    }
    let im_width = match (get(chosen, Name::ImWidth), get(chosen, Name::ImHeight)) {
        (Some(Value::U32(w)), _) => Some((Name::ImWidth, *w)),
        // A height alone stands for a 16:9 box of that height.
        (None, Some(Value::U32(h))) => Some((Name::ImHeight, (u64::from(*h) * 16 / 9) as u32)),
        _ => None,
    };
    if let (Base::None, Some((name, w))) = (&base, im_width) {
        match cfg.breakpoint_for(w) {
            Some(d) => base = Base::Preset(d),
            None => {
                if let Some(occ) = &chosen[name as usize] {
                    issues.push(ParamIssue::new(
                        &occ.spelled,
                        &occ.raw,
                        "no responsive breakpoints are configured to pick a derivative",
                    ));
                }
            }
        }
    }
    base
}

/// Drops the parameters a preset may not have overridden (or, without a preset, free-form
/// transform parameters when only derivatives are allowed), each with an issue.
fn refuse_overrides(
    base: &Base<'_>,
    chosen: &mut [Option<Occurrence>; COUNT],
    cfg: &ParamsConfig,
    issues: &mut Vec<ParamIssue>,
) {
    for n in Name::ALL {
        let refused = match base {
            Base::Preset(d) => (n.is_overridable() && !cfg.overridable[n as usize]).then(|| {
                format!(
                    "may not override derivative {}; allowed: {}",
                    d.name,
                    or_none(&cfg.overridable_list)
                )
            }),
            _ => (!cfg.allow_arbitrary && n.is_transform()).then(|| {
                "only derivatives may be requested here (params.allowArbitrary is false)"
                    .to_string()
            }),
        };
        if let Some(message) = refused {
            if let Some(occ) = chosen[n as usize].take() {
                issues.push(ParamIssue::new(&occ.spelled, &occ.raw, message));
            }
        }
    }
}

/// Step 4: a derivative chosen from client hints, network hints and device class.
fn responsive_base<'c>(
    chosen: &[Option<Occurrence>; COUNT],
    headers: &HeaderMap,
    cfg: &'c ParamsConfig,
    vary: &mut Vec<&'static str>,
) -> Option<&'c CompiledDerivative> {
    let f64_of = |n: Name| match get(chosen, n) {
        Some(Value::F64(v)) => Some(*v),
        _ => None,
    };
    let hints = responsive::QueryHints {
        dpr: f64_of(Name::Dpr),
        view_width: match get(chosen, Name::ImViewWidth) {
            Some(Value::U32(v)) => Some(*v),
            _ => None,
        },
        density: f64_of(Name::ImDensity),
    };
    responsive::choose(headers, cfg, hints, vary)
}

fn get(chosen: &[Option<Occurrence>; COUNT], n: Name) -> Option<&Value> {
    chosen[n as usize].as_ref().map(|o| &o.value)
}

fn or_none(list: &str) -> &str {
    if list.is_empty() {
        "(none configured)"
    } else {
        list
    }
}

/// Step 2: per name, canonical spellings beat aliases; within the winning spelling, a second
/// occurrence with a different value is an issue and the first is kept.
fn choose_occurrences(
    found: Vec<(Name, Occurrence)>,
    issues: &mut Vec<ParamIssue>,
) -> [Option<Occurrence>; COUNT] {
    let mut chosen: [Option<Occurrence>; COUNT] = std::array::from_fn(|_| None);
    let has_canonical: [bool; COUNT] = {
        let mut c = [false; COUNT];
        for (n, o) in &found {
            c[*n as usize] |= !o.alias;
        }
        c
    };
    for (n, occ) in found {
        if occ.alias && has_canonical[n as usize] {
            continue;
        }
        match &chosen[n as usize] {
            None => chosen[n as usize] = Some(occ),
            Some(first) if first.value == occ.value => {}
            Some(first) => issues.push(ParamIssue::new(
                &occ.spelled,
                &occ.raw,
                format!(
                    "conflicts with {}={} given earlier; the first value is used",
                    first.spelled,
                    cut(&first.raw)
                ),
            )),
        }
    }
    chosen
}

/// The request's own transform values and hints.
fn partial_of(chosen: &[Option<Occurrence>; COUNT]) -> Partial {
    let v = |n: Name| chosen[n as usize].as_ref().map(|o| &o.value);
    let u32_of = |n| match v(n) {
        Some(Value::U32(x)) => Some(*x),
        _ => None,
    };
    let ms_of = |n| match v(n) {
        Some(Value::Ms(x)) => Some(*x),
        _ => None,
    };
    let bool_of = |n| match v(n) {
        Some(Value::Bool(x)) => Some(*x),
        _ => None,
    };
    Partial {
        width: u32_of(Name::Width),
        height: u32_of(Name::Height),
        mode: match v(Name::Mode) {
            Some(Value::Mode(m)) => Some(*m),
            _ => None,
        },
        fit: match v(Name::Fit) {
            Some(Value::Fit(f)) => Some(*f),
            _ => None,
        },
        format: match v(Name::Format) {
            Some(Value::Format(f)) => Some(*f),
            _ => None,
        },
        quality: match v(Name::Quality) {
            Some(Value::Quality(q)) => Some(*q),
            _ => None,
        },
        compression: match v(Name::Compression) {
            Some(Value::Compression(c)) => Some(*c),
            _ => None,
        },
        time_ms: ms_of(Name::Time),
        duration_ms: ms_of(Name::Duration),
        audio: bool_of(Name::Audio),
        fps_milli: u32_of(Name::Fps),
        bitrate_kbps: u32_of(Name::Bitrate),
        image_count: u32_of(Name::ImageCount),
        loop_: bool_of(Name::Loop),
        autoplay: bool_of(Name::Autoplay),
        muted: bool_of(Name::Muted),
        preload: match v(Name::Preload) {
            Some(Value::Preload(p)) => Some(*p),
            _ => None,
        },
    }
}

/// Step 5: request values over the derivative's, mode and format reconciled, normalized.
fn build_variant(
    req: &Partial,
    base: &Partial,
    chosen: &[Option<Occurrence>; COUNT],
    headers: &HeaderMap,
    cfg: &ParamsConfig,
    vary: &mut Vec<&'static str>,
    issues: &mut Vec<ParamIssue>,
) -> Variant {
    let implied = |p: &Partial| {
        p.mode
            .or((p.format == Some(Format::M4a)).then_some(Mode::Audio))
    };
    let mode = implied(req).or(implied(base)).unwrap_or(Mode::Video);

    let mut format = None;
    if let Some(f) = req.format {
        if mode.accepts(f) {
            format = Some(f);
        } else if let Some(occ) = &chosen[Name::Format as usize] {
            issues.push(ParamIssue::new(
                &occ.spelled,
                &occ.raw,
                format!(
                    "{f} does not suit mode {mode}; expected one of {}",
                    mode.accepted_formats()
                ),
            ));
        }
    }
    let format = format
        .or(base.format.filter(|f| mode.accepts(*f)))
        .or_else(|| {
            let asked = req.format.is_some() || base.format.is_some();
            (cfg.accept_negotiation && !asked && mode == Mode::Video)
                .then(|| negotiate_video_format(headers, vary))
                .flatten()
        });

    let mut audio = req.audio.or(base.audio).unwrap_or(true);
    if mode == Mode::Audio && !audio {
        if let Some(occ) = &chosen[Name::Audio as usize] {
            issues.push(ParamIssue::new(
                &occ.spelled,
                &occ.raw,
                "the audio track cannot be removed with mode audio",
            ));
        }
        audio = true;
    }

    let mut v = Variant::new(mode);
    v.width = req.width.or(base.width);
    v.height = req.height.or(base.height);
    if let Some(fit) = req.fit.or(base.fit) {
        v.fit = fit;
    }
    if let Some(format) = format {
        v.format = format;
    }
    if let Some(q) = req.quality.or(base.quality) {
        v.quality = q;
    }
    if let Some(c) = req.compression.or(base.compression) {
        v.compression = c;
    }
    v.time_ms = req.time_ms.or(base.time_ms);
    v.duration_ms = req.duration_ms.or(base.duration_ms);
    v.audio = audio;
    v.fps_milli = req.fps_milli.or(base.fps_milli);
    v.bitrate_kbps = req.bitrate_kbps.or(base.bitrate_kbps);
    v.image_count = req.image_count.or(base.image_count);
    v.normalized()
}

/// `webm` when `Accept` lists `video/webm` with a non-zero weight; reads (and varies on) `accept`.
fn negotiate_video_format(headers: &HeaderMap, vary: &mut Vec<&'static str>) -> Option<Format> {
    if !vary.contains(&"accept") {
        vary.push("accept");
    }
    let accepts_webm = headers.get_all(http::header::ACCEPT).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .take(32)
            .any(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or("").trim();
                let weight_zero = parts.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .or_else(|| p.strip_prefix("Q="))
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("video/webm") && !weight_zero
            })
    });
    accepts_webm.then_some(Format::Webm)
}
