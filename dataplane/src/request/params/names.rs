//! The parameter vocabulary: canonical names, Akamai/IMQuery aliases, and the parser of each value.

use vr_crds::media::{
    parse_bitrate_kbps, parse_dimension, parse_fps_milli, parse_time_ms, Compression, Fit, Format,
    Mode, Preload, Quality, IMAGE_COUNT_RANGE,
};

/// Every parameter the URL API understands, by meaning (aliases map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name {
    Width,
    Height,
    Fit,
    Mode,
    Time,
    Duration,
    Format,
    Quality,
    Compression,
    Audio,
    Fps,
    Bitrate,
    ImageCount,
    Filename,
    Derivative,
    Loop,
    Autoplay,
    Muted,
    Preload,
    Dpr,
    /// `imwidth`: picks a derivative through the breakpoints.
    ImWidth,
    /// `imheight`: picks a derivative through the breakpoints (as a 16:9 width).
    ImHeight,
    /// `im-viewwidth`: stands in for `Sec-CH-Viewport-Width` when that header is absent.
    ImViewWidth,
    /// `im-viewheight`: accepted for compatibility; viewport height does not steer the choice.
    ImViewHeight,
    /// `im-density`: stands in for `Sec-CH-DPR` when that header is absent.
    ImDensity,
}

/// Number of [`Name`]s (the size of per-name tables).
pub(super) const COUNT: usize = 25;

impl Name {
    /// Every name, in declaration order (`ALL[n as usize] == n`).
    pub(super) const ALL: [Name; COUNT] = [
        Name::Width,
        Name::Height,
        Name::Fit,
        Name::Mode,
        Name::Time,
        Name::Duration,
        Name::Format,
        Name::Quality,
        Name::Compression,
        Name::Audio,
        Name::Fps,
        Name::Bitrate,
        Name::ImageCount,
        Name::Filename,
        Name::Derivative,
        Name::Loop,
        Name::Autoplay,
        Name::Muted,
        Name::Preload,
        Name::Dpr,
        Name::ImWidth,
        Name::ImHeight,
        Name::ImViewWidth,
        Name::ImViewHeight,
        Name::ImDensity,
    ];

    /// The canonical spelling (as in `params.derivativeOverrides`).
    pub(super) fn canonical(self) -> &'static str {
        match self {
            Name::Width => "width",
            Name::Height => "height",
            Name::Fit => "fit",
            Name::Mode => "mode",
            Name::Time => "time",
            Name::Duration => "duration",
            Name::Format => "format",
            Name::Quality => "quality",
            Name::Compression => "compression",
            Name::Audio => "audio",
            Name::Fps => "fps",
            Name::Bitrate => "bitrate",
            Name::ImageCount => "imageCount",
            Name::Filename => "filename",
            Name::Derivative => "derivative",
            Name::Loop => "loop",
            Name::Autoplay => "autoplay",
            Name::Muted => "muted",
            Name::Preload => "preload",
            Name::Dpr => "dpr",
            Name::ImWidth => "imwidth",
            Name::ImHeight => "imheight",
            Name::ImViewWidth => "im-viewwidth",
            Name::ImViewHeight => "im-viewheight",
            Name::ImDensity => "im-density",
        }
    }

    /// Whether the parameter can change the produced bytes (a free-form transform parameter).
    pub(super) fn is_transform(self) -> bool {
        matches!(
            self,
            Name::Width
                | Name::Height
                | Name::Fit
                | Name::Mode
                | Name::Time
                | Name::Duration
                | Name::Format
                | Name::Quality
                | Name::Compression
                | Name::Audio
                | Name::Fps
                | Name::Bitrate
                | Name::ImageCount
        )
    }

    /// Whether setting the parameter next to a derivative counts as overriding it.
    pub(super) fn is_overridable(self) -> bool {
        self.is_transform()
            || matches!(
                self,
                Name::Filename | Name::Loop | Name::Autoplay | Name::Muted | Name::Preload
            )
    }
}

/// How one query name maps onto a [`Name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spelling {
    pub name: Name,
    /// An alias (loses to the canonical name when both are present).
    pub alias: bool,
    /// The boolean value is inverted (`mute=true` means `audio=false`).
    pub invert: bool,
}

/// The meaning of a query parameter name, or `None` for names the URL API does not define.
pub(super) fn lookup(name: &str) -> Option<Spelling> {
    let canonical = |name| Spelling {
        name,
        alias: false,
        invert: false,
    };
    let alias = |name| Spelling {
        name,
        alias: true,
        invert: false,
    };
    Some(match name {
        "width" => canonical(Name::Width),
        "height" => canonical(Name::Height),
        "fit" => canonical(Name::Fit),
        "mode" => canonical(Name::Mode),
        "time" => canonical(Name::Time),
        "duration" => canonical(Name::Duration),
        "format" => canonical(Name::Format),
        "quality" => canonical(Name::Quality),
        "compression" => canonical(Name::Compression),
        "audio" => canonical(Name::Audio),
        "fps" => canonical(Name::Fps),
        "bitrate" => canonical(Name::Bitrate),
        "imageCount" => canonical(Name::ImageCount),
        "filename" => canonical(Name::Filename),
        "derivative" => canonical(Name::Derivative),
        "loop" => canonical(Name::Loop),
        "autoplay" => canonical(Name::Autoplay),
        "muted" => canonical(Name::Muted),
        "preload" => canonical(Name::Preload),
        "dpr" => canonical(Name::Dpr),
        "imwidth" => canonical(Name::ImWidth),
        "imheight" => canonical(Name::ImHeight),
        "im-viewwidth" => canonical(Name::ImViewWidth),
        "im-viewheight" => canonical(Name::ImViewHeight),
        "im-density" => canonical(Name::ImDensity),
        "w" => alias(Name::Width),
        "h" => alias(Name::Height),
        "q" => alias(Name::Quality),
        "f" | "imformat" => alias(Name::Format),
        "obj-fit" => alias(Name::Fit),
        "start" => alias(Name::Time),
        "dur" => alias(Name::Duration),
        "impolicy" => alias(Name::Derivative),
        "imdensity" => alias(Name::Dpr),
        "mute" => Spelling {
            name: Name::Audio,
            alias: true,
            invert: true,
        },
        _ => return None,
    })
}

/// A parsed parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    U32(u32),
    Ms(u64),
    F64(f64),
    Bool(bool),
    Fit(Fit),
    Mode(Mode),
    Format(Format),
    Quality(Quality),
    Compression(Compression),
    Preload(Preload),
    Text(String),
}

/// Largest device pixel ratio accepted (`dpr`, `im-density`, `Sec-CH-DPR`).
pub(super) const MAX_DPR: f64 = 8.0;
/// Largest layout width accepted in `imwidth`, `imheight`, `im-viewwidth` and width hints.
pub(super) const MAX_LAYOUT_PX: u32 = 100_000;
/// Longest accepted `filename`.
pub(super) const MAX_FILENAME: usize = 120;

/// Parses the value of `name`. Errors are plain words for the client.
pub(super) fn parse(s: Spelling, raw: &str) -> Result<Value, String> {
    fn parsed<T: std::str::FromStr<Err = String>>(raw: &str) -> Result<T, String> {
        raw.parse()
    }
    Ok(match s.name {
        Name::Width | Name::Height => Value::U32(parse_dimension(raw)?),
        Name::Fit => Value::Fit(parsed(raw)?),
        Name::Mode => Value::Mode(parsed(raw)?),
        Name::Format => Value::Format(parsed(raw)?),
        Name::Quality => Value::Quality(parsed(raw)?),
        Name::Compression => Value::Compression(parsed(raw)?),
        Name::Preload => Value::Preload(parsed(raw)?),
        Name::Time => Value::Ms(parse_time_ms(raw)?),
        Name::Duration => match parse_time_ms(raw)? {
            0 => return Err("must be longer than zero".into()),
            ms => Value::Ms(ms),
        },
        Name::Audio | Name::Loop | Name::Autoplay | Name::Muted => {
            Value::Bool(parse_bool(raw)? != s.invert)
        }
        Name::Fps => Value::U32(parse_fps_milli(raw)?),
        Name::Bitrate => Value::U32(parse_bitrate_kbps(raw)?),
        Name::ImageCount => {
            let expected = || {
                format!(
                    "expected a whole number between {} and {}",
                    IMAGE_COUNT_RANGE.start(),
                    IMAGE_COUNT_RANGE.end()
                )
            };
            let n = parse_small_uint(raw).ok_or_else(expected)?;
            if !IMAGE_COUNT_RANGE.contains(&n) {
                return Err(expected());
            }
            Value::U32(n)
        }
        Name::Filename => Value::Text(parse_filename(raw)?),
        Name::Derivative => {
            if raw.is_empty() {
                return Err("expected a derivative name".into());
            }
            Value::Text(raw.to_owned())
        }
        Name::Dpr | Name::ImDensity => Value::F64(parse_dpr(raw).ok_or_else(|| {
            format!("expected a device pixel ratio above 0 and at most {MAX_DPR}, such as 2 or 1.5")
        })?),
        Name::ImWidth | Name::ImHeight | Name::ImViewWidth | Name::ImViewHeight => {
            Value::U32(parse_layout_px(raw).ok_or_else(|| {
                format!("expected a whole number of pixels between 1 and {MAX_LAYOUT_PX}")
            })?)
        }
    })
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Digits only, at most 9 of them (so the value fits a `u32`).
fn parse_small_uint(raw: &str) -> Option<u32> {
    if raw.is_empty() || raw.len() > 9 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// A layout width in CSS pixels: 1..=[`MAX_LAYOUT_PX`].
pub(super) fn parse_layout_px(raw: &str) -> Option<u32> {
    parse_small_uint(raw.trim()).filter(|v| (1..=MAX_LAYOUT_PX).contains(v))
}

/// A device pixel ratio: a plain decimal number in (0, [`MAX_DPR`]].
pub(super) fn parse_dpr(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    if raw.is_empty()
        || raw.len() > 8
        || !raw.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || raw.matches('.').count() > 1
    {
        return None;
    }
    let v: f64 = raw.parse().ok()?;
    (v > 0.0 && v <= MAX_DPR).then_some(v)
}

/// A download name: at most [`MAX_FILENAME`] characters of `[A-Za-z0-9_-]`, with at most one
/// `.` that has such characters on both sides.
fn parse_filename(raw: &str) -> Result<String, String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let ok = raw.len() <= MAX_FILENAME
        && match raw.split_once('.') {
            Some((stem, ext)) => part_ok(stem) && part_ok(ext),
            None => part_ok(raw),
        };
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "expected at most {MAX_FILENAME} letters, digits, '_' or '-', with an optional single extension such as clip.mp4"
        ))
    }
}
