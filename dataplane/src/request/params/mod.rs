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
//!    webm when allowed), and the variant is [`Variant::normalized`](crate::request::variant::Variant::normalized).
//!
//! Strict mode turns any issue into [`ParamErrors`] (400, every issue listed); lenient mode
//! drops the offending parameters and returns the issues as `warnings`.

mod build;
mod config;
mod names;
mod query;
mod responsive;
mod steps;
#[cfg(test)]
mod tests;

pub use config::{compile, ParamsConfig};
pub(crate) use query::{decode as decode_component, encode_into, pairs as query_pairs};

use crate::error::{Classify, Fault};
use crate::request::variant::{PlaybackHints, Transform};
use build::{build_variant, hints_of, partial_of};
use config::CompiledDerivative;
use http::{HeaderMap, HeaderValue, StatusCode};
use names::{Name, Value, COUNT};
use std::fmt;
use steps::{choose_occurrences, named_base, refuse_overrides, responsive_base, scan, Scan};

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
    /// Dropped parameters (lenient mode) and parameters the derivative won over
    /// (`params.onDisallowedOverride: derivativeWins`), for `X-Param-Warnings`.
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

/// `X-Param-Warnings` (lenient mode, or parameters a derivative won over): `param: message; param2: message`.
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
    let mut ignored: Vec<ParamIssue> = Vec::new();
    refuse_overrides(&base, &mut chosen, cfg, &mut issues, &mut ignored);

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
    let hints = hints_of(&req, preset.as_ref());
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
    issues.extend(ignored);
    let mut transform = transform;
    if let (false, Some(_), Transform::Variant(v)) =
        (cfg.allow_arbitrary, &derivative, &mut transform)
    {
        // Without free-form values a client may still override a derivative's time and
        // duration; to whole seconds, so it cannot mint a new variant per millisecond.
        v.time_ms = v.time_ms.map(quantize);
        v.duration_ms = v.duration_ms.map(|d| quantize(d).max(TIME_QUANTUM_MS));
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

/// Step of `time`/`duration` overrides of a derivative when `allowArbitrary` is false.
pub const TIME_QUANTUM_MS: u64 = 1_000;

/// `ms` rounded to the nearest [`TIME_QUANTUM_MS`].
fn quantize(ms: u64) -> u64 {
    ms.saturating_add(TIME_QUANTUM_MS / 2) / TIME_QUANTUM_MS * TIME_QUANTUM_MS
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
