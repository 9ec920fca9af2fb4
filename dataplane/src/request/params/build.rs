//! From the chosen parameters and a preset to a normalised [`Variant`], with content
//! negotiation of the video format.

use super::config::Partial;
use super::names::{Name, Value, COUNT};
use super::{Occurrence, ParamIssue, ParamsConfig};
use crate::request::variant::{PlaybackHints, Variant};
use http::HeaderMap;
use vr_crds::media::{Format, Mode};

/// The request's own transform values and hints.
pub(super) fn partial_of(chosen: &[Option<Occurrence>; COUNT]) -> Partial {
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

/// Playback hints: the request's over the preset's.
pub(super) fn hints_of(req: &Partial, preset: Option<&Partial>) -> PlaybackHints {
    PlaybackHints {
        loop_: req.loop_.or(preset.and_then(|p| p.loop_)),
        autoplay: req.autoplay.or(preset.and_then(|p| p.autoplay)),
        muted: req.muted.or(preset.and_then(|p| p.muted)),
        preload: req.preload.or(preset.and_then(|p| p.preload)),
    }
}

/// Whether adding `occ` (a parameter of name `n`) to the parameters in `kept`, on top of
/// `preset`, leaves the response as it is: the same normalized variant and the same playback
/// hints, with no new issue. Such a parameter asks for what the derivative already produces
/// (`imformat=h264` on a derivative that makes MP4), so accepting it overrides nothing.
///
/// Never true for `filename` (a derivative sets none) nor for `format` when `Accept` may still
/// choose the preset's format (the answer would then depend on the client's `Accept`).
pub(super) fn leaves_preset_unchanged(
    n: Name,
    occ: &Occurrence,
    kept: &[Option<Occurrence>; COUNT],
    preset: &Partial,
    cfg: &ParamsConfig,
) -> bool {
    if n == Name::Filename
        || (n == Name::Format && cfg.accept_negotiation && preset.format.is_none())
    {
        return false;
    }
    let mut with = kept.clone();
    with[n as usize] = Some(occ.clone());
    let outcome = |chosen: &[Option<Occurrence>; COUNT]| {
        let req = partial_of(chosen);
        let mut vary = Vec::new();
        let mut issues = Vec::new();
        let variant = build_variant(
            &req,
            preset,
            chosen,
            &HeaderMap::new(),
            cfg,
            &mut vary,
            &mut issues,
        );
        (variant, hints_of(&req, Some(preset)), issues.is_empty())
    };
    outcome(&with) == outcome(kept)
}

/// Step 5: request values over the derivative's, mode and format reconciled, normalized.
pub(super) fn build_variant(
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
pub(super) fn negotiate_video_format(
    headers: &HeaderMap,
    vary: &mut Vec<&'static str>,
) -> Option<Format> {
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
