//! The steps of [`super::resolve`]: scan the query, keep one occurrence per parameter, the
//! preset a request names, the overrides it may not make, and the responsive choice.

use super::build::leaves_preset_unchanged;
use super::config::CompiledDerivative;
use super::names::{self, Name, Value, COUNT};
use super::MAX_PARAMS;
use super::{
    cut, get, or_none, query, responsive, Base, Occurrence, ParamErrors, ParamIssue, ParamsConfig,
};
use http::HeaderMap;

/// What step 1 found in the query: recognised parameters, and the bypass and debug flags.
pub(super) struct Scan {
    pub(super) found: Vec<(Name, Occurrence)>,
    pub(super) bypass: bool,
    pub(super) debug: bool,
}

/// Step 1: every parameter decoded, looked up and parsed; unknown and bad ones become issues.
/// Refuses a query with more than [`MAX_PARAMS`] parameters.
pub(super) fn scan(
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
pub(super) fn named_base<'c>(
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
/// transform parameters when only derivatives are allowed).
///
/// A parameter that leaves the preset's result unchanged is dropped silently: it overrides
/// nothing. Any other is an issue (`params.onDisallowedOverride: refuse`) or, when the
/// derivative wins, a note in `ignored` that is reported but never refuses the request.
pub(super) fn refuse_overrides(
    base: &Base<'_>,
    chosen: &mut [Option<Occurrence>; COUNT],
    cfg: &ParamsConfig,
    issues: &mut Vec<ParamIssue>,
    ignored: &mut Vec<ParamIssue>,
) {
    let Base::Preset(d) = base else {
        if !cfg.allow_arbitrary {
            for n in Name::ALL.into_iter().filter(|n| n.is_transform()) {
                if let Some(occ) = chosen[n as usize].take() {
                    issues.push(ParamIssue::new(
                        &occ.spelled,
                        &occ.raw,
                        "only derivatives may be requested here (params.allowArbitrary is false)",
                    ));
                }
            }
        }
        return;
    };
    let disallowed: Vec<(Name, Occurrence)> = Name::ALL
        .into_iter()
        .filter(|n| n.is_overridable() && !cfg.overridable[*n as usize])
        .filter_map(|n| chosen[n as usize].take().map(|occ| (n, occ)))
        .collect();
    // Each is judged against what the preset and the allowed parameters produce without it.
    let kept: [Option<Occurrence>; COUNT] = chosen.clone();
    for (n, occ) in disallowed {
        if leaves_preset_unchanged(n, &occ, &kept, &d.values, cfg) {
            continue;
        }
        if cfg.derivative_wins {
            ignored.push(ParamIssue::new(
                &occ.spelled,
                &occ.raw,
                format!(
                    "ignored: derivative {} decides it (params.onDisallowedOverride is derivativeWins)",
                    d.name
                ),
            ));
        } else {
            issues.push(ParamIssue::new(
                &occ.spelled,
                &occ.raw,
                format!(
                    "may not override derivative {}; allowed: {}",
                    d.name,
                    or_none(&cfg.overridable_list)
                ),
            ));
        }
    }
}

/// Step 4: a derivative chosen from client hints, network hints and device class.
pub(super) fn responsive_base<'c>(
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

/// Step 2: per name, canonical spellings beat aliases; within the winning spelling, a second
/// occurrence with a different value is an issue and the first is kept.
pub(super) fn choose_occurrences(
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
