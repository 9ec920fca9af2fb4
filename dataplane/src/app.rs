//! The process-wide state of a data plane: the live config revision (swapped atomically), the
//! cache, the single-flight table, the transform slots, the transcoder and the metrics.
//!
//! Long-lived handles live here and survive config reloads; everything that comes from the
//! config lives in [`Runtime`] and is replaced whole.

use crate::admission::Admission;
use crate::auth::AuditLog;
use crate::cache::{Cache, CacheKey, DiskLayer, Layer, MemoryLayer};
use crate::error::Classify;
use crate::flight::Flights;
use crate::metrics::{ActiveLabels, LoadLabels, LoadOutcome, Metrics};
use crate::origin::OriginState;
use crate::runtime::Runtime;
use crate::transcode::{Transcoder, TranscoderConfig};
use arc_swap::ArcSwapOption;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vr_crds::DataPlaneConfig;

/// A finished variant, shared with every reader of its flight.
#[derive(Debug)]
pub struct Done {
    pub meta: crate::cache::Meta,
}

/// Why a flight ended without a variant.
#[derive(Clone)]
pub enum Failure {
    /// Answer with this error.
    Error(Arc<dyn Classify + Send + Sync>),
    /// Serve the original instead (config said so), marked `X-Fallback-Applied: <reason>`.
    ServeOriginal(&'static str),
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "Error({e})"),
            Failure::ServeOriginal(r) => write!(f, "ServeOriginal({r})"),
        }
    }
}

/// Start-up settings that are not part of the config document.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Where sources are spooled and outputs are written while they stream.
    pub work_dir: PathBuf,
    pub audit_log: Option<PathBuf>,
}

/// The data plane.
pub struct App {
    live: ArcSwapOption<Runtime>,
    pub metrics: Arc<Metrics>,
    pub cache: Cache,
    pub flights: Flights<CacheKey, Arc<Done>, Failure>,
    pub admission: Admission,
    pub transcoder: Transcoder,
    pub origin_state: Arc<OriginState>,
    pub audit: AuditLog,
    pub work_dir: PathBuf,
    pub started: Instant,
}

impl App {
    /// Builds the long-lived state. Cache sizes and transform slots are taken from `initial`
    /// and fixed for the life of the process (a change to them needs a restart; everything
    /// else reloads live).
    pub async fn new(
        settings: Settings,
        initial: &DataPlaneConfig,
        base: &std::path::Path,
    ) -> anyhow::Result<Arc<App>> {
        let metrics = Arc::new(Metrics::new());
        std::fs::create_dir_all(&settings.work_dir)?;
        remove_stale_spools(&settings.work_dir);
        let mut layers: Vec<Arc<dyn Layer>> = Vec::new();
        let mem = &initial.cache.memory;
        if mem.max_bytes > 0 {
            layers.push(Arc::new(MemoryLayer::new(
                mem.max_bytes,
                mem.max_object_bytes,
                metrics.clone(),
            )));
        }
        if let Some(disk) = &initial.cache.disk {
            let dir = crate::auth::resolve(base, &disk.path);
            layers.push(Arc::new(
                DiskLayer::open(dir, disk.max_bytes, metrics.clone()).await?,
            ));
        }
        let l = &initial.limits;
        Ok(Arc::new(App {
            live: ArcSwapOption::empty(),
            cache: Cache::new(layers, metrics.clone()),
            flights: Flights::default(),
            admission: Admission::new(
                l.max_concurrent_transforms as usize,
                l.queue_depth as usize,
                Duration::from_secs(l.queue_timeout_seconds.into()),
                metrics.clone(),
            ),
            transcoder: Transcoder::new(
                TranscoderConfig {
                    ffmpeg: settings.ffmpeg.clone(),
                    ffprobe: settings.ffprobe.clone(),
                    probe_size_bytes: l.probe_size_bytes,
                },
                metrics.clone(),
            ),
            origin_state: OriginState::new(metrics.clone(), settings.work_dir.clone()),
            audit: AuditLog::open(settings.audit_log.as_deref())?,
            work_dir: settings.work_dir,
            started: Instant::now(),
            metrics,
        }))
    }

    /// The live revision, if one is loaded.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.live.load_full()
    }

    /// Swaps in a new revision. Requests in flight finish on the one they started with.
    pub fn install(&self, rt: Runtime) {
        let new_rev = rt.revision().to_owned();
        if let Some(old) = self.live.load_full() {
            if old.revision() != new_rev {
                self.metrics
                    .config_active
                    .get_or_create(&ActiveLabels {
                        revision: old.revision().to_owned(),
                        role: "stable",
                    })
                    .set(0);
            }
        }
        self.metrics
            .config_active
            .get_or_create(&ActiveLabels {
                revision: new_rev.clone(),
                role: "stable",
            })
            .set(1);
        self.metrics
            .config_loads
            .get_or_create(&LoadLabels {
                outcome: LoadOutcome::Ok,
            })
            .inc();
        tracing::info!(revision = %new_rev, digest = %rt.digest, "config revision active");
        self.live.store(Some(Arc::new(rt)));
    }

    /// Counts a refused config.
    pub fn refused(&self, reason: &str) {
        self.metrics
            .config_loads
            .get_or_create(&LoadLabels {
                outcome: LoadOutcome::Invalid,
            })
            .inc();
        tracing::error!(%reason, "config refused; the last good revision keeps serving");
    }
}

/// Deletes spool files a previous run of this process left behind (a crash or SIGKILL skips
/// the destructors that normally remove them). Only our own prefixes are touched.
fn remove_stale_spools(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("out-") || name.starts_with("vr-origin-") {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a stale spool file"),
                Err(err) => {
                    tracing::warn!(file = %name, error = %err, "cannot remove a stale spool file")
                }
            }
        }
    }
}
