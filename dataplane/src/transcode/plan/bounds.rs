//! Bounds on a plan's output, checked before ffmpeg starts (issue 15, row 1): the final
//! frame (the derived side counts), the `cover` pre-crop frame, the whole spritesheet and the
//! frame count of a video.

use super::{Plan, TranscodeError};
use crate::request::variant::Variant;
use vr_crds::media::{Fit, Mode};

/// Bounds on what one transform may produce, checked by [`Plan::check`] before ffmpeg starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Largest output frame (and spritesheet tile) in pixels; the `cover` pre-crop frame may
    /// be at most twice this.
    pub max_output_pixels: u64,
    /// Largest whole spritesheet in pixels.
    pub max_spritesheet_pixels: u64,
    /// Most frames of a video output.
    pub max_output_frames: u64,
}

impl Plan {
    /// Refuses a plan whose output breaks `limits`, naming the request parameter to change
    /// ([`TranscodeError::OutputTooLarge`]): `width`/`height` (the one the request gave, or
    /// `width` when the source size was kept) for a frame or tile over `maxOutputPixels` (the
    /// derived side counts: a 2×2 source at `width=8192` is an 8192×8192 output) or a `cover`
    /// pre-crop frame over twice that, `imageCount` for a sheet over `maxSpritesheetPixels`,
    /// `duration` for a video over `maxOutputFrames`.
    pub fn check(&self, variant: &Variant, limits: &OutputLimits) -> Result<(), TranscodeError> {
        let side = match (variant.width, variant.height) {
            (None, Some(_)) => "height",
            _ => "width",
        };
        let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        let sheet = variant.mode == Mode::Spritesheet;
        if let Some(out) = self.output_size {
            if sheet && px(out) > limits.max_spritesheet_pixels {
                return Err(too_large(
                    "imageCount",
                    out,
                    "spritesheet",
                    limits.max_spritesheet_pixels,
                    "limits.maxSpritesheetPixels",
                ));
            }
            if !sheet && px(out) > limits.max_output_pixels {
                let max = limits.max_output_pixels;
                return Err(too_large(
                    side,
                    out,
                    "output",
                    max,
                    "limits.maxOutputPixels",
                ));
            }
        }
        if let Some(scaled) = self.scaled_size {
            let max = limits.max_output_pixels.saturating_mul(2);
            if px(scaled) > max {
                let param = if variant.fit == Fit::Cover {
                    "fit"
                } else {
                    side
                };
                let what = "scaled (before cropping)";
                return Err(too_large(
                    param,
                    scaled,
                    what,
                    max,
                    "2 × limits.maxOutputPixels",
                ));
            }
        }
        if let Some(frames) = self.frames {
            if frames > limits.max_output_frames {
                return Err(TranscodeError::OutputTooLarge {
                    param: "duration",
                    reason: format!(
                        "the output would have about {frames} frames; the limit (limits.maxOutputFrames) is {}; ask for a shorter duration or a lower fps",
                        limits.max_output_frames
                    ),
                });
            }
        }
        Ok(())
    }
}

fn too_large(
    param: &'static str,
    (w, h): (u32, u32),
    what: &str,
    max: u64,
    limit: &str,
) -> TranscodeError {
    TranscodeError::OutputTooLarge {
        param,
        reason: format!(
            "the {what} picture would be {w}x{h} ({} pixels); the limit ({limit}) is {max} pixels; ask for a smaller width or height",
            u64::from(w) * u64::from(h)
        ),
    }
}
