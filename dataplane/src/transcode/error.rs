//! Errors of probing and transcoding, classified for the edge.
//!
//! Display strings are client-facing: they name the limit or parameter and never contain a
//! local path or ffmpeg's stderr (which is kept in [`TranscodeError::Failed`] for logs only).

use crate::error::{Classify, Fault};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The source container is not one we open (e.g. an HLS playlist or a concat list).
    #[error("source is not a supported video container (mp4, mov, webm or mkv)")]
    UnsupportedContainer,
    /// ffprobe could not read the source (garbage, truncated, missing index).
    #[error("source is not a readable video")]
    Unreadable,
    #[error("source has {pixels} pixels per frame; the limit (maxPixels) is {max}")]
    TooManyPixels { pixels: u64, max: u64 },
    #[error("source lasts {duration_ms} ms; the limit (maxDurationMs) is {max_ms} ms")]
    TooLong { duration_ms: u64, max_ms: u64 },
    #[error("source has {streams} streams; the limit (maxStreams) is {max}")]
    TooManyStreams { streams: u32, max: u32 },
    /// A codec outside the allow-list ([`super::VIDEO_CODECS`], [`super::AUDIO_CODECS`]).
    #[error("source {kind} codec {codec} is not supported")]
    UnsupportedCodec { kind: &'static str, codec: String },
    #[error("source has no video stream; mode {mode} needs one")]
    NoVideoStream { mode: &'static str },
    #[error("source has no audio stream; mode audio needs one")]
    NoAudioStream,
    /// `time` is at or past the end of the source.
    #[error("time ({time_ms} ms) is at or past the end of the source ({duration_ms} ms)")]
    TimePastEnd { time_ms: u64, duration_ms: u64 },
    /// A request parameter cannot be honoured for this source (names the parameter).
    #[error("{param}: {reason}")]
    BadParameter { param: &'static str, reason: String },
    /// The requested output is larger than a limit allows (checked before ffmpeg starts).
    #[error("{param}: {reason}")]
    OutputTooLarge { param: &'static str, reason: String },
    /// The output grew past `limits.maxOutputBytes` while ffmpeg wrote it; the job was killed.
    #[error("the output grew past {max} bytes (limits.maxOutputBytes)")]
    OutputBytes { max: u64 },
    /// ffmpeg/ffprobe was stopped by its own memory or CPU-time limit (`limit`: `memory`,
    /// `cpu`): this input needs more than one child may take.
    #[error("the transform needed more {limit} than one transform may use (limits.ffmpegMemoryBytes, limits.transformTimeoutSeconds)")]
    ResourceLimit { limit: &'static str },
    #[error("probing the source took longer than its time limit")]
    ProbeTimeout,
    #[error("transform took longer than its time limit")]
    Timeout,
    /// ffmpeg exited non-zero. `stderr` is the last few KiB of its log, for logs only.
    #[error("transform failed (ffmpeg exit status {status})")]
    Failed { status: String, stderr: String },
    /// ffmpeg exited 0 without writing anything (e.g. a frame past the last decodable one).
    #[error("transform produced no output")]
    EmptyOutput,
    /// The job was killed on request before it finished.
    #[error("transform was cancelled")]
    Killed,
    #[error("ffprobe output could not be understood: {0}")]
    ProbeOutput(String),
    #[error("input path is unusable: {0}")]
    InvalidInputPath(String),
    #[error("could not start {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("transform i/o error: {0}")]
    Io(#[source] std::io::Error),
}

impl Classify for TranscodeError {
    fn status(&self) -> StatusCode {
        use TranscodeError::*;
        match self {
            UnsupportedContainer
            | Unreadable
            | TooManyPixels { .. }
            | TooLong { .. }
            | TooManyStreams { .. }
            | UnsupportedCodec { .. }
            | NoVideoStream { .. }
            | NoAudioStream
            | EmptyOutput
            | OutputBytes { .. }
            | ResourceLimit { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            TimePastEnd { .. } | BadParameter { .. } | OutputTooLarge { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProbeTimeout | Timeout => StatusCode::GATEWAY_TIMEOUT,
            Killed => StatusCode::SERVICE_UNAVAILABLE,
            Failed { .. } | ProbeOutput(_) | InvalidInputPath(_) | Spawn { .. } | Io(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn code(&self) -> &'static str {
        use TranscodeError::*;
        match self {
            UnsupportedContainer => "source_unsupported_container",
            Unreadable => "source_unreadable",
            TooManyPixels { .. } => "source_too_many_pixels",
            TooLong { .. } => "source_too_long",
            TooManyStreams { .. } => "source_too_many_streams",
            UnsupportedCodec { .. } => "source_unsupported_codec",
            NoVideoStream { .. } => "source_no_video",
            NoAudioStream => "source_no_audio",
            TimePastEnd { .. } => "time_past_end",
            BadParameter { .. } => "invalid_parameter",
            OutputTooLarge { .. } | OutputBytes { .. } => "output_too_large",
            ResourceLimit { .. } => "transform_resource_limit",
            ProbeTimeout => "probe_timeout",
            Timeout => "transform_timeout",
            Failed { .. } => "transform_failed",
            EmptyOutput => "transform_empty",
            Killed => "transform_cancelled",
            ProbeOutput(_) => "probe_output_invalid",
            InvalidInputPath(_) => "transform_input_invalid",
            Spawn { .. } => "transform_spawn_failed",
            Io(_) => "transform_io",
        }
    }

    fn fault(&self) -> Fault {
        if self.status().is_client_error() {
            Fault::Client
        } else {
            Fault::Server
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            TranscodeError::ProbeTimeout | TranscodeError::Timeout | TranscodeError::Killed
        )
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            TranscodeError::TimePastEnd { .. } => Some(serde_json::json!({ "parameter": "time" })),
            TranscodeError::BadParameter { param, .. }
            | TranscodeError::OutputTooLarge { param, .. } => {
                Some(serde_json::json!({ "parameter": param }))
            }
            TranscodeError::OutputBytes { .. } => {
                Some(serde_json::json!({ "limit": "limits.maxOutputBytes" }))
            }
            TranscodeError::ResourceLimit { limit } => Some(serde_json::json!({ "limit": limit })),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_problems_are_422_time_is_400_and_timeouts_may_be_retried() {
        let e = TranscodeError::TooManyPixels { pixels: 9, max: 1 };
        assert_eq!(
            (e.status(), e.fault()),
            (StatusCode::UNPROCESSABLE_ENTITY, Fault::Client)
        );
        let e = TranscodeError::TimePastEnd {
            time_ms: 5,
            duration_ms: 5,
        };
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.details(),
            Some(serde_json::json!({ "parameter": "time" }))
        );
        let e = TranscodeError::Timeout;
        assert_eq!(
            (e.status(), e.fault(), e.retryable()),
            (StatusCode::GATEWAY_TIMEOUT, Fault::Server, true)
        );
    }

    #[test]
    fn output_refusals_name_their_parameter_and_are_client_faults() {
        let e = TranscodeError::OutputTooLarge {
            param: "width",
            reason: "too big".into(),
        };
        assert_eq!(
            (e.status(), e.code(), e.fault(), e.retryable()),
            (
                StatusCode::BAD_REQUEST,
                "output_too_large",
                Fault::Client,
                false
            )
        );
        assert_eq!(
            e.details(),
            Some(serde_json::json!({ "parameter": "width" }))
        );
        let e = TranscodeError::ResourceLimit { limit: "memory" };
        assert_eq!(
            (e.status(), e.code(), e.fault(), e.retryable()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "transform_resource_limit",
                Fault::Client,
                false
            )
        );
        let e = TranscodeError::OutputBytes { max: 10 };
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "output_too_large")
        );
    }

    #[test]
    fn a_failed_run_keeps_stderr_out_of_its_message() {
        let e = TranscodeError::Failed {
            status: "1".into(),
            stderr: "/var/cache/vr/src/abc.mp4: Invalid data".into(),
        };
        assert_eq!(e.to_string(), "transform failed (ffmpeg exit status 1)");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
