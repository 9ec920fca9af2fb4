//! The vocabulary of a transformation: modes, fits, formats, presets, times and bitrates.
//!
//! These types are shared by the URL API (the data plane parses query values into them), by
//! derivatives (presets in the config) and by the cache key, so every value has exactly one
//! canonical spelling ([`Mode::as_str`] and friends) and one parser.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a closed string enum with its canonical names, its accepted aliases and a parser.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $canon:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $canon)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling (the one used in URLs, configs and cache keys).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $canon,)+ }
            }

            /// The canonical spellings, for error messages.
            pub fn expected() -> String {
                [$($canon),+].join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($canon $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(format!("expected one of {}", $name::expected())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// What to produce from the source.
    Mode {
        /// A video (resized, re-encoded, optionally clipped).
        Video = "video",
        /// One still image at `time`.
        Frame = "frame",
        /// A grid of `imageCount` frames spread over the clip.
        Spritesheet = "spritesheet",
        /// The audio track only.
        Audio = "audio",
    }
}

string_enum! {
    /// How the output box relates to the source's aspect ratio.
    Fit {
        /// Scale to fit inside width×height, keeping the aspect ratio (output may be smaller on one side).
        Contain = "contain" | "fill",
        /// Scale to cover width×height and crop the centre (output is exactly width×height).
        Cover = "cover" | "crop",
        /// Like contain, but never enlarge a smaller source.
        ScaleDown = "scale-down",
        /// Like contain, then pad with black to exactly width×height.
        Pad = "pad",
    }
}

string_enum! {
    /// Output container / image format.
    Format {
        /// MP4 with H.264 video and AAC audio.
        Mp4 = "mp4" | "h264",
        /// WebM with VP9 video and Opus audio.
        Webm = "webm" | "vp9",
        /// JPEG image.
        Jpg = "jpg" | "jpeg",
        /// PNG image.
        Png = "png",
        /// WebP image.
        Webp = "webp",
        /// M4A (AAC in MP4) audio.
        M4a = "m4a",
    }
}

string_enum! {
    /// Encoder quality preset (maps to a CRF per codec).
    Quality {
        Low = "low",
        Medium = "medium",
        High = "high",
        /// Chosen by the data plane from the output size.
        Auto = "auto",
    }
}

string_enum! {
    /// Encoder effort preset (maps to the codec's speed preset): more compression is slower.
    Compression {
        Low = "low",
        Medium = "medium",
        High = "high",
        /// The data plane's default trade-off.
        Auto = "auto",
    }
}

string_enum! {
    /// The `preload` playback hint returned to players.
    Preload {
        /// Load nothing until the user plays.
        None = "none",
        /// Load only the metadata (duration, dimensions).
        Metadata = "metadata",
        /// The player may load the whole file.
        Auto = "auto",
    }
}

impl Mode {
    /// The format a mode produces when none is asked for.
    pub fn default_format(self) -> Format {
        match self {
            Mode::Video => Format::Mp4,
            Mode::Frame | Mode::Spritesheet => Format::Jpg,
            Mode::Audio => Format::M4a,
        }
    }

    /// Whether `format` is a valid output for this mode.
    pub fn accepts(self, format: Format) -> bool {
        match self {
            Mode::Video => matches!(format, Format::Mp4 | Format::Webm),
            Mode::Frame | Mode::Spritesheet => {
                matches!(format, Format::Jpg | Format::Png | Format::Webp)
            }
            Mode::Audio => matches!(format, Format::M4a),
        }
    }

    /// The formats this mode accepts, for error messages.
    pub fn accepted_formats(self) -> String {
        Format::ALL
            .iter()
            .filter(|f| self.accepts(**f))
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mp4 => "video/mp4",
            Format::Webm => "video/webm",
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::M4a => "audio/mp4",
        }
    }

    /// The file extension of this format (used for `filename`).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

/// Smallest and largest output dimension accepted anywhere (URL or derivative).
pub const DIMENSION_RANGE: std::ops::RangeInclusive<u32> = 10..=8192;
/// Largest number of images in a spritesheet.
pub const IMAGE_COUNT_RANGE: std::ops::RangeInclusive<u32> = 1..=100;
/// Accepted output frame rates, in milli-frames per second (0.1–120 fps).
pub const FPS_MILLI_RANGE: std::ops::RangeInclusive<u32> = 100..=120_000;
/// Accepted output bitrates, in kbit/s.
pub const BITRATE_KBPS_RANGE: std::ops::RangeInclusive<u32> = 16..=100_000;
/// Largest accepted time or duration: 24 hours, in milliseconds.
pub const MAX_TIME_MS: u64 = 24 * 3600 * 1000;

/// Parses a time or duration: `90`, `1.5`, `5s`, `250ms`, `2m`, `1m30s`, `1h2m3.5s`.
///
/// Returns milliseconds. A bare number is seconds. Each unit may appear once, in the order
/// h, m, s (or ms alone). Values above [`MAX_TIME_MS`] are refused.
pub fn parse_time_ms(input: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a time such as 90, 5s, 250ms, 2m or 1m30s";
    let s = input.trim();
    if s.is_empty() {
        return Err(EXPECTED.into());
    }
    // Bare number (seconds, optionally fractional).
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds_to_ms(s).ok_or_else(|| EXPECTED.to_string());
    }
    if let Some(ms) = s.strip_suffix("ms") {
        if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) {
            let v: u64 = ms.parse().map_err(|_| EXPECTED.to_string())?;
            return check_max(v);
        }
        return Err(EXPECTED.into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    let mut last_rank = 0u8;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| EXPECTED.to_string())?;
        if end == 0 {
            return Err(EXPECTED.into());
        }
        let (num, tail) = rest.split_at(end);
        let unit = tail.chars().next().ok_or_else(|| EXPECTED.to_string())?;
        let (rank, factor) = match unit {
            'h' => (1, 3_600_000u64),
            'm' => (2, 60_000),
            's' => (3, 1_000),
            _ => return Err(EXPECTED.into()),
        };
        if rank <= last_rank {
            return Err(EXPECTED.into());
        }
        last_rank = rank;
        let part = if rank == 3 {
            seconds_to_ms(num).ok_or_else(|| EXPECTED.to_string())?
        } else {
            let whole: u64 = num.parse().map_err(|_| EXPECTED.to_string())?;
            whole
                .checked_mul(factor)
                .ok_or_else(|| EXPECTED.to_string())?
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| EXPECTED.to_string())?;
        rest = &tail[1..];
    }
    check_max(total)
}

fn check_max(ms: u64) -> Result<u64, String> {
    if ms > MAX_TIME_MS {
        Err("must be at most 24h".into())
    } else {
        Ok(ms)
    }
}

/// `"1.5"` → 1500. At most three decimals; no sign, no exponent.
fn seconds_to_ms(s: &str) -> Option<u64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if frac.len() > 3
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..3 {
        f *= 10;
    }
    w.checked_mul(1000)?.checked_add(f)
}

/// Formats milliseconds in the canonical form used in cache keys and headers (`1.5s`, `90s`).
pub fn format_time_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", s.trim_end_matches('0'))
    }
}

/// Parses a bitrate: `800k`, `2M`, `2.5M`, `1500000` (bit/s). Returns kbit/s within [`BITRATE_KBPS_RANGE`].
pub fn parse_bitrate_kbps(input: &str) -> Result<u32, String> {
    const EXPECTED: &str = "expected a bitrate such as 800k, 2M or 1500000";
    let s = input.trim();
    let (num, mult_bps): (&str, f64) = if let Some(n) = s.strip_suffix(['k', 'K']) {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix(['m', 'M']) {
        (n, 1e6)
    } else {
        (s, 1.0)
    };
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || num.matches('.').count() > 1
    {
        return Err(EXPECTED.into());
    }
    let v: f64 = num.parse().map_err(|_| EXPECTED.to_string())?;
    let kbps = (v * mult_bps / 1000.0).round();
    if !kbps.is_finite()
        || kbps < *BITRATE_KBPS_RANGE.start() as f64
        || kbps > *BITRATE_KBPS_RANGE.end() as f64
    {
        return Err(format!(
            "must be between {}k and {}k",
            BITRATE_KBPS_RANGE.start(),
            BITRATE_KBPS_RANGE.end()
        ));
    }
    Ok(kbps as u32)
}

/// Parses a frame rate (`30`, `29.97`, `0.5`) into milli-fps within [`FPS_MILLI_RANGE`].
pub fn parse_fps_milli(input: &str) -> Result<u32, String> {
    const EXPECTED: &str = "expected a frame rate between 0.1 and 120, such as 30 or 29.97";
    let ms = seconds_to_ms(input.trim()).ok_or_else(|| EXPECTED.to_string())?;
    let milli = u32::try_from(ms).map_err(|_| EXPECTED.to_string())?;
    if !FPS_MILLI_RANGE.contains(&milli) {
        return Err(EXPECTED.into());
    }
    Ok(milli)
}

/// Parses an output dimension within [`DIMENSION_RANGE`].
pub fn parse_dimension(input: &str) -> Result<u32, String> {
    let expected = || {
        format!(
            "expected a whole number of pixels between {} and {}",
            DIMENSION_RANGE.start(),
            DIMENSION_RANGE.end()
        )
    };
    let s = input.trim();
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    let v: u32 = s.parse().map_err(|_| expected())?;
    if !DIMENSION_RANGE.contains(&v) {
        return Err(expected());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times_in_every_accepted_spelling_parse_to_milliseconds() {
        assert_eq!(parse_time_ms("90"), Ok(90_000));
        assert_eq!(parse_time_ms("1.5"), Ok(1_500));
        assert_eq!(parse_time_ms("5s"), Ok(5_000));
        assert_eq!(parse_time_ms("250ms"), Ok(250));
        assert_eq!(parse_time_ms("2m"), Ok(120_000));
        assert_eq!(parse_time_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_time_ms("1h2m3.5s"), Ok(3_723_500));
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "", "s", "-1", "1x", "1s2m", "1m1m", "1.2345", "1e3", "..", "24h1s", "ms", " 5 s",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn canonical_time_format_round_trips() {
        for ms in [0, 1, 10, 500, 1_000, 1_500, 90_000, 3_723_500] {
            assert_eq!(parse_time_ms(&format_time_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn bitrates_parse_to_kbps() {
        assert_eq!(parse_bitrate_kbps("800k"), Ok(800));
        assert_eq!(parse_bitrate_kbps("2M"), Ok(2000));
        assert_eq!(parse_bitrate_kbps("2.5M"), Ok(2500));
        assert_eq!(parse_bitrate_kbps("1500000"), Ok(1500));
        assert!(parse_bitrate_kbps("0").is_err());
        assert!(parse_bitrate_kbps("1G").is_err());
        assert!(parse_bitrate_kbps("1..2M").is_err());
    }

    #[test]
    fn aliases_parse_to_the_canonical_value() {
        assert_eq!("crop".parse::<Fit>(), Ok(Fit::Cover));
        assert_eq!("fill".parse::<Fit>(), Ok(Fit::Contain));
        assert_eq!("jpeg".parse::<Format>(), Ok(Format::Jpg));
        assert_eq!("h264".parse::<Format>(), Ok(Format::Mp4));
        assert!("CONTAIN".parse::<Fit>().is_err());
    }

    #[test]
    fn each_mode_accepts_its_default_format() {
        for m in Mode::ALL {
            assert!(m.accepts(m.default_format()));
        }
        assert!(!Mode::Video.accepts(Format::Png));
        assert!(!Mode::Audio.accepts(Format::Mp4));
    }

    proptest! {
        #[test]
        fn time_parser_never_panics(s in "\\PC{0,16}") {
            let _ = parse_time_ms(&s);
        }

        #[test]
        fn any_millisecond_value_round_trips(ms in 0u64..=MAX_TIME_MS) {
            prop_assert_eq!(parse_time_ms(&format_time_ms(ms)), Ok(ms));
        }
    }
}
