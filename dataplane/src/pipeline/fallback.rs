//! Fallback policy: how a production that made no variant ends — an error for every reader, or
//! the original served instead (oversize sources, transform errors), as the config says.

use super::error::StageError;
use crate::control::app::Failure;
use crate::control::runtime::Runtime;
use crate::error::Classify;
use crate::origin::Route;
use crate::transcode;
use http::StatusCode;
use std::sync::Arc;
use vr_crds::dataplane::{OversizePolicy, TransformErrorPolicy};

use super::error::RequestError;

/// Whether `e` is a source over `limits.maxInputBytes` that the config says to serve as is.
pub(crate) fn oversize_fallback(rt: &Runtime, e: &crate::origin::OriginError) -> bool {
    matches!(e, crate::origin::OriginError::TooLarge { .. })
        && rt.config.limits.oversize == OversizePolicy::ServeOriginal
}

/// How a production ended when it produced no variant.
pub(crate) enum Outcome {
    Abandoned,
    Timeout(transcode::TranscodeError),
    Origin(crate::origin::OriginError),
    Transcode(transcode::TranscodeError),
    Stage(StageError),
}

impl Outcome {
    pub(crate) fn from_transcode(e: transcode::TranscodeError) -> Outcome {
        if e.code() == "transform_timeout" {
            Outcome::Timeout(e)
        } else {
            Outcome::Transcode(e)
        }
    }

    /// Applies the config's fallback policies.
    pub(crate) fn into_failure(self, rt: &Runtime, route: &Route) -> Failure {
        let origin_policy = rt
            .origin_settings
            .get(&route.origin)
            .map(|o| o.on_transform_error)
            .unwrap_or_default();
        match self {
            Outcome::Abandoned => Failure::Error(Arc::new(RequestError::Abandoned)),
            Outcome::Origin(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE
                    && rt.config.limits.oversize == OversizePolicy::ServeOriginal
                {
                    Failure::ServeOriginal("oversize")
                } else {
                    Failure::Error(Arc::new(e))
                }
            }
            Outcome::Transcode(e) | Outcome::Timeout(e) => {
                // Mistakes in the request (e.g. `time` past the end) are answered, not hidden.
                if origin_policy == TransformErrorPolicy::ServeOriginal
                    && e.status() != StatusCode::BAD_REQUEST
                {
                    return Failure::ServeOriginal("transform-error");
                }
                Failure::Error(Arc::new(e))
            }
            Outcome::Stage(e) => Failure::Error(Arc::from(e)),
        }
    }
}
