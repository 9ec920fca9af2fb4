//! Input, transform and concurrency limits, and which paths are transformed at all.

use super::defaults::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits that bound every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Largest source size in bytes (checked with HEAD/stat before fetching, and while fetching).
    #[serde(default = "default_max_input")]
    pub max_input_bytes: u64,
    /// What to do with a source over `maxInputBytes`.
    #[serde(default)]
    pub oversize: OversizePolicy,
    /// Longest source duration accepted, in seconds.
    #[serde(default = "default_max_duration")]
    pub max_duration_seconds: u32,
    /// Largest source frame (width × height) accepted.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Most streams a source may have.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Bytes ffprobe/ffmpeg may read to detect the format.
    #[serde(default = "default_probe_size")]
    pub probe_size_bytes: u64,
    /// Concurrent transforms (ffmpeg processes); 0 = number of CPUs.
    #[serde(default)]
    pub max_concurrent_transforms: u32,
    /// Transforms that may wait for a slot; past it, requests get 503 with `Retry-After`.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
    /// Longest a request may wait in the queue before 503, in seconds.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout_seconds: u32,
    /// Wall-clock limit of one transform, in seconds; past it the ffmpeg process group is killed.
    #[serde(default = "default_transform_timeout")]
    pub transform_timeout_seconds: u32,
    /// Per-request timeout for fetching from a source, in seconds.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u32,
    /// Encoder threads per ffmpeg process.
    #[serde(default = "default_threads")]
    pub ffmpeg_threads: u32,
    /// Largest output frame (width × height) a request may ask for, counting the derived side
    /// and the `pad` canvas; the `cover` pre-crop frame may be at most twice this. Checked
    /// before ffmpeg starts: 400 `output_too_large` naming `width`/`height`.
    #[serde(default = "default_max_output_pixels")]
    pub max_output_pixels: u64,
    /// Largest spritesheet (whole sheet, width × height); past it 400 `output_too_large`
    /// naming `imageCount`.
    #[serde(default = "default_max_spritesheet_pixels")]
    pub max_spritesheet_pixels: u64,
    /// Most output frames of one video transform (duration × frame rate); past it 400
    /// `output_too_large` naming `duration`.
    #[serde(default = "default_max_output_frames")]
    pub max_output_frames: u64,
    /// Most bytes one transform may write; past it the job is killed and the answer is 422
    /// `output_too_large` (never cached).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    /// Address-space limit (`RLIMIT_AS`) of every ffmpeg child, in bytes; a child that needs
    /// more fails alone (422 `transform_resource_limit`).
    #[serde(default = "default_ffmpeg_memory")]
    pub ffmpeg_memory_bytes: u64,
    /// Address-space limit (`RLIMIT_AS`) of every ffprobe child, in bytes.
    #[serde(default = "default_ffprobe_memory")]
    pub ffprobe_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: default_max_input(),
            oversize: OversizePolicy::default(),
            max_duration_seconds: default_max_duration(),
            max_pixels: default_max_pixels(),
            max_streams: default_max_streams(),
            probe_size_bytes: default_probe_size(),
            max_concurrent_transforms: 0,
            queue_depth: default_queue_depth(),
            queue_timeout_seconds: default_queue_timeout(),
            transform_timeout_seconds: default_transform_timeout(),
            fetch_timeout_seconds: default_fetch_timeout(),
            ffmpeg_threads: default_threads(),
            max_output_pixels: default_max_output_pixels(),
            max_spritesheet_pixels: default_max_spritesheet_pixels(),
            max_output_frames: default_max_output_frames(),
            max_output_bytes: default_max_output_bytes(),
            ffmpeg_memory_bytes: default_ffmpeg_memory(),
            ffprobe_memory_bytes: default_ffprobe_memory(),
        }
    }
}

/// What to do with a source over the size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OversizePolicy {
    /// 413 with a JSON error.
    #[default]
    Reject,
    /// Serve the original untransformed, marked `X-Fallback-Applied`.
    ServeOriginal,
}

/// Which paths are transformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Passthrough {
    /// Extensions (lower case, no dot) that are treated as video and transformed; any other
    /// matched path is served untransformed.
    #[serde(default = "default_video_extensions")]
    pub video_extensions: Vec<String>,
}

impl Default for Passthrough {
    fn default() -> Self {
        Passthrough {
            video_extensions: default_video_extensions(),
        }
    }
}
