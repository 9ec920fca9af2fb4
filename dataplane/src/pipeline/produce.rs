//! The leader's production of a variant, in a task of its own: admission (a transform slot) →
//! source input → probe within limits → ffmpeg → spool (streamed to every reader as it grows)
//! → metadata → store. It runs even if the leader's client leaves, as long as a reader remains.

use super::error::{boxed, RequestError};
use super::fallback::Outcome;
use super::headers::etag_for;
use crate::cache::flight::Producer;
use crate::cache::{CacheKey, Meta, Stored};
use crate::control::app::{App, Done, Failure};
use crate::control::runtime::Runtime;
use crate::metrics::{ModeLabels, TransformLabels};
use crate::origin::Route;
use crate::request::variant::Variant;
use crate::transcode::{self, ChildLimits, OutputLimits, ProbeLimits};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Everything the leader's background task needs; runs even if the leader's client leaves, as
/// long as any reader remains.
pub(crate) struct Production {
    pub(crate) app: Arc<App>,
    pub(crate) rt: Arc<Runtime>,
    pub(crate) route: Route,
    pub(crate) variant: Variant,
    pub(crate) key: CacheKey,
    pub(crate) tags: Vec<String>,
    pub(crate) ttl: u32,
    pub(crate) store: bool,
    pub(crate) request_id: String,
}

impl Production {
    pub(crate) async fn run(self, producer: Producer<Arc<Done>, Failure>) {
        let mode = self.variant.mode.as_str();
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            r = self.produce(&producer) => r,
            () = producer.abandoned() => Err(Outcome::Abandoned),
        };
        let label = match &outcome {
            Ok(_) => "ok",
            Err(Outcome::Abandoned) => "abandoned",
            Err(Outcome::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.app
            .metrics
            .transforms
            .get_or_create(&TransformLabels {
                mode,
                outcome: label,
            })
            .inc();
        self.app
            .metrics
            .transform_duration
            .get_or_create(&ModeLabels { mode })
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(done) => {
                producer.finish(Ok(done));
            }
            Err(o) => {
                let failure = o.into_failure(&self.rt, &self.route);
                if let Failure::Error(e) = &failure {
                    tracing::warn!(request_id = %self.request_id, key = %self.key.hex(), code = e.code(), error = %e, "transform failed");
                }
                producer.finish(Err(failure));
            }
        }
        self.app.flights.remove(&self.key, &producer);
    }

    async fn produce(&self, producer: &Producer<Arc<Done>, Failure>) -> Result<Arc<Done>, Outcome> {
        let app = &self.app;
        let cfg = &self.rt.config;
        let _slot = app
            .admission
            .acquire()
            .await
            .map_err(|e| Outcome::Stage(boxed(e)))?;
        // S3 sources may hand ffmpeg a presigned URL (byte ranges) instead of a download.
        let fetched = self
            .rt
            .origins
            .input(&self.route)
            .await
            .map_err(Outcome::Origin)?;
        let limits = ProbeLimits {
            max_pixels: cfg.limits.max_pixels,
            max_duration_ms: u64::from(cfg.limits.max_duration_seconds) * 1000,
            max_streams: cfg.limits.max_streams,
            probe_size_bytes: cfg.limits.probe_size_bytes,
            timeout: Duration::from_secs(30),
            memory_bytes: cfg.limits.ffprobe_memory_bytes,
        };
        let info = app
            .transcoder
            .probe_input(fetched.input(), &limits)
            .await
            .map_err(Outcome::Transcode)?;
        let plan = transcode::plan(&self.variant, &info, cfg.limits.ffmpeg_threads)
            .map_err(Outcome::Transcode)?;
        // The output is bounded before ffmpeg starts (derived side, cover pre-crop frame,
        // spritesheet, frames); the bytes while it runs, below.
        plan.check(&self.variant, &output_limits(&cfg.limits))
            .map_err(Outcome::Transcode)?;
        let deadline = Duration::from_secs(cfg.limits.transform_timeout_seconds.into());
        // Decoder, filter and encoder threads may all be busy at once.
        let threads = cfg.limits.ffmpeg_threads.clamp(1, 16) * 3;
        let child = ChildLimits::for_run(cfg.limits.ffmpeg_memory_bytes, deadline, threads);
        let mut job = app
            .transcoder
            .spawn_input(fetched.input(), &plan, deadline, &child)
            .map_err(Outcome::Transcode)?;

        let spool = tempfile::Builder::new()
            .prefix("out-")
            .tempfile_in(&app.work_dir)
            .map_err(|e| {
                Outcome::Stage(boxed(RequestError::Internal(format!(
                    "cannot create spool: {e}"
                ))))
            })?;
        let reader_handle = spool.reopen().map_err(|e| {
            Outcome::Stage(boxed(RequestError::Internal(format!(
                "cannot reopen spool: {e}"
            ))))
        })?;
        producer.start(Arc::new(reader_handle), plan.content_type().to_owned());
        let mut writer = spool
            .as_file()
            .try_clone()
            .map_err(|e| Outcome::Stage(boxed(RequestError::Internal(e.to_string()))))?;
        let mut total: u64 = 0;
        while let Some(chunk) = job.next_chunk().await {
            let chunk = chunk.map_err(Outcome::from_transcode)?;
            // Page-cache writes of ≤ a pipe buffer are short; a blocking task would cost more.
            writer.write_all(&chunk).map_err(|e| {
                Outcome::Stage(boxed(RequestError::Internal(format!(
                    "spool write failed: {e}"
                ))))
            })?;
            total += chunk.len() as u64;
            if total > cfg.limits.max_output_bytes {
                job.kill().await;
                return Err(Outcome::Transcode(transcode::TranscodeError::OutputBytes {
                    max: cfg.limits.max_output_bytes,
                }));
            }
            producer.advance(chunk.len() as u64);
        }
        drop(fetched);
        let now = SystemTime::now();
        let meta = Meta {
            content_type: plan.content_type().to_owned(),
            length: total,
            status: 200,
            created: now,
            expires: now + Duration::from_secs(self.ttl.into()),
            tags: self.tags.clone(),
            etag: etag_for(&self.key).to_str().unwrap_or_default().to_owned(),
            last_modified: now,
            variant: self.variant.canonical(),
            cache_control: None,
        };
        if self.store {
            app.cache
                .put(&self.key, &meta, &Stored::File(spool.path().to_path_buf()))
                .await;
        }
        // `spool` is dropped (unlinked) here; readers keep their open handle.
        Ok(Arc::new(Done { meta }))
    }
}

/// The output bounds of a revision's limits.
fn output_limits(l: &vr_crds::dataplane::Limits) -> OutputLimits {
    OutputLimits {
        max_output_pixels: l.max_output_pixels,
        max_spritesheet_pixels: l.max_spritesheet_pixels,
        max_output_frames: l.max_output_frames,
    }
}
