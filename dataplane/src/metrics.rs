//! Prometheus metrics of the data plane (OpenMetrics text via prometheus-client).
//!
//! One [`Metrics`] value is built at start-up and shared (`Arc`) by every layer; families are
//! labelled so the operator's canary analysis can compare revisions (`revision`, `role`).

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt;
use vr_crds::contract::metrics as metric;

/// Labels of served requests (keys from [`metric`], which the operator's analysis reads).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RequestLabels {
    /// `2xx`, `3xx`, `4xx`, `5xx`.
    pub status_class: &'static str,
    /// `HIT`, `MISS`, `BYPASS`, `COLLAPSED`, `PASS` (not cacheable), `ERROR`.
    pub cache: &'static str,
    /// Config revision that served the request.
    pub revision: String,
    /// `stable` or `canary`.
    pub role: &'static str,
}

/// Labels of request latency. `cache` tells transformed requests (`MISS`) from the rest, so
/// the canary analysis compares like with like (a new revision starts with a cold cache).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RevisionLabels {
    pub revision: String,
    pub role: &'static str,
    pub cache: &'static str,
}

/// Labels of transforms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransformLabels {
    /// `video`, `frame`, `spritesheet`, `audio`.
    pub mode: &'static str,
    /// `ok`, `error`, `timeout`, `abandoned`.
    pub outcome: &'static str,
}

/// Labels of transform durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

/// Labels of ffmpeg/ffprobe process starts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    /// `ffprobe` or `ffmpeg`.
    pub program: &'static str,
}

/// Labels of origin fetches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    pub origin: String,
    pub source: String,
    /// `ok`, `not_found`, `error`, `timeout`, `too_large`, `breaker_open`.
    pub outcome: &'static str,
}

/// Labels of a breaker.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub origin: String,
    pub source: String,
}

/// Labels of cache lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `memory`, `disk`, `s3`.
    pub layer: &'static str,
    /// `hit`, `miss`, `expired`.
    pub result: &'static str,
}

/// Labels of a cache layer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabels {
    pub layer: &'static str,
}

/// Outcome of a config load (label values are lower case: `ok`, `invalid`).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum LoadOutcome {
    Ok,
    Invalid,
}

impl EncodeLabelValue for LoadOutcome {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> std::fmt::Result {
        use std::fmt::Write;
        encoder.write_str(match self {
            LoadOutcome::Ok => "ok",
            LoadOutcome::Invalid => "invalid",
        })
    }
}

/// Labels of config loads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    pub outcome: LoadOutcome,
}

/// Labels of the active config revisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ActiveLabels {
    pub revision: String,
    pub role: &'static str,
}

/// Labels of admin actions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdminLabels {
    pub action: &'static str,
    /// `ok`, `denied`, `error`.
    pub outcome: &'static str,
}

/// Labels of presigned-URL lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PresignLabels {
    pub origin: String,
    pub source: String,
    /// `hit` (a cached URL outside the safety margin), `miss` (signed on the request path),
    /// `refresh` (re-signed in the background before the margin).
    pub result: &'static str,
}

// The label sets the operator reads are encoded by hand, so their keys come from the contract.

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> fmt::Result {
        (metric::LABEL_STATUS_CLASS, self.status_class).encode(encoder.encode_label())?;
        (metric::LABEL_CACHE, self.cache).encode(encoder.encode_label())?;
        (metric::LABEL_REVISION, self.revision.as_str()).encode(encoder.encode_label())?;
        (metric::LABEL_ROLE, self.role).encode(encoder.encode_label())
    }
}

impl EncodeLabelSet for RevisionLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> fmt::Result {
        (metric::LABEL_REVISION, self.revision.as_str()).encode(encoder.encode_label())?;
        (metric::LABEL_ROLE, self.role).encode(encoder.encode_label())?;
        (metric::LABEL_CACHE, self.cache).encode(encoder.encode_label())
    }
}

impl EncodeLabelSet for ActiveLabels {
    fn encode(&self, mut encoder: LabelSetEncoder) -> fmt::Result {
        (metric::LABEL_REVISION, self.revision.as_str()).encode(encoder.encode_label())?;
        (metric::LABEL_ROLE, self.role).encode(encoder.encode_label())
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn transform_histogram() -> Histogram {
    // 50 ms … ~27 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Every metric of the data plane.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    pub transforms_in_flight: Gauge,
    pub transform_queue_depth: Gauge,
    pub transforms: Family<TransformLabels, Counter>,
    pub transform_duration: Family<ModeLabels, Histogram, fn() -> Histogram>,
    pub transforms_shed: Counter,
    pub processes_spawned: Family<ProcessLabels, Counter>,
    pub origin_fetches: Family<OriginLabels, Counter>,
    pub breaker_state: Family<SourceLabels, Gauge>,
    pub cache_lookups: Family<CacheLabels, Counter>,
    pub cache_bytes: Family<LayerLabels, Gauge>,
    pub cache_objects: Family<LayerLabels, Gauge>,
    pub cache_evictions: Family<LayerLabels, Counter>,
    pub collapsed: Counter,
    pub config_loads: Family<LoadLabels, Counter>,
    pub config_active: Family<ActiveLabels, Gauge>,
    pub admin_requests: Family<AdminLabels, Counter>,
    /// Canary answers that failed and were answered by the stable revision instead.
    pub canary_fallbacks: Counter,
    /// Share of traffic the loaded canary takes, in basis points (0 without a canary).
    pub canary_weight: Gauge,
    pub presign: Family<PresignLabels, Counter>,
    /// Operations on the shared S3 cache layer that failed because the bucket was unreachable.
    pub shared_cache_errors: Counter,
    /// 1 while the shared S3 cache layer is reachable, 0 while it is not.
    pub shared_cache_up: Gauge,
}

impl Metrics {
    /// Builds and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(metric::PREFIX);
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            transforms_in_flight: Gauge::default(),
            transform_queue_depth: Gauge::default(),
            transforms: Family::default(),
            transform_duration: Family::new_with_constructor(
                transform_histogram as fn() -> Histogram,
            ),
            transforms_shed: Counter::default(),
            processes_spawned: Family::default(),
            origin_fetches: Family::default(),
            breaker_state: Family::default(),
            cache_lookups: Family::default(),
            cache_bytes: Family::default(),
            cache_objects: Family::default(),
            cache_evictions: Family::default(),
            collapsed: Counter::default(),
            config_loads: Family::default(),
            config_active: Family::default(),
            admin_requests: Family::default(),
            canary_fallbacks: Counter::default(),
            canary_weight: Gauge::default(),
            presign: Family::default(),
            shared_cache_errors: Counter::default(),
            shared_cache_up: Gauge::default(),
            registry: Registry::default(),
        };
        for register in [
            Self::register_requests,
            Self::register_transforms,
            Self::register_sources,
            Self::register_control,
        ] {
            register(&m, &mut registry);
        }
        Metrics { registry, ..m }
    }

    /// Requests: counts and latency by revision and role (what the canary analysis reads), collapsing, canary routing.
    fn register_requests(&self, registry: &mut Registry) {
        registry.register(
            metric::REQUESTS,
            "Requests served, by status class, cache result and config revision",
            self.requests.clone(),
        );
        registry.register(
            metric::REQUEST_DURATION,
            "Request latency to the last byte of headers, by config revision, role and cache result",
            self.request_duration.clone(),
        );
        registry.register(
            "collapsed_requests",
            "Requests that joined a transform already in flight",
            self.collapsed.clone(),
        );
        registry.register(
            metric::CANARY_WEIGHT,
            "Share of traffic routed to the canary revision, in basis points (0 without a canary)",
            self.canary_weight.clone(),
        );
        registry.register(
            "canary_fallbacks",
            "Canary answers that failed (4xx/5xx) and were answered by the stable revision instead",
            self.canary_fallbacks.clone(),
        );
    }

    /// Transforms: slots, queue, outcomes, durations, child processes.
    fn register_transforms(&self, registry: &mut Registry) {
        registry.register(
            "transforms_in_flight",
            "ffmpeg transforms running now",
            self.transforms_in_flight.clone(),
        );
        registry.register(
            metric::TRANSFORM_QUEUE_DEPTH,
            "Transforms waiting for a slot",
            self.transform_queue_depth.clone(),
        );
        registry.register(
            "transforms",
            "Finished transforms by mode and outcome",
            self.transforms.clone(),
        );
        registry.register(
            "transform_duration_seconds",
            "Wall time of a transform, by mode",
            self.transform_duration.clone(),
        );
        registry.register(
            "transforms_shed",
            "Transforms refused with 503 because every slot and queue place was taken",
            self.transforms_shed.clone(),
        );
        registry.register(
            "processes_spawned",
            "ffmpeg and ffprobe processes started",
            self.processes_spawned.clone(),
        );
    }

    /// Origins and cache layers: fetches, breakers, presigned URLs, lookups, occupancy, the shared bucket.
    fn register_sources(&self, registry: &mut Registry) {
        registry.register(
            "origin_fetches",
            "Source fetches by origin, source and outcome",
            self.origin_fetches.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state per source (0 closed, 1 half-open, 2 open)",
            self.breaker_state.clone(),
        );
        registry.register(
            "cache_lookups",
            "Cache lookups by layer and result",
            self.cache_lookups.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by each cache layer",
            self.cache_bytes.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects held by each cache layer",
            self.cache_objects.clone(),
        );
        registry.register(
            "cache_evictions",
            "Objects evicted from each cache layer for space",
            self.cache_evictions.clone(),
        );
        registry.register(
            "presigned_urls",
            "Presigned-URL lookups by origin, source and result (hit, miss, refresh)",
            self.presign.clone(),
        );
        registry.register(
            "shared_cache_errors",
            "Shared S3 cache layer operations that failed (the bucket was unreachable or refused)",
            self.shared_cache_errors.clone(),
        );
        registry.register(
            "shared_cache_up",
            "Whether the shared S3 cache layer answered its last operation (1) or not (0)",
            self.shared_cache_up.clone(),
        );
    }

    /// Config loads, active revisions, admin actions.
    fn register_control(&self, registry: &mut Registry) {
        registry.register(
            "config_loads",
            "Config load attempts by outcome",
            self.config_loads.clone(),
        );
        registry.register(
            metric::CONFIG_ACTIVE,
            "Active config revisions (1 per active revision and role)",
            self.config_active.clone(),
        );
        registry.register(
            "admin_requests",
            "Admin API actions by outcome",
            self.admin_requests.clone(),
        );
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_the_operator_reads_carry_the_contract_names() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                status_class: "2xx",
                cache: metric::CACHE_MISS,
                revision: "r1".into(),
                role: metric::ROLE_CANARY,
            })
            .inc();
        m.request_duration
            .get_or_create(&RevisionLabels {
                revision: "r1".into(),
                role: metric::ROLE_CANARY,
                cache: metric::CACHE_MISS,
            })
            .observe(0.01);
        m.config_active
            .get_or_create(&ActiveLabels {
                revision: "r1".into(),
                role: metric::ROLE_STABLE,
            })
            .set(1);
        let text = m.encode();
        assert!(
            text.contains(&format!(
                "{}{{status_class=\"2xx\",cache=\"MISS\",revision=\"r1\",role=\"canary\"}} 1",
                metric::REQUESTS_TOTAL
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{}{{le=\"0.016\",revision=\"r1\",role=\"canary\",cache=\"MISS\"}} 1",
                metric::REQUEST_DURATION_BUCKET
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{}{{revision=\"r1\",role=\"stable\"}} 1",
                metric::CONFIG_ACTIVE_SERIES
            )),
            "{text}"
        );
    }

    #[test]
    fn config_load_outcomes_are_lower_case_label_values() {
        let m = Metrics::new();
        m.config_loads
            .get_or_create(&LoadLabels {
                outcome: LoadOutcome::Invalid,
            })
            .inc();
        m.config_loads
            .get_or_create(&LoadLabels {
                outcome: LoadOutcome::Ok,
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("vr_config_loads_total{outcome=\"invalid\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vr_config_loads_total{outcome=\"ok\"} 1"),
            "{text}"
        );
    }
}
