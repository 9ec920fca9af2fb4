//! Prometheus metrics of the data plane (OpenMetrics text via prometheus-client).
//!
//! One [`Metrics`] value is built at start-up and shared (`Arc`) by every layer; families are
//! labelled so the operator's canary analysis can compare revisions (`revision`, `role`).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of served requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
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
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
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
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
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
        let mut registry = Registry::with_prefix("vr");
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
        registry.register(
            "requests",
            "Requests served, by status class, cache result and config revision",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency to the last byte of headers, by config revision, role and cache result",
            m.request_duration.clone(),
        );
        registry.register(
            "transforms_in_flight",
            "ffmpeg transforms running now",
            m.transforms_in_flight.clone(),
        );
        registry.register(
            "transform_queue_depth",
            "Transforms waiting for a slot",
            m.transform_queue_depth.clone(),
        );
        registry.register(
            "transforms",
            "Finished transforms by mode and outcome",
            m.transforms.clone(),
        );
        registry.register(
            "transform_duration_seconds",
            "Wall time of a transform, by mode",
            m.transform_duration.clone(),
        );
        registry.register(
            "transforms_shed",
            "Transforms refused with 503 because every slot and queue place was taken",
            m.transforms_shed.clone(),
        );
        registry.register(
            "processes_spawned",
            "ffmpeg and ffprobe processes started",
            m.processes_spawned.clone(),
        );
        registry.register(
            "origin_fetches",
            "Source fetches by origin, source and outcome",
            m.origin_fetches.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state per source (0 closed, 1 half-open, 2 open)",
            m.breaker_state.clone(),
        );
        registry.register(
            "cache_lookups",
            "Cache lookups by layer and result",
            m.cache_lookups.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by each cache layer",
            m.cache_bytes.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects held by each cache layer",
            m.cache_objects.clone(),
        );
        registry.register(
            "cache_evictions",
            "Objects evicted from each cache layer for space",
            m.cache_evictions.clone(),
        );
        registry.register(
            "collapsed_requests",
            "Requests that joined a transform already in flight",
            m.collapsed.clone(),
        );
        registry.register(
            "config_loads",
            "Config load attempts by outcome",
            m.config_loads.clone(),
        );
        registry.register(
            "config_active",
            "Active config revisions (1 per active revision and role)",
            m.config_active.clone(),
        );
        registry.register(
            "admin_requests",
            "Admin API actions by outcome",
            m.admin_requests.clone(),
        );
        registry.register(
            "canary_weight_basis_points",
            "Share of traffic routed to the canary revision, in basis points (0 without a canary)",
            m.canary_weight.clone(),
        );
        registry.register(
            "canary_fallbacks",
            "Canary answers that failed (4xx/5xx) and were answered by the stable revision instead",
            m.canary_fallbacks.clone(),
        );
        registry.register(
            "presigned_urls",
            "Presigned-URL lookups by origin, source and result (hit, miss, refresh)",
            m.presign.clone(),
        );
        registry.register(
            "shared_cache_errors",
            "Shared S3 cache layer operations that failed (the bucket was unreachable or refused)",
            m.shared_cache_errors.clone(),
        );
        registry.register(
            "shared_cache_up",
            "Whether the shared S3 cache layer answered its last operation (1) or not (0)",
            m.shared_cache_up.clone(),
        );
        Metrics { registry, ..m }
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
