//! The process-wide state of a data plane: the live config revision (swapped atomically), the
//! cache, the single-flight table, the transform slots, the transcoder and the metrics.
//!
//! Long-lived handles live here and survive config reloads; everything that comes from the
//! config lives in [`Runtime`] and is replaced whole.

use crate::cache::flight::Flights;
use crate::cache::{Cache, CacheKey, DiskLayer, Layer, MemoryLayer};
use crate::control::runtime::Runtime;
use crate::error::Classify;
use crate::guard::admission::Admission;
use crate::guard::auth::AuditLog;
use crate::metrics::{ActiveLabels, LoadLabels, LoadOutcome, Metrics};
use crate::origin::OriginState;
use crate::transcode::{Transcoder, TranscoderConfig};
use arc_swap::ArcSwapOption;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vr_crds::contract::metrics as metric;
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

/// Which revision a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Stable,
    Canary,
}

impl Role {
    /// The `role` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => metric::ROLE_STABLE,
            Role::Canary => metric::ROLE_CANARY,
        }
    }
}

/// The revisions serving now: the stable one, and during a rollout the canary and its share.
#[derive(Clone)]
pub struct Live {
    pub stable: Arc<Runtime>,
    /// The canary revision and its share of traffic in basis points (1–10000).
    pub canary: Option<(Arc<Runtime>, u32)>,
}

impl Live {
    /// The revision that serves a request whose variant identity hashes to `bucket`
    /// (0–9999, see [`route_bucket`]): the canary when `bucket < weight`.
    ///
    /// Guarantee: for a fixed weight the same bucket always gets the same revision, and raising
    /// the weight only moves requests from stable to canary, never back.
    pub fn pick(&self, bucket: u32) -> (Arc<Runtime>, Role) {
        match &self.canary {
            Some((rt, weight)) if bucket < *weight => (rt.clone(), Role::Canary),
            _ => (self.stable.clone(), Role::Stable),
        }
    }

    /// The revision that serves a request for `path?query`. The routing hash is computed only
    /// while a canary takes traffic: without one, every request is stable at no cost.
    pub fn route(&self, path: &str, query: &str) -> (Arc<Runtime>, Role) {
        match &self.canary {
            Some((_, weight)) if *weight > 0 => self.pick(route_bucket(path, query)),
            _ => (self.stable.clone(), Role::Stable),
        }
    }
}

/// The routing bucket (0–9999) of a request: a stable hash of its variant identity, the path
/// and its query parameters in sorted order (so `?a=1&b=2` and `?b=2&a=1` land together).
/// Signature parameters are left out: re-signing a URL does not move it.
pub fn route_bucket(path: &str, query: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split('=').next().unwrap_or("");
            k != crate::guard::signing::SIG_PARAM && k != crate::guard::signing::EXP_PARAM
        })
        .collect();
    pairs.sort_unstable();
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    for p in pairs {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (n % 10_000) as u32
}

/// Why the long-lived state could not be built (start-up only). Each message is the failing
/// step's own: they already name the path.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The work directory or the audit log could not be created or opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The disk cache layer could not be opened.
    #[error(transparent)]
    DiskCache(#[from] crate::cache::CacheError),
}

/// The data plane.
pub struct App {
    live: ArcSwapOption<Live>,
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
                dir: crate::guard::auth::resolve(base, &d.path),
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
    ) -> Result<Arc<App>, StartError> {
        App::with_sizing(settings, Sizing::from_config(initial, base)).await
    }

    /// Builds the long-lived state with no revision loaded (`/readyz` and public requests
    /// answer 503 until [`App::install`]). `sizing` is fixed for the life of the process;
    /// everything else reloads live.
    pub async fn with_sizing(settings: Settings, sizing: Sizing) -> Result<Arc<App>, StartError> {
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
                    prlimit: {
                        let p = crate::transcode::find_prlimit();
                        if p.is_none() {
                            tracing::warn!("prlimit (util-linux) not found: ffmpeg and ffprobe run without their own memory and CPU-time limits");
                        }
                        p
                    },
                    setpriv: crate::transcode::find_setpriv(),
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

    /// The stable revision, if one is loaded (admin views, purge, readiness).
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.live.load().as_ref().map(|l| l.stable.clone())
    }

    /// The revisions serving now.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.load_full()
    }

    /// Swaps in a new stable revision and ends any canary. Requests in flight finish on the one
    /// they started with.
    pub fn install(&self, rt: Runtime) {
        self.install_live(Live {
            stable: Arc::new(rt),
            canary: None,
        });
    }

    /// Swaps in a stable revision and optionally a canary with its weight in basis points
    /// (a weight of 0 keeps the canary loaded but sends it nothing). Requests in flight finish
    /// on the revision they started with.
    pub fn install_live(&self, live: Live) {
        let old = self.live.load_full();
        let mut before: Vec<(String, &'static str)> = Vec::new();
        if let Some(o) = &old {
            before.push((o.stable.revision().to_owned(), Role::Stable.as_str()));
            if let Some((c, _)) = &o.canary {
                before.push((c.revision().to_owned(), Role::Canary.as_str()));
            }
        }
        let mut after: Vec<(String, &'static str)> =
            vec![(live.stable.revision().to_owned(), Role::Stable.as_str())];
        if let Some((c, _)) = &live.canary {
            after.push((c.revision().to_owned(), Role::Canary.as_str()));
        }
        for (revision, role) in &before {
            if !after.contains(&(revision.clone(), role)) {
                self.metrics
                    .config_active
                    .get_or_create(&ActiveLabels {
                        revision: revision.clone(),
                        role,
                    })
                    .set(0);
            }
        }
        for (revision, role) in &after {
            self.metrics
                .config_active
                .get_or_create(&ActiveLabels {
                    revision: revision.clone(),
                    role,
                })
                .set(1);
        }
        let changed_stable = old
            .as_ref()
            .is_none_or(|o| !Arc::ptr_eq(&o.stable, &live.stable));
        let changed_canary = match (old.as_ref().and_then(|o| o.canary.as_ref()), &live.canary) {
            (Some((a, _)), Some((b, _))) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if changed_stable || changed_canary {
            self.metrics
                .config_loads
                .get_or_create(&LoadLabels {
                    outcome: LoadOutcome::Ok,
                })
                .inc();
        }
        match &live.canary {
            Some((c, w)) => tracing::info!(
                stable = %live.stable.revision(),
                canary = %c.revision(),
                weight_bp = w,
                "config revisions active"
            ),
            None => tracing::info!(
                revision = %live.stable.revision(),
                digest = %live.stable.digest,
                "config revision active"
            ),
        }
        self.metrics
            .canary_weight
            .set(live.canary.as_ref().map_or(0, |(_, w)| i64::from(*w)));
        self.shared.configure(live.stable.shared_cache.clone());
        self.live.store(Some(Arc::new(live)));
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
    fn route_buckets_ignore_parameter_order_and_signatures() {
        let a = route_bucket("/v/a.mp4", "width=640&height=360");
        assert_eq!(a, route_bucket("/v/a.mp4", "height=360&width=640"));
        assert_eq!(
            a,
            route_bucket("/v/a.mp4", "height=360&sig=abc&width=640&exp=9")
        );
        assert!(a < 10_000);
        assert_ne!(
            route_bucket("/v/a.mp4", "width=640"),
            route_bucket("/v/a.mp4", "width=641")
        );
    }

    #[test]
    fn route_buckets_spread_evenly_enough_for_a_weight_to_mean_a_share() {
        let n = 20_000;
        let under = (0..n)
            .filter(|i| route_bucket(&format!("/v/{i}.mp4"), "derivative=mobile") < 1_000)
            .count();
        let share = under as f64 / n as f64;
        assert!((0.09..0.11).contains(&share), "share {share}");
    }

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
