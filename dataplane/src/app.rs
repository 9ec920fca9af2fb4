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
    /// The shared S3 layer (lowest), pointed at a bucket by each installed revision.
    pub shared: Arc<crate::cache::shared::SharedLayer>,
    pub audit: AuditLog,
    pub work_dir: PathBuf,
    pub started: Instant,
}

/// Process-level sizes fixed for the life of the process (a change needs a restart): cache
/// layers, transform slots and queue, and ffmpeg's probe size.
///
/// In file mode they come from the first config document ([`Sizing::from_config`]); in
/// Kubernetes the first revision arrives after start, so they come from flags that the
/// operator sets on the Deployment. [`Sizing::default`] is the config model's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// Total bytes of the memory layer (0 disables it).
    pub memory_cache_bytes: u64,
    /// Largest object the memory layer holds.
    pub memory_cache_object_bytes: u64,
    /// The disk layer, if any.
    pub disk_cache: Option<DiskSizing>,
    /// Concurrent transforms (0 = number of CPUs).
    pub transform_slots: u32,
    /// Transforms that may wait for a slot.
    pub transform_queue: u32,
    /// Longest wait for a slot.
    pub transform_queue_timeout: Duration,
    /// Bytes ffmpeg may read to detect the input format.
    pub probe_size_bytes: u64,
}

/// Where the disk cache layer lives and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSizing {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// Default size of the disk layer when only its directory is given (the config model's default).
pub const DEFAULT_DISK_CACHE_BYTES: u64 = 10 << 30;

impl Default for Sizing {
    fn default() -> Self {
        let mem = vr_crds::dataplane::MemoryCache::default();
        let l = vr_crds::dataplane::Limits::default();
        Sizing {
            memory_cache_bytes: mem.max_bytes,
            memory_cache_object_bytes: mem.max_object_bytes,
            disk_cache: None,
            transform_slots: l.max_concurrent_transforms,
            transform_queue: l.queue_depth,
            transform_queue_timeout: Duration::from_secs(l.queue_timeout_seconds.into()),
            probe_size_bytes: l.probe_size_bytes,
        }
    }
}

impl Sizing {
    /// The sizes a config document asks for; a relative disk cache path resolves against `base`.
    pub fn from_config(cfg: &DataPlaneConfig, base: &std::path::Path) -> Sizing {
        let l = &cfg.limits;
        Sizing {
            memory_cache_bytes: cfg.cache.memory.max_bytes,
            memory_cache_object_bytes: cfg.cache.memory.max_object_bytes,
            disk_cache: cfg.cache.disk.as_ref().map(|d| DiskSizing {
                dir: crate::auth::resolve(base, &d.path),
                max_bytes: d.max_bytes,
            }),
            transform_slots: l.max_concurrent_transforms,
            transform_queue: l.queue_depth,
            transform_queue_timeout: Duration::from_secs(l.queue_timeout_seconds.into()),
            probe_size_bytes: l.probe_size_bytes,
        }
    }
}

impl App {
    /// Builds the long-lived state with the sizes `initial` asks for (file mode): see
    /// [`App::with_sizing`].
    pub async fn new(
        settings: Settings,
        initial: &DataPlaneConfig,
        base: &std::path::Path,
    ) -> anyhow::Result<Arc<App>> {
        App::with_sizing(settings, Sizing::from_config(initial, base)).await
    }

    /// Builds the long-lived state with no revision loaded (`/readyz` and public requests
    /// answer 503 until [`App::install`]). `sizing` is fixed for the life of the process;
    /// everything else reloads live.
    pub async fn with_sizing(settings: Settings, sizing: Sizing) -> anyhow::Result<Arc<App>> {
        let metrics = Arc::new(Metrics::new());
        std::fs::create_dir_all(&settings.work_dir)?;
        remove_stale_spools(&settings.work_dir);
        let mut layers: Vec<Arc<dyn Layer>> = Vec::new();
        if sizing.memory_cache_bytes > 0 {
            layers.push(Arc::new(MemoryLayer::new(
                sizing.memory_cache_bytes,
                sizing.memory_cache_object_bytes,
                metrics.clone(),
            )));
        }
        if let Some(disk) = &sizing.disk_cache {
            layers.push(Arc::new(
                DiskLayer::open(disk.dir.clone(), disk.max_bytes, metrics.clone()).await?,
            ));
        }
        let shared = crate::cache::shared::SharedLayer::new(
            metrics.clone(),
            settings.work_dir.clone(),
            layers.clone(),
        );
        layers.push(shared.clone());
        Ok(Arc::new(App {
            shared,
            live: ArcSwapOption::empty(),
            cache: Cache::new(layers, metrics.clone()),
            flights: Flights::default(),
            admission: Admission::new(
                sizing.transform_slots as usize,
                sizing.transform_queue as usize,
                sizing.transform_queue_timeout,
                metrics.clone(),
            ),
            transcoder: Transcoder::new(
                TranscoderConfig {
                    ffmpeg: settings.ffmpeg.clone(),
                    ffprobe: settings.ffprobe.clone(),
                    probe_size_bytes: sizing.probe_size_bytes,
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
        self.shared.configure(rt.shared_cache.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sizing_is_the_config_models_defaults() {
        let cfg = DataPlaneConfig::from_yaml(
            "origins:\n  - name: v\n    matcher: '^/(?P<f>.+)$'\n    sources:\n      - kind: local\n        name: d\n        root: .\n        path: '${f}'\ncache:\n  disk:\n    path: c\n",
        )
        .expect("valid");
        let from_file = Sizing::from_config(&cfg, std::path::Path::new("/srv"));
        assert_eq!(
            from_file.disk_cache,
            Some(DiskSizing {
                dir: "/srv/c".into(),
                max_bytes: DEFAULT_DISK_CACHE_BYTES,
            })
        );
        assert_eq!(
            Sizing {
                disk_cache: None,
                ..from_file
            },
            Sizing::default()
        );
    }
}
