//! ffprobe: its argument vector, parsing of its JSON, and the limit checks (pure, unit-tested).

use super::{TranscodeError, FORMAT_WHITELIST, PROTOCOL_WHITELIST};
use serde::Deserialize;
use std::time::Duration;

/// Video codecs (ffprobe `codec_name`) a source may use.
pub const VIDEO_CODECS: &[&str] = &["h264", "hevc", "vp8", "vp9", "av1", "mpeg4"];
/// Audio codecs a source may use. Besides the usual compressed ones, 16/24-bit PCM is
/// accepted because camera `.mov` files carry it and its decoder is trivial.
pub const AUDIO_CODECS: &[&str] = &[
    "aac",
    "mp3",
    "opus",
    "vorbis",
    "flac",
    "ac3",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s24le",
];

/// Largest ffprobe JSON accepted (a source with a few streams prints a few KiB).
pub(super) const MAX_PROBE_OUTPUT: usize = 1 << 20;

/// What a source may be. Built from `limits` in the data-plane config.
#[derive(Debug, Clone)]
pub struct ProbeLimits {
    /// Largest width × height of any video stream.
    pub max_pixels: u64,
    /// Longest source, in milliseconds.
    pub max_duration_ms: u64,
    /// Most streams (of any kind) in the source.
    pub max_streams: u32,
    /// Bytes ffprobe may read to detect the format and streams.
    pub probe_size_bytes: u64,
    /// Wall-clock limit of ffprobe; past it the process group is killed.
    pub timeout: Duration,
    /// Address-space limit of the ffprobe child (`limits.ffprobeMemoryBytes`).
    pub memory_bytes: u64,
}

/// What ffprobe found. Describes the first video and first audio stream: exactly the
/// streams the transform maps (`0:v:0`, `0:a:0`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaInfo {
    /// Container duration, in milliseconds (`None` when the container does not say).
    pub duration_ms: Option<u64>,
    /// Coded width of the first video stream (before rotation and aspect correction).
    pub width: Option<u32>,
    /// Coded height of the first video stream.
    pub height: Option<u32>,
    /// `codec_name` of the first video stream.
    pub video_codec: Option<String>,
    /// `codec_name` of the first audio stream.
    pub audio_codec: Option<String>,
    /// Number of streams of any kind.
    pub streams: u32,
    /// ffprobe's `format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: String,
    /// Display rotation in degrees, normalised to 0, 90, 180 or 270.
    pub rotation: u32,
    /// Average frame rate of the first video stream, in milli-fps.
    pub fps_milli: Option<u32>,
    /// Sample aspect ratio (num, den) of the first video stream when not square.
    pub sample_aspect: Option<(u32, u32)>,
    /// Largest width × height claimed by any video stream (ffmpeg may decode any of them
    /// while probing, so the pixel limit applies to all).
    pub max_stream_pixels: u64,
}

impl MediaInfo {
    /// Size of the picture as shown: rotation applied (ffmpeg auto-rotates while decoding)
    /// and non-square pixels stretched to square. `None` without a sized video stream.
    pub fn display_size(&self) -> Option<(u32, u32)> {
        let (mut w, h) = (self.width?, self.height?);
        if w == 0 || h == 0 {
            return None;
        }
        if let Some((n, d)) = self.sample_aspect {
            if n > 0 && d > 0 {
                let sw = (u64::from(w) * u64::from(n) + u64::from(d) / 2) / u64::from(d);
                w = u32::try_from(sw.clamp(1, u64::from(u32::MAX))).unwrap_or(w);
            }
        }
        if self.rotation % 180 == 90 {
            Some((h, w))
        } else {
            Some((w, h))
        }
    }
}

/// ffprobe's argument vector for `url` (already `file:`-prefixed and absolute).
pub(super) fn probe_args(url: &str, probe_size: u64) -> Vec<String> {
    // ffprobe has no -nostdin; its stdin is /dev/null anyway.
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        FORMAT_WHITELIST,
        "-probesize",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([probe_size.max(32).to_string()])
    .chain(
        [
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-i",
            url,
        ]
        .iter()
        .map(|s| s.to_string()),
    )
    .collect()
}

/// Maps a failed ffprobe run to the client-facing error; stderr decides between "container
/// refused by the whitelist" and "unreadable", and is logged, never returned.
pub(super) fn classify_failure(e: TranscodeError) -> TranscodeError {
    match e {
        TranscodeError::Timeout => TranscodeError::ProbeTimeout,
        TranscodeError::Failed { status, stderr } => {
            tracing::info!(%status, stderr = %stderr, "ffprobe refused the source");
            if stderr.contains("not on whitelist") {
                TranscodeError::UnsupportedContainer
            } else {
                TranscodeError::Unreadable
            }
        }
        TranscodeError::EmptyOutput => TranscodeError::Unreadable,
        other => other,
    }
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct FormatJson {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
    nb_streams: Option<u32>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    sample_aspect_ratio: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

/// Parses ffprobe's `-show_format -show_streams` JSON.
pub fn parse(json: &[u8]) -> Result<MediaInfo, TranscodeError> {
    let p: ProbeJson =
        serde_json::from_slice(json).map_err(|e| TranscodeError::ProbeOutput(e.to_string()))?;
    let Some(format) = p.format else {
        return Err(TranscodeError::Unreadable);
    };
    let video = p
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"));
    let audio = p
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let streams = format
        .nb_streams
        .unwrap_or(0)
        .max(u32::try_from(p.streams.len()).unwrap_or(u32::MAX));
    let duration_ms = format
        .duration
        .as_deref()
        .and_then(seconds_to_ms)
        .or_else(|| video.and_then(|v| v.duration.as_deref().and_then(seconds_to_ms)))
        .or_else(|| audio.and_then(|a| a.duration.as_deref().and_then(seconds_to_ms)));
    // Pixels are checked over every video stream: ffmpeg may decode any of them while probing.
    let max_pixels_seen = p
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("video"))
        .map(|s| u64::from(s.width.unwrap_or(0)) * u64::from(s.height.unwrap_or(0)))
        .max();
    let info = MediaInfo {
        duration_ms,
        width: video.and_then(|v| v.width),
        height: video.and_then(|v| v.height),
        video_codec: video.map(|v| codec_name(v.codec_name.as_deref())),
        audio_codec: audio.map(|a| codec_name(a.codec_name.as_deref())),
        streams,
        format_name: format.format_name,
        rotation: video.map(rotation).unwrap_or(0),
        fps_milli: video.and_then(|v| {
            v.avg_frame_rate
                .as_deref()
                .and_then(rate_milli)
                .or_else(|| v.r_frame_rate.as_deref().and_then(rate_milli))
        }),
        sample_aspect: video
            .and_then(|v| v.sample_aspect_ratio.as_deref())
            .and_then(ratio)
            .filter(|&(n, d)| n != d),
        max_stream_pixels: max_pixels_seen.unwrap_or(0),
    };
    Ok(info)
}

/// Refuses a source that breaks `limits` or uses a codec outside the allow-lists. Checks run
/// from the cheapest-to-exploit limit to the most specific, so a file that claims a huge size
/// is refused for its size even when its codec is unknown too.
pub fn check(info: &MediaInfo, limits: &ProbeLimits) -> Result<(), TranscodeError> {
    if info.streams > limits.max_streams {
        return Err(TranscodeError::TooManyStreams {
            streams: info.streams,
            max: limits.max_streams,
        });
    }
    let mapped = u64::from(info.width.unwrap_or(0)) * u64::from(info.height.unwrap_or(0));
    let pixels = mapped.max(info.max_stream_pixels);
    if pixels > limits.max_pixels {
        return Err(TranscodeError::TooManyPixels {
            pixels,
            max: limits.max_pixels,
        });
    }
    if let Some(d) = info.duration_ms {
        if d > limits.max_duration_ms {
            return Err(TranscodeError::TooLong {
                duration_ms: d,
                max_ms: limits.max_duration_ms,
            });
        }
    }
    if let Some(v) = &info.video_codec {
        if !VIDEO_CODECS.contains(&v.as_str()) {
            return Err(TranscodeError::UnsupportedCodec {
                kind: "video",
                codec: v.clone(),
            });
        }
        if info.display_size().is_none() {
            return Err(TranscodeError::Unreadable);
        }
    }
    if let Some(a) = &info.audio_codec {
        if !AUDIO_CODECS.contains(&a.as_str()) {
            return Err(TranscodeError::UnsupportedCodec {
                kind: "audio",
                codec: a.clone(),
            });
        }
    }
    if info.video_codec.is_none() && info.audio_codec.is_none() {
        return Err(TranscodeError::Unreadable);
    }
    Ok(())
}

/// A codec name safe to echo to clients: ffmpeg names are `[a-z0-9_]`; anything else (or
/// nothing) is reported as `unknown`.
fn codec_name(name: Option<&str>) -> String {
    match name {
        Some(n)
            if !n.is_empty()
                && n.len() <= 32
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            n.to_string()
        }
        _ => "unknown".to_string(),
    }
}

/// Rotation from the display matrix side data (ffmpeg ≥ 5) or the legacy `rotate` tag.
fn rotation(s: &StreamJson) -> u32 {
    let from_side = s
        .side_data_list
        .iter()
        .find_map(|sd| sd.get("rotation").and_then(|r| r.as_f64()));
    let from_tag = || s.tags.get("rotate").and_then(|r| r.parse::<f64>().ok());
    let deg = from_side.or_else(from_tag).unwrap_or(0.0);
    if !deg.is_finite() {
        return 0;
    }
    let quarter = ((deg / 90.0).round() as i64).rem_euclid(4);
    (quarter as u32) * 90
}

/// `"10.000000"` → 10000.
fn seconds_to_ms(s: &str) -> Option<u64> {
    let v: f64 = s.trim().parse().ok()?;
    if !v.is_finite() || !(0.0..=1e12).contains(&v) {
        return None;
    }
    Some((v * 1000.0).round() as u64)
}

/// `"30000/1001"` → 29970.
fn rate_milli(s: &str) -> Option<u32> {
    let (n, d) = ratio_u64(s, '/')?;
    if n == 0 || d == 0 {
        return None;
    }
    u32::try_from((n * 1000 + d / 2) / d).ok()
}

/// `"4:3"` → (4, 3).
fn ratio(s: &str) -> Option<(u32, u32)> {
    let (n, d) = ratio_u64(s, ':')?;
    if n == 0 || d == 0 {
        return None;
    }
    Some((u32::try_from(n).ok()?, u32::try_from(d).ok()?))
}

fn ratio_u64(s: &str, sep: char) -> Option<(u64, u64)> {
    let (n, d) = s.split_once(sep)?;
    let n: u64 = n.trim().parse().ok()?;
    let d: u64 = d.trim().parse().ok()?;
    if n > u64::from(u32::MAX) || d > u64::from(u32::MAX) {
        return None;
    }
    Some((n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ProbeLimits {
        ProbeLimits {
            max_pixels: 1920 * 1080,
            max_duration_ms: 60_000,
            max_streams: 4,
            probe_size_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            memory_bytes: 512 << 20,
        }
    }

    const SAMPLE: &str = r#"{
      "streams": [
        {"index":0,"codec_name":"h264","codec_type":"video","width":1920,"height":1080,
         "sample_aspect_ratio":"1:1","r_frame_rate":"30/1","avg_frame_rate":"30000/1001",
         "duration":"10.000000","side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
        {"index":1,"codec_name":"aac","codec_type":"audio","duration":"10.005333"}
      ],
      "format": {"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"10.005333","nb_streams":2}
    }"#;

    #[test]
    fn ffprobe_json_parses_into_media_info() {
        let info = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(info.duration_ms, Some(10_005));
        assert_eq!((info.width, info.height), (Some(1920), Some(1080)));
        assert_eq!(info.video_codec.as_deref(), Some("h264"));
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!(info.streams, 2);
        assert_eq!(info.rotation, 270);
        assert_eq!(info.fps_milli, Some(29_970));
        assert_eq!(info.sample_aspect, None);
        assert_eq!(info.display_size(), Some((1080, 1920)));
        assert!(check(&info, &limits()).is_ok());
    }

    #[test]
    fn non_square_pixels_widen_the_display_size() {
        let info = MediaInfo {
            width: Some(720),
            height: Some(576),
            sample_aspect: Some((16, 15)),
            ..MediaInfo::default()
        };
        assert_eq!(info.display_size(), Some((768, 576)));
    }

    #[test]
    fn each_limit_is_refused_with_its_own_error() {
        let ok = parse(SAMPLE.as_bytes()).unwrap();
        let mut l = limits();
        l.max_pixels = 1000;
        assert!(matches!(
            check(&ok, &l),
            Err(TranscodeError::TooManyPixels { max: 1000, .. })
        ));
        let mut l = limits();
        l.max_duration_ms = 5_000;
        assert!(matches!(
            check(&ok, &l),
            Err(TranscodeError::TooLong { .. })
        ));
        let mut l = limits();
        l.max_streams = 1;
        assert!(matches!(
            check(&ok, &l),
            Err(TranscodeError::TooManyStreams { streams: 2, max: 1 })
        ));
        let mut odd = ok.clone();
        odd.video_codec = Some("mjpeg".into());
        let err = check(&odd, &limits()).unwrap_err();
        assert_eq!(err.to_string(), "source video codec mjpeg is not supported");
        let mut odd = ok.clone();
        odd.audio_codec = Some("wmav2".into());
        assert!(matches!(
            check(&odd, &limits()),
            Err(TranscodeError::UnsupportedCodec { kind: "audio", .. })
        ));
    }

    #[test]
    fn huge_claimed_size_is_refused_before_the_unknown_codec() {
        let json = r#"{"streams":[{"codec_type":"video","width":30000,"height":30000}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","nb_streams":1}}"#;
        let info = parse(json.as_bytes()).unwrap();
        assert_eq!(info.video_codec.as_deref(), Some("unknown"));
        assert!(matches!(
            check(&info, &limits()),
            Err(TranscodeError::TooManyPixels {
                pixels: 900_000_000,
                ..
            })
        ));
    }

    #[test]
    fn a_file_without_streams_or_size_is_unreadable() {
        let json = r#"{"streams":[],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"}}"#;
        let info = parse(json.as_bytes()).unwrap();
        assert!(matches!(
            check(&info, &limits()),
            Err(TranscodeError::Unreadable)
        ));
        let json = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":0,"height":0}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"}}"#;
        let info = parse(json.as_bytes()).unwrap();
        assert!(matches!(
            check(&info, &limits()),
            Err(TranscodeError::Unreadable)
        ));
        assert!(matches!(parse(b"{}"), Err(TranscodeError::Unreadable)));
        assert!(matches!(
            parse(b"not json"),
            Err(TranscodeError::ProbeOutput(_))
        ));
    }

    #[test]
    fn codec_names_echoed_to_clients_are_sanitised() {
        assert_eq!(codec_name(Some("h264")), "h264");
        assert_eq!(codec_name(Some("/etc/passwd")), "unknown");
        assert_eq!(codec_name(None), "unknown");
    }

    #[test]
    fn probe_args_pin_whitelists_and_pass_the_input_last() {
        let args = probe_args("file:/tmp/x.mp4", 1234);
        let pos = |a: &str| args.iter().position(|x| x == a).unwrap();
        assert_eq!(args[pos("-protocol_whitelist") + 1], "file,pipe");
        assert_eq!(args[pos("-format_whitelist") + 1], FORMAT_WHITELIST);
        assert_eq!(args[pos("-probesize") + 1], "1234");
        assert_eq!(args.last().unwrap(), "file:/tmp/x.mp4");
        assert_eq!(args[args.len() - 2], "-i");
    }
}
