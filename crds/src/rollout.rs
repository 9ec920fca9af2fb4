//! The rollout policy (`VideoResizerConfig.spec.rollout`) and the rollout state the operator
//! records in status: the step, the weight, the last analysis numbers and the revision history.
//!
//! A new revision is served to a share of traffic (the canary) that grows step by step. At every
//! `analysis.intervalSeconds` the operator compares the canary's numbers with the stable
//! revision's; a step advances once its pause has passed with at least one passing window and the
//! latest window passing; the last step promotes (stable := canary), followed by a bake time during which the
//! new stable is still watched. A failing canary goes to weight 0 at once.
//!
//! Percentages are integers and times are whole seconds (Kubernetes API conventions avoid
//! floating-point fields in specs); measured rates in status are numbers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a new revision reaches all traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Canary steps, in order. Each sends `weight` percent of traffic to the new revision for at
    /// least `pauseSeconds`. An empty list switches all traffic at once, without analysis.
    #[serde(default = "default_steps")]
    #[schemars(length(max = 16))]
    pub steps: Vec<RolloutStep>,
    /// How the canary is judged at every step.
    #[serde(default)]
    pub analysis: AnalysisSpec,
    /// What to do when the metrics cannot be read `analysis.consecutiveErrorLimit` times in a
    /// row: `Pause` holds the current weight until they can, `Rollback` sends all traffic back to
    /// the stable revision.
    #[serde(default)]
    pub on_provider_error: ProviderErrorPolicy,
    /// After promotion the new stable revision is still watched for this many seconds against
    /// the absolute limits (`maxErrorRatePercent`, `maxP95Milliseconds`), and rolled back to the
    /// previous stable revision if it fails them. 0 disables the bake.
    #[serde(default = "default_bake_seconds")]
    #[schemars(range(max = 86400))]
    pub bake_seconds: u32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            steps: default_steps(),
            analysis: AnalysisSpec::default(),
            on_provider_error: ProviderErrorPolicy::default(),
            bake_seconds: default_bake_seconds(),
        }
    }
}

fn default_steps() -> Vec<RolloutStep> {
    vec![
        RolloutStep {
            weight: 10,
            pause_seconds: 30,
        },
        RolloutStep {
            weight: 50,
            pause_seconds: 30,
        },
    ]
}

fn default_bake_seconds() -> u32 {
    30
}

/// One canary step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Percentage of traffic (1–100) sent to the canary during this step.
    #[schemars(range(min = 1, max = 100))]
    pub weight: u32,
    /// Least time at this step, in seconds. The step advances when this has passed, at least one
    /// analysis window at this step passed, and the latest window passed.
    #[serde(default = "default_pause_seconds")]
    #[schemars(range(max = 86400))]
    pub pause_seconds: u32,
}

fn default_pause_seconds() -> u32 {
    30
}

/// What to do when metrics cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProviderErrorPolicy {
    /// Hold the current weight until metrics can be read again.
    #[default]
    Pause,
    /// Send all traffic back to the stable revision.
    Rollback,
}

/// How the canary is compared with the stable revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Length of one analysis window, in seconds.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: u32,
    /// Fewest canary requests in a window for a verdict; fewer gives `Inconclusive`, which
    /// neither advances nor fails the rollout.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_requests: u32,
    /// Highest share (percent) of canary requests that may end in a 5xx.
    #[serde(default = "default_max_error_rate")]
    #[schemars(range(max = 100))]
    pub max_error_rate_percent: u32,
    /// How many percentage points the canary's 5xx share may exceed the stable revision's in the
    /// same window.
    #[serde(default = "default_max_error_rate_increase")]
    #[schemars(range(max = 100))]
    pub max_error_rate_increase_percent: u32,
    /// How many percentage points the canary's 4xx share may exceed the stable revision's (an
    /// origin rule pointing at a missing path answers 404; client mistakes hit both revisions
    /// alike, so only the difference counts).
    #[serde(default = "default_max_client_error_rate_increase")]
    #[schemars(range(max = 100))]
    pub max_client_error_rate_increase_percent: u32,
    /// Highest p95 latency of the canary's transformed (cache-miss) requests, in milliseconds.
    /// No absolute limit when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600000))]
    pub max_p95_milliseconds: Option<u32>,
    /// Highest ratio (percent) of the canary's p95 transformed-request latency to the stable
    /// revision's, checked when both revisions transformed at least `minRequests / 4` requests in
    /// the window and the canary's p95 is above `latencyFloorMilliseconds`.
    #[serde(default = "default_max_p95_ratio")]
    #[schemars(range(min = 100, max = 100000))]
    pub max_p95_ratio_percent: u32,
    /// Latencies below this never fail the ratio rule (noise of fast requests), in milliseconds.
    #[serde(default = "default_latency_floor")]
    #[schemars(range(max = 3600000))]
    pub latency_floor_milliseconds: u32,
    /// Failed windows tolerated: the rollout fails at window `failureLimit + 1`.
    #[serde(default = "default_failure_limit")]
    #[schemars(range(max = 100))]
    pub failure_limit: u32,
    /// Metric read errors in a row that trigger `onProviderError`.
    #[serde(default = "default_consecutive_error_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub consecutive_error_limit: u32,
    /// Where the numbers come from (default: the operator scrapes the data-plane pods).
    #[serde(default)]
    pub provider: AnalysisProvider,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            interval_seconds: default_interval(),
            min_requests: default_min_requests(),
            max_error_rate_percent: default_max_error_rate(),
            max_error_rate_increase_percent: default_max_error_rate_increase(),
            max_client_error_rate_increase_percent: default_max_client_error_rate_increase(),
            max_p95_milliseconds: None,
            max_p95_ratio_percent: default_max_p95_ratio(),
            latency_floor_milliseconds: default_latency_floor(),
            failure_limit: default_failure_limit(),
            consecutive_error_limit: default_consecutive_error_limit(),
            provider: AnalysisProvider::default(),
        }
    }
}

fn default_interval() -> u32 {
    5
}
fn default_min_requests() -> u32 {
    20
}
fn default_max_error_rate() -> u32 {
    5
}
fn default_max_error_rate_increase() -> u32 {
    2
}
fn default_max_client_error_rate_increase() -> u32 {
    10
}
fn default_max_p95_ratio() -> u32 {
    300
}
fn default_latency_floor() -> u32 {
    250
}
fn default_failure_limit() -> u32 {
    1
}
fn default_consecutive_error_limit() -> u32 {
    3
}

/// Source of the analysis numbers. Set `type` and, for `prometheus`, its block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.type == 'prometheus' ? has(self.prometheus) : !has(self.prometheus)",
    "message": "set the prometheus block exactly when type is prometheus"
}]))]
pub struct AnalysisProvider {
    /// `scrape` (default): the operator reads `/metrics` of every ready data-plane pod (addresses
    /// from the Service's EndpointSlices) and sums them. `prometheus`: PromQL queries.
    #[serde(default, rename = "type")]
    pub type_: ProviderType,
    /// Settings of the `prometheus` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProviderSpec>,
}

/// Kind of analysis provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProviderType {
    /// Scrape the data-plane pods directly.
    #[default]
    Scrape,
    /// Query a Prometheus server.
    Prometheus,
}

/// A Prometheus server and the queries that measure one revision. In every query `${revision}`
/// is replaced by the revision label value (`r<N>`), `${window}` by the window (e.g. `5s`) and
/// `${namespace}` by the config's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProviderSpec {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1, max = 2048))]
    pub address: String,
    /// Query timeout in seconds.
    #[serde(default = "default_prom_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u32,
    /// Requests of the revision in the window (default: `sum(increase(vr_requests_total{revision="${revision}"}[${window}]))`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub requests_query: Option<String>,
    /// Requests of the revision that ended in a 5xx in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub server_errors_query: Option<String>,
    /// Requests of the revision that ended in a 4xx in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub client_errors_query: Option<String>,
    /// Transformed (cache-miss) requests of the revision in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub transformed_query: Option<String>,
    /// p95 latency in seconds of the revision's transformed requests in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub p95_query: Option<String>,
}

fn default_prom_timeout() -> u32 {
    5
}

/// The rollout in progress, as recorded in status (a new leader resumes from it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Canary` while steps run, `Baking` after promotion, `Paused` while held.
    pub state: RolloutState,
    /// Revision under rollout (`r<N>`).
    pub revision: String,
    /// Its ConfigMap.
    pub config_map: String,
    /// Content hash of the revision.
    pub hash: String,
    /// Revision that was stable when the rollout began (`r<N>`) and its ConfigMap: the target of
    /// a rollback.
    pub previous_revision: String,
    /// ConfigMap of `previousRevision`.
    pub previous_config_map: String,
    /// Index of the current step (0-based).
    pub step: u32,
    /// Percentage of traffic on the canary now.
    pub weight: u32,
    /// When the rollout began (RFC 3339).
    pub started_at: String,
    /// When the current step (or the bake) began (RFC 3339).
    pub step_started_at: String,
    /// Windows that passed at the current step.
    pub passed_windows: u32,
    /// Windows that failed during this rollout.
    pub failed_windows: u32,
    /// Inconclusive windows during this rollout.
    pub inconclusive_windows: u32,
    /// Metric read errors in a row.
    pub consecutive_errors: u32,
    /// Ready data-plane pods when the rollout began; fewer during the rollout fails it.
    pub baseline_ready_replicas: i32,
    /// Container restarts of data-plane pods when the rollout began; more fails it.
    pub baseline_restarts: i32,
    /// The last analysis window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<AnalysisResult>,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutState {
    /// Steps are running.
    #[default]
    Canary,
    /// Held at the current step (annotation `videoresizer.io/paused`, or metrics unreadable
    /// with `onProviderError: Pause`).
    Paused,
    /// Promoted; the new stable revision is watched for `bakeSeconds`.
    Baking,
}

/// One analysis window: the numbers and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    /// `Pass`, `Fail`, `Inconclusive` or `Error`.
    pub verdict: Verdict,
    /// End of the window (RFC 3339).
    pub time: String,
    /// Length of the window in seconds.
    pub window_seconds: u32,
    /// The canary's numbers.
    pub canary: RevisionNumbers,
    /// The stable revision's numbers.
    pub stable: RevisionNumbers,
    /// Why the verdict is what it is (each broken rule with its numbers, or why no verdict).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Verdict of one analysis window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    /// Every rule holds with enough traffic.
    Pass,
    /// A rule is broken.
    Fail,
    /// Too little traffic to judge.
    #[default]
    Inconclusive,
    /// The metrics could not be read.
    Error,
}

/// What one revision did in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionNumbers {
    /// Requests served.
    pub requests: u64,
    /// Requests that ended in a 5xx.
    pub server_errors: u64,
    /// Requests that ended in a 4xx.
    pub client_errors: u64,
    /// Requests that ran a transform (cache misses).
    pub transformed: u64,
    /// p95 latency of transformed requests in milliseconds, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_milliseconds: Option<f64>,
}

impl RevisionNumbers {
    /// Share of requests that ended in a 5xx, in percent (0 without requests).
    pub fn server_error_percent(&self) -> f64 {
        percent(self.server_errors, self.requests)
    }

    /// Share of requests that ended in a 4xx, in percent (0 without requests).
    pub fn client_error_percent(&self) -> f64 {
        percent(self.client_errors, self.requests)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// One revision in the history, newest first in status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// Revision label (`r<N>`).
    pub revision: String,
    /// Revision number.
    pub number: u64,
    /// Its ConfigMap (gone once pruned).
    pub config_map: String,
    /// Content hash.
    pub hash: String,
    /// What happened to it.
    pub outcome: Outcome,
    /// When the outcome was reached (RFC 3339).
    pub time: String,
    /// Why (for failures: the rules that failed it, with their numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The analysis window that decided the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisResult>,
}

/// Outcome of a revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Outcome {
    /// Under rollout now.
    #[default]
    Progressing,
    /// Serving all traffic now.
    Stable,
    /// Was stable, replaced by a newer promoted revision or a rollback.
    Superseded,
    /// Failed its analysis (or a data-plane health check) and was taken out of traffic.
    RolledBack,
    /// Taken out of traffic on request (annotation `videoresizer.io/abort`).
    Aborted,
    /// Replaced by another revision before its rollout finished (the spec changed again).
    Replaced,
}
