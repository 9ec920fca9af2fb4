//! The operator's own metrics: reconciles, failures by reason, durations, and leadership.

use crate::api_requests::ApiRequestLabels;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of reconcile outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `ok` or an error code such as `apply_failed`.
    pub outcome: String,
}

/// Labels of per-config rollout metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub namespace: String,
    pub config: String,
}

/// Labels of analysis windows.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `pass`, `fail`, `inconclusive`, `error`.
    pub verdict: &'static str,
}

/// Every metric of the operator.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub revisions_created: Counter,
    pub leader: Gauge,
    /// Canaries taken out of traffic (failed analysis, health, provider errors, abort).
    pub rollbacks: Family<ConfigLabels, Counter>,
    /// Promotions of a canary to stable.
    pub promotions: Family<ConfigLabels, Counter>,
    /// Percentage of traffic on the canary now.
    pub canary_weight: Family<ConfigLabels, Gauge>,
    /// Analysis windows by verdict.
    pub analysis_windows: Family<VerdictLabels, Counter>,
    /// Requests to the Kubernetes API by verb and resource (see [`crate::api_requests`]).
    pub api_requests: Family<ApiRequestLabels, Counter>,
}

/// Every series registered, all at zero.
impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vr_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let revisions_created = Counter::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by outcome", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "revisions_created",
            "Revision ConfigMaps created",
            revisions_created.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        let rollbacks = Family::<ConfigLabels, Counter>::default();
        let promotions = Family::<ConfigLabels, Counter>::default();
        let canary_weight = Family::<ConfigLabels, Gauge>::default();
        let analysis_windows = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Canary revisions taken out of traffic (failed analysis or health, provider errors with onProviderError Rollback, abort, rollback-to)",
            rollbacks.clone(),
        );
        registry.register(
            "promotions",
            "Canary revisions promoted to stable",
            promotions.clone(),
        );
        registry.register(
            "canary_weight_percent",
            "Percentage of traffic on the canary revision now",
            canary_weight.clone(),
        );
        registry.register(
            "analysis_windows",
            "Canary analysis windows by verdict",
            analysis_windows.clone(),
        );
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API by verb and resource",
            api_requests.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            revisions_created,
            leader,
            rollbacks,
            promotions,
            canary_weight,
            analysis_windows,
            api_requests,
        }
    }
}

/// The OpenMetrics text exposition (`metrics.to_string()` is the `/metrics` body).
impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        prometheus_client::encoding::text::encode(f, &self.registry)
    }
}
