//! From a Variant and a probed source to ffmpeg's argument vector: pure, no I/O.
//!
//! Every value that reaches argv is a number computed here or a `&'static str` chosen from an
//! enum, so no request text can ever become an option, a filter or a path.

use super::{MediaInfo, TranscodeError, DECODER_WHITELIST, FORMAT_WHITELIST, PROTOCOL_WHITELIST};
use crate::request::variant::{Variant, DEFAULT_IMAGE_COUNT};
use vr_crds::media::{Compression, Format, Mode, Quality};

/// Keyframe interval of video output: a fragment closes at each keyframe, so this bounds the
/// time to the first playable bytes (research §2b: ~0.5 s with 2 s).
pub const GOP_SECONDS: u32 = 2;
/// Fragment length of audio-only output, in microseconds (every audio packet is a keyframe, so
/// fragments are cut by duration instead).
const AUDIO_FRAGMENT_US: u32 = 2_000_000;
/// Largest side of a spritesheet image (JPEG's hard limit is 65 535; players choke earlier).
pub const MAX_SHEET_SIDE: u32 = 16_384;
/// Tile width of a spritesheet when the request names no size.
pub const DEFAULT_TILE_WIDTH: u32 = 160;
/// When spritesheet samples are at least this far apart, only keyframes are decoded
/// (`-skip_frame nokey`, ~7× faster measured): each tile shows the keyframe nearest before its
/// time. Denser sampling decodes every frame so tiles stay distinct.
pub const KEYFRAMES_ONLY_MIN_INTERVAL_MS: u64 = 4_000;
/// Frame rate assumed when neither the request nor the source gives one (GOP sizing only).
const FALLBACK_FPS_MILLI: u32 = 30_000;

/// What kind of bytes a plan produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Fragmented MP4 or WebM, playable while it is being written.
    Video,
    /// One image (a frame or a spritesheet), complete only at the end.
    Image,
    /// Fragmented M4A.
    Audio,
}

/// A planned ffmpeg run: the arguments around the input, and what comes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    format: Format,
    kind: OutputKind,
    input_args: Vec<String>,
    output_args: Vec<String>,
    output_size: Option<(u32, u32)>,
    /// Frame size after scaling, before a `cover` crop (per tile for a spritesheet).
    scaled_size: Option<(u32, u32)>,
    /// Estimated output frames of a video (duration × frame rate).
    frames: Option<u64>,
}

impl Plan {
    /// `Content-Type` of the output.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    /// Output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// What kind of output this is.
    pub fn kind(&self) -> OutputKind {
        self.kind
    }

    /// Whether the bytes can be sent to a client while ffmpeg still writes them (fragmented
    /// MP4 / WebM / M4A). Images are complete only at the end.
    pub fn streamable(&self) -> bool {
        self.kind != OutputKind::Image
    }

    /// Pixel size of the output picture (the whole sheet for a spritesheet); `None` for audio.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.output_size
    }

    /// Estimated frames of a video output (`None` for images and audio).
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    /// Arguments placed before `-i` (seek, decoder options).
    pub fn input_args(&self) -> &[String] {
        &self.input_args
    }

    /// Arguments placed after `-i`, up to (not including) the output `pipe:1`.
    pub fn output_args(&self) -> &[String] {
        &self.output_args
    }

    /// The complete argument vector for `url` (`file:` + absolute path).
    pub(super) fn ffmpeg_args(&self, url: &str, probe_size: u64) -> Vec<String> {
        let mut a: Vec<String> = [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            // A corrupt packet or a cut-off file fails the job instead of ending the output
            // early with exit 0 (which would be cached as a complete variant).
            "-xerror",
            "-protocol_whitelist",
            PROTOCOL_WHITELIST,
            "-format_whitelist",
            FORMAT_WHITELIST,
            "-codec_whitelist",
            DECODER_WHITELIST,
            "-probesize",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(probe_size.max(32).to_string());
        a.extend(self.input_args.iter().cloned());
        a.push("-i".into());
        a.push(url.into());
        a.extend(self.output_args.iter().cloned());
        a.push("pipe:1".into());
        a
    }
}

/// Plans the ffmpeg run that turns the source described by `info` into `variant`.
///
/// `threads` bounds decoder, filter and encoder threads (clamped to 1..=16).
///
/// Per mode: `video` → fragmented MP4 (H.264 + AAC) or WebM (VP9 + Opus) with a keyframe every
/// [`GOP_SECONDS`]; `frame` → one image at `time`; `spritesheet` → one image holding a grid of
/// `imageCount` frames sampled evenly over `[time, time + duration]` (or to the end), where
/// **`width`/`height` are the size of each tile**, the grid is ⌈√n⌉ columns wide, and the
/// whole sheet is at most [`MAX_SHEET_SIDE`] per side; `audio` → fragmented M4A (AAC).
/// Video sizes are always even (yuv420p); image sizes are exact.
///
/// Errors: [`TranscodeError::NoVideoStream`] / [`TranscodeError::NoAudioStream`] when the mode
/// needs a stream the source lacks; [`TranscodeError::TimePastEnd`] when `time` is at or past
/// the end of the source; [`TranscodeError::BadParameter`] when a spritesheet cannot be built.
pub fn plan(variant: &Variant, info: &MediaInfo, threads: u32) -> Result<Plan, TranscodeError> {
    let threads = threads.clamp(1, 16);
    let format = if variant.mode.accepts(variant.format) {
        variant.format
    } else {
        variant.mode.default_format()
    };
    if let (Some(t), Some(d)) = (variant.time_ms, info.duration_ms) {
        if t > 0 && t >= d {
            return Err(TranscodeError::TimePastEnd {
                time_ms: t,
                duration_ms: d,
            });
        }
    }
    let mut p = Builder::new(threads);
    match variant.mode {
        Mode::Video => video(&mut p, variant, info, format, threads)?,
        Mode::Frame => frame(&mut p, variant, info, format)?,
        Mode::Spritesheet => spritesheet(&mut p, variant, info, format)?,
        Mode::Audio => audio(&mut p, variant, info)?,
    }
    let kind = match variant.mode {
        Mode::Video => OutputKind::Video,
        Mode::Audio => OutputKind::Audio,
        Mode::Frame | Mode::Spritesheet => OutputKind::Image,
    };
    Ok(Plan {
        format,
        kind,
        input_args: p.input,
        output_args: p.output,
        output_size: p.size,
        scaled_size: p.scaled,
        frames: p.frames,
    })
}

struct Builder {
    input: Vec<String>,
    output: Vec<String>,
    size: Option<(u32, u32)>,
    scaled: Option<(u32, u32)>,
    frames: Option<u64>,
}

impl Builder {
    fn new(threads: u32) -> Self {
        let t = threads.to_string();
        Builder {
            // Global filter threads, then decoder threads (input option).
            input: vec!["-filter_threads".into(), t.clone(), "-threads".into(), t],
            output: Vec::new(),
            size: None,
            scaled: None,
            frames: None,
        }
    }
    fn i(&mut self, args: &[&str]) {
        self.input.extend(args.iter().map(|s| s.to_string()));
    }
    fn o(&mut self, args: &[&str]) {
        self.output.extend(args.iter().map(|s| s.to_string()));
    }
}

fn video(
    p: &mut Builder,
    v: &Variant,
    info: &MediaInfo,
    format: Format,
    threads: u32,
) -> Result<(), TranscodeError> {
    let src = info
        .display_size()
        .ok_or(TranscodeError::NoVideoStream { mode: "video" })?;
    if info.video_codec.is_none() {
        return Err(TranscodeError::NoVideoStream { mode: "video" });
    }
    seek(p, v.time_ms);
    let with_audio = v.audio && info.audio_codec.is_some();
    p.o(&["-map", "0:v:0"]);
    if with_audio {
        p.o(&["-map", "0:a:0?"]);
    }
    p.o(&["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]);
    let geo = Geometry::fit(src, v.width, v.height, v.fit, true);
    let mut chain = Vec::new();
    if let Some(fps) = v.fps_milli {
        chain.push(format!("fps=fps={}", rational(u64::from(fps), 1000)));
    }
    chain.extend(geo.filters());
    chain.push("format=yuv420p".into());
    p.o(&["-vf", &chain.join(",")]);
    p.size = Some(geo.out);
    p.scaled = Some(geo.scale);

    let fps = v.fps_milli.or(info.fps_milli).unwrap_or(FALLBACK_FPS_MILLI);
    let start = v.time_ms.unwrap_or(0);
    let span = match (v.duration_ms.filter(|d| *d > 0), info.duration_ms) {
        (Some(d), Some(total)) => Some(d.min(total.saturating_sub(start))),
        (Some(d), None) => Some(d),
        (None, total) => total.map(|t| t.saturating_sub(start)),
    };
    p.frames = span.map(|ms| (ms.saturating_mul(u64::from(fps))).div_ceil(1_000_000));
    let gop = ((u64::from(fps) * u64::from(GOP_SECONDS) + 500) / 1000).max(1);
    let gop = gop.to_string();
    let force_kf = format!("expr:gte(t,n_forced*{GOP_SECONDS})");
    let t = threads.to_string();
    match format {
        Format::Webm => {
            let crf = vp9_crf(v.quality).to_string();
            let (deadline, cpu_used) = vp9_speed(v.compression);
            let bv = v
                .bitrate_kbps
                .map(|b| format!("{b}k"))
                .unwrap_or_else(|| "0".into());
            p.o(&["-c:v", "libvpx-vp9", "-crf", &crf, "-b:v", &bv]);
            p.o(&["-deadline", deadline, "-cpu-used", cpu_used, "-row-mt", "1"]);
            p.o(&["-g", &gop, "-force_key_frames", &force_kf, "-threads", &t]);
            if with_audio {
                let ba = format!("{}k", audio_kbps(v.quality));
                p.o(&["-c:a", "libopus", "-b:a", &ba, "-ac", "2"]);
            } else {
                p.o(&["-an"]);
            }
            duration(p, v.duration_ms);
            p.o(&["-max_muxing_queue_size", "1024", "-f", "webm"]);
        }
        _ => {
            let crf = x264_crf(v.quality).to_string();
            p.o(&["-c:v", "libx264", "-preset", x264_preset(v.compression)]);
            p.o(&["-crf", &crf]);
            if let Some(b) = v.bitrate_kbps {
                let max = format!("{b}k");
                let buf = format!("{}k", u64::from(b) * 2);
                p.o(&["-maxrate", &max, "-bufsize", &buf]);
            }
            p.o(&["-g", &gop, "-force_key_frames", &force_kf, "-threads", &t]);
            if with_audio {
                let ba = format!("{}k", audio_kbps(v.quality));
                p.o(&["-c:a", "aac", "-b:a", &ba, "-ac", "2"]);
            } else {
                p.o(&["-an"]);
            }
            duration(p, v.duration_ms);
            p.o(&["-max_muxing_queue_size", "1024", "-f", "mp4"]);
            p.o(&["-movflags", "frag_keyframe+empty_moov+default_base_moof"]);
        }
    }
    Ok(())
}

fn frame(
    p: &mut Builder,
    v: &Variant,
    info: &MediaInfo,
    format: Format,
) -> Result<(), TranscodeError> {
    let src = info
        .display_size()
        .ok_or(TranscodeError::NoVideoStream { mode: "frame" })?;
    if info.video_codec.is_none() {
        return Err(TranscodeError::NoVideoStream { mode: "frame" });
    }
    seek(p, v.time_ms);
    let geo = Geometry::fit(src, v.width, v.height, v.fit, false);
    let mut chain = geo.filters();
    chain.push(image_pix_fmt(format).into());
    p.o(&["-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1"]);
    p.o(&["-vf", &chain.join(","), "-frames:v", "1"]);
    image_encoder(p, format, v.quality);
    p.size = Some(geo.out);
    p.scaled = Some(geo.scale);
    Ok(())
}

fn spritesheet(
    p: &mut Builder,
    v: &Variant,
    info: &MediaInfo,
    format: Format,
) -> Result<(), TranscodeError> {
    let src = info.display_size().ok_or(TranscodeError::NoVideoStream {
        mode: "spritesheet",
    })?;
    if info.video_codec.is_none() {
        return Err(TranscodeError::NoVideoStream {
            mode: "spritesheet",
        });
    }
    let count = v.image_count.unwrap_or(DEFAULT_IMAGE_COUNT).max(1);
    let start = v.time_ms.unwrap_or(0);
    let span = match (v.duration_ms, info.duration_ms) {
        (Some(d), Some(total)) => d.min(total.saturating_sub(start)),
        (Some(d), None) => d,
        (None, Some(total)) => total.saturating_sub(start),
        (None, None) => {
            return Err(TranscodeError::BadParameter {
                param: "duration",
                reason: "the source does not say how long it is; give a duration".into(),
            })
        }
    };
    if span == 0 {
        return Err(TranscodeError::BadParameter {
            param: "duration",
            reason: "must be greater than zero".into(),
        });
    }
    let cols = ceil_sqrt(count);
    let rows = count.div_ceil(cols);
    let (tw, th) = (v.width, v.height);
    let (tw, th) = if tw.is_none() && th.is_none() {
        (Some(DEFAULT_TILE_WIDTH), None)
    } else {
        (tw, th)
    };
    let geo = Geometry::fit(src, tw, th, v.fit, false);
    let sheet = (
        u64::from(geo.out.0) * u64::from(cols),
        u64::from(geo.out.1) * u64::from(rows),
    );
    if sheet.0 > u64::from(MAX_SHEET_SIDE) || sheet.1 > u64::from(MAX_SHEET_SIDE) {
        return Err(TranscodeError::BadParameter {
            param: "imageCount",
            reason: format!(
                "{count} tiles of {}x{} make a {}x{} image; the limit is {MAX_SHEET_SIDE} per side",
                geo.out.0, geo.out.1, sheet.0, sheet.1
            ),
        });
    }
    if span / u64::from(count) >= KEYFRAMES_ONLY_MIN_INTERVAL_MS {
        p.i(&["-skip_frame", "nokey"]);
    }
    seek(p, Some(start));
    p.i(&["-t", &seconds(span)]);
    let mut chain = vec![format!(
        "fps=fps={}",
        rational(u64::from(count) * 1000, span)
    )];
    chain.extend(geo.filters());
    chain.push(format!("tile=layout={cols}x{rows}"));
    chain.push(image_pix_fmt(format).into());
    p.o(&["-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1"]);
    p.o(&["-vf", &chain.join(","), "-frames:v", "1"]);
    image_encoder(p, format, v.quality);
    p.scaled = Some(geo.scale);
    // Both factors are bounded by MAX_SHEET_SIDE above.
    p.size = Some((
        u32::try_from(sheet.0).unwrap_or(MAX_SHEET_SIDE),
        u32::try_from(sheet.1).unwrap_or(MAX_SHEET_SIDE),
    ));
    Ok(())
}

fn audio(p: &mut Builder, v: &Variant, info: &MediaInfo) -> Result<(), TranscodeError> {
    if info.audio_codec.is_none() {
        return Err(TranscodeError::NoAudioStream);
    }
    seek(p, v.time_ms);
    let ba = format!("{}k", audio_kbps(v.quality));
    let frag = AUDIO_FRAGMENT_US.to_string();
    p.o(&["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"]);
    p.o(&["-c:a", "aac", "-b:a", &ba, "-ac", "2"]);
    duration(p, v.duration_ms);
    p.o(&["-f", "mp4", "-movflags", "empty_moov+default_base_moof"]);
    p.o(&["-frag_duration", &frag]);
    Ok(())
}

/// `-ss` before `-i`: a fast seek to the keyframe before, then exact decoding to the time.
fn seek(p: &mut Builder, time_ms: Option<u64>) {
    if let Some(t) = time_ms.filter(|t| *t > 0) {
        p.i(&["-ss", &seconds(t)]);
    }
}

fn duration(p: &mut Builder, duration_ms: Option<u64>) {
    if let Some(d) = duration_ms.filter(|d| *d > 0) {
        p.o(&["-t", &seconds(d)]);
    }
}

fn image_encoder(p: &mut Builder, format: Format, q: Quality) {
    match format {
        Format::Png => p.o(&["-c:v", "png"]),
        Format::Webp => {
            let quality = webp_quality(q).to_string();
            p.o(&["-c:v", "libwebp", "-quality", &quality]);
        }
        _ => {
            let qv = jpeg_qscale(q).to_string();
            p.o(&["-c:v", "mjpeg", "-q:v", &qv]);
        }
    }
    p.o(&["-f", "image2pipe"]);
}

fn image_pix_fmt(format: Format) -> &'static str {
    match format {
        Format::Png => "format=rgb24",
        Format::Webp => "format=yuv420p",
        _ => "format=yuvj420p",
    }
}

/// x264 CRF (lower is better; 23 is x264's default).
fn x264_crf(q: Quality) -> u32 {
    match q {
        Quality::Low => 28,
        Quality::Medium | Quality::Auto => 23,
        Quality::High => 19,
    }
}

/// libvpx-vp9 CRF (0–63; ~31–33 is the usual web target).
fn vp9_crf(q: Quality) -> u32 {
    match q {
        Quality::Low => 40,
        Quality::Medium | Quality::Auto => 33,
        Quality::High => 27,
    }
}

/// x264 preset by compression effort. `veryfast` by default: research §2b measured it ~1.5×
/// slower than `ultrafast` but ~4× smaller, the right trade for cached output.
fn x264_preset(c: Compression) -> &'static str {
    match c {
        Compression::Low => "superfast",
        Compression::Auto => "veryfast",
        Compression::Medium => "faster",
        Compression::High => "medium",
    }
}

/// libvpx-vp9 (deadline, cpu-used) by compression effort.
fn vp9_speed(c: Compression) -> (&'static str, &'static str) {
    match c {
        Compression::Low => ("realtime", "8"),
        Compression::Auto => ("realtime", "7"),
        Compression::Medium => ("realtime", "5"),
        Compression::High => ("good", "4"),
    }
}

/// AAC/Opus bitrate in kbit/s.
fn audio_kbps(q: Quality) -> u32 {
    match q {
        Quality::Low => 64,
        Quality::Medium | Quality::Auto => 96,
        Quality::High => 160,
    }
}

/// mjpeg `-q:v` (2 best … 31 worst).
fn jpeg_qscale(q: Quality) -> u32 {
    match q {
        Quality::Low => 8,
        Quality::Medium | Quality::Auto => 4,
        Quality::High => 2,
    }
}

/// libwebp quality (0–100).
fn webp_quality(q: Quality) -> u32 {
    match q {
        Quality::Low => 60,
        Quality::Medium | Quality::Auto => 80,
        Quality::High => 92,
    }
}

/// Milliseconds as ffmpeg seconds: `1500` → `1.500`.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `n/d` reduced.
fn rational(n: u64, d: u64) -> String {
    let g = gcd(n, d).max(1);
    format!("{}/{}", n / g, d / g)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn ceil_sqrt(n: u32) -> u32 {
    let mut c = 1;
    while c * c < n {
        c += 1;
    }
    c
}

mod bounds;
mod geometry;
pub use bounds::OutputLimits;
pub(in crate::transcode) use geometry::Geometry;

#[cfg(test)]
mod tests;
