//! The resolved transformation: what a request asks the transcoder to produce.
//!
//! A [`Variant`] is produced by the URL layer (`params`) after aliases, derivatives and
//! responsive rules are applied, then [`Variant::normalized`] drops every field that cannot
//! change the output of its mode. Its [`Variant::canonical`] string is what the cache key
//! hashes, so two requests that must produce the same bytes share a key and two that can
//! produce different bytes never do.

use vr_crds::media::{format_time_ms, Compression, Fit, Format, Mode, Preload, Quality};

/// Images in a spritesheet when the request names no `imageCount`.
pub const DEFAULT_IMAGE_COUNT: u32 = 20;

/// A fully resolved transformation. Build with [`Variant::new`] and finish with
/// [`Variant::normalized`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    /// What to produce.
    pub mode: Mode,
    /// Output width in pixels (`None`: keep the source's, or derive from height).
    pub width: Option<u32>,
    /// Output height in pixels (`None`: keep the source's, or derive from width).
    pub height: Option<u32>,
    /// Fit of the output box (only meaningful with both width and height).
    pub fit: Fit,
    /// Output format; always one that `mode` accepts.
    pub format: Format,
    /// Quality preset.
    pub quality: Quality,
    /// Compression (encoder effort) preset.
    pub compression: Compression,
    /// Start of the clip, or the frame time, in milliseconds.
    pub time_ms: Option<u64>,
    /// Length of the clip (video/audio) or of the sampled span (spritesheet), in milliseconds.
    pub duration_ms: Option<u64>,
    /// Keep the audio track (video mode).
    pub audio: bool,
    /// Output frame rate in milli-fps.
    pub fps_milli: Option<u32>,
    /// Target video bitrate in kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// Images in a spritesheet.
    pub image_count: Option<u32>,
}

impl Variant {
    /// A variant of `mode` with every other field at its default.
    pub fn new(mode: Mode) -> Self {
        Variant {
            mode,
            width: None,
            height: None,
            fit: Fit::Contain,
            format: mode.default_format(),
            quality: Quality::Auto,
            compression: Compression::Auto,
            time_ms: None,
            duration_ms: None,
            audio: true,
            fps_milli: None,
            bitrate_kbps: None,
            image_count: None,
        }
    }

    /// Clears every field its mode ignores and fills mode defaults, so equal outputs compare equal.
    pub fn normalized(mut self) -> Self {
        if !self.mode.accepts(self.format) {
            self.format = self.mode.default_format();
        }
        match self.mode {
            Mode::Video => {
                self.image_count = None;
            }
            Mode::Frame => {
                self.duration_ms = None;
                self.audio = false;
                self.fps_milli = None;
                self.bitrate_kbps = None;
                self.image_count = None;
                self.compression = Compression::Auto;
                self.time_ms = Some(self.time_ms.unwrap_or(0));
            }
            Mode::Spritesheet => {
                self.audio = false;
                self.fps_milli = None;
                self.bitrate_kbps = None;
                self.compression = Compression::Auto;
                self.image_count = Some(self.image_count.unwrap_or(DEFAULT_IMAGE_COUNT));
                self.time_ms = Some(self.time_ms.unwrap_or(0));
            }
            Mode::Audio => {
                self.width = None;
                self.height = None;
                self.fit = Fit::Contain;
                self.audio = true;
                self.fps_milli = None;
                self.bitrate_kbps = None;
                self.image_count = None;
                self.compression = Compression::Auto;
            }
        }
        // A fit only matters when both sides are fixed.
        if (self.width.is_none() || self.height.is_none())
            && matches!(self.fit, Fit::Cover | Fit::Pad)
        {
            self.fit = Fit::Contain;
        }
        if self.time_ms == Some(0) && matches!(self.mode, Mode::Video | Mode::Audio) {
            self.time_ms = None;
        }
        self
    }

    /// The canonical, unambiguous description hashed into the cache key. Every field is
    /// written with its own label, so distinct normalized variants give distinct strings.
    pub fn canonical(&self) -> String {
        fn opt<T: ToString>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        }
        format!(
            "mode={};w={};h={};fit={};fmt={};q={};c={};t={};d={};a={};fps={};br={};n={}",
            self.mode,
            opt(self.width),
            opt(self.height),
            self.fit,
            self.format,
            self.quality,
            self.compression,
            opt(self.time_ms.map(format_time_ms)),
            opt(self.duration_ms.map(format_time_ms)),
            u8::from(self.audio),
            opt(self.fps_milli),
            opt(self.bitrate_kbps),
            opt(self.image_count),
        )
    }
}

/// Playback hints: returned as headers, never part of the bytes or the cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaybackHints {
    pub loop_: Option<bool>,
    pub autoplay: Option<bool>,
    pub muted: Option<bool>,
    pub preload: Option<Preload>,
}

/// What a request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// Serve the source untransformed (no size, no derivative, no default derivative).
    Original,
    /// Produce this variant.
    Variant(Variant),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_drops_fields_a_mode_ignores() {
        let mut a = Variant::new(Mode::Audio);
        a.width = Some(640);
        a.fps_milli = Some(30_000);
        let mut b = Variant::new(Mode::Audio);
        b.height = Some(360);
        assert_eq!(a.normalized().canonical(), b.normalized().canonical());
    }

    #[test]
    fn frame_time_defaults_to_zero_and_differs_from_other_times() {
        let a = Variant::new(Mode::Frame).normalized();
        let mut b = Variant::new(Mode::Frame);
        b.time_ms = Some(2_000);
        assert_eq!(a.time_ms, Some(0));
        assert_ne!(a.canonical(), b.normalized().canonical());
    }

    #[test]
    fn cover_without_both_sides_is_contain() {
        let mut a = Variant::new(Mode::Video);
        a.width = Some(640);
        a.fit = Fit::Cover;
        let mut b = Variant::new(Mode::Video);
        b.width = Some(640);
        assert_eq!(a.normalized(), b.normalized());
    }
}
