//! Defaults of the config model, named in `#[serde(default = "…")]` and used by `Default` impls.

pub(super) fn default_revision() -> String {
    "standalone".into()
}

pub(super) fn default_s3_region() -> String {
    "us-east-1".into()
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_presign_lifetime() -> u32 {
    3600
}

pub(super) fn default_presign_margin() -> u32 {
    300
}

pub(super) fn default_purge_poll() -> u32 {
    2
}

pub(super) fn default_shared_prefix() -> String {
    "video-resizer/".into()
}

pub(super) fn default_shared_timeout() -> u32 {
    10
}

pub(super) fn default_slow_downlink() -> f64 {
    1.5
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn default_overridable() -> Vec<String> {
    [
        "time", "duration", "audio", "filename", "loop", "autoplay", "muted", "preload",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

pub(super) fn default_bypass() -> Vec<String> {
    vec!["nocache".into(), "bypass".into()]
}

pub(super) fn default_max_input() -> u64 {
    1 << 30
}

pub(super) fn default_max_duration() -> u32 {
    3600
}

pub(super) fn default_max_pixels() -> u64 {
    8192 * 4320
}

pub(super) fn default_max_output_pixels() -> u64 {
    3840 * 2160
}

pub(super) fn default_max_spritesheet_pixels() -> u64 {
    4096 * 4096
}

pub(super) fn default_max_output_frames() -> u64 {
    108_000
}

pub(super) fn default_max_output_bytes() -> u64 {
    2 << 30
}

pub(super) fn default_ffmpeg_memory() -> u64 {
    2 << 30
}

pub(super) fn default_ffprobe_memory() -> u64 {
    512 << 20
}

pub(super) fn default_max_streams() -> u32 {
    16
}

pub(super) fn default_probe_size() -> u64 {
    5 << 20
}

pub(super) fn default_queue_depth() -> u32 {
    16
}

pub(super) fn default_queue_timeout() -> u32 {
    30
}

pub(super) fn default_transform_timeout() -> u32 {
    300
}

pub(super) fn default_fetch_timeout() -> u32 {
    30
}

pub(super) fn default_threads() -> u32 {
    2
}

pub(super) fn ttl_ok() -> u32 {
    86_400
}

pub(super) fn ttl_redirects() -> u32 {
    3_600
}

pub(super) fn ttl_client_error() -> u32 {
    60
}

pub(super) fn ttl_server_error() -> u32 {
    10
}

pub(super) fn default_tag_prefix() -> String {
    "video-".into()
}

pub(super) fn default_revalidate() -> u32 {
    30
}

pub(super) fn default_memory_bytes() -> u64 {
    256 << 20
}

pub(super) fn default_memory_object() -> u64 {
    32 << 20
}

pub(super) fn default_disk_bytes() -> u64 {
    10 << 30
}

pub(super) fn default_video_extensions() -> Vec<String> {
    ["mp4", "m4v", "mov", "webm", "mkv"]
        .into_iter()
        .map(String::from)
        .collect()
}

pub(super) fn default_failure_threshold() -> u32 {
    5
}

pub(super) fn default_window() -> u32 {
    30
}

pub(super) fn default_open() -> u32 {
    10
}

pub(super) fn default_attempts() -> u32 {
    3
}

pub(super) fn default_base_delay() -> u32 {
    100
}

pub(super) fn default_max_delay() -> u32 {
    2_000
}
