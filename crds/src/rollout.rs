//! The rollout policy (`VideoResizerConfig.spec.rollout`) and the rollout state the operator
//! records in status: the step, the weight, the last analysis numbers and the revision history.
//!
//! A new revision is served to a share of traffic (the canary) that grows step by step. Every
//! `analysis.intervalSeconds` the operator looks at the data planes' numbers, adds them to the
//! rollout's evidence and decides sequentially (`docs/canary-statistics.md`): a canary shown worse
//! than tolerated with `confidencePercent` goes to weight 0 at once; a step advances once its pause
//! has passed and the canary is shown within the error tolerances; the last step promotes
//! (stable := canary), followed by a bake time during which the new stable is still watched.
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
    /// Least time at this step, in seconds. The step advances when this has passed and the
    /// latest look passed (the canary is shown within the error tolerances).
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
    /// Time between two looks at the numbers, in seconds. Every look may decide: the
    /// confidence holds however many looks are taken.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: u32,
    /// Canary requests since the rollout began before any verdict; fewer gives `Inconclusive`,
    /// which neither advances nor fails the rollout.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_requests: u32,
    /// Probability (percent) that a canary within every tolerance is not rolled back, and that a
    /// canary worse than a tolerated error increase is not passed, over the whole rollout.
    #[serde(default = "default_confidence")]
    #[schemars(range(min = 50, max = 99))]
    pub confidence_percent: u32,
    /// Highest share (percent) of canary requests that may end in a 5xx (failed when shown
    /// above it with `confidencePercent`).
    #[serde(default = "default_max_error_rate")]
    #[schemars(range(max = 100))]
    pub max_error_rate_percent: u32,
    /// How many percentage points the canary's 5xx share may exceed the stable revision's
    /// (since the rollout began): the boundary between a rollback and a pass.
    #[serde(default = "default_max_error_rate_increase")]
    #[schemars(range(max = 100))]
    pub max_error_rate_increase_percent: u32,
    /// How many percentage points the canary's 4xx share may exceed the stable revision's (an
    /// origin rule pointing at a missing path answers 404; client mistakes hit both revisions
    /// alike, so only the difference counts).
    #[serde(default = "default_max_client_error_rate_increase")]
    #[schemars(range(max = 100))]
    pub max_client_error_rate_increase_percent: u32,
    /// How much slower (percent) the canary may be than the stable revision where the two are
    /// comparable: requests of the same kind (hits with hits, transforms with transforms) in the
    /// same pod over the same few seconds. Rounded up to the latency buckets' resolution (with
    /// the data plane's factor-2 buckets, 50 becomes 100).
    #[serde(default = "default_max_latency_increase")]
    #[schemars(range(max = 1000))]
    pub max_latency_increase_percent: u32,
    /// Highest p95 latency of the canary's transformed (cache-miss) requests, in milliseconds:
    /// fails when more than 5 % of them are shown above it. No absolute limit when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600000))]
    pub max_p95_milliseconds: Option<u32>,
    /// Deprecated and ignored (kept so existing objects stay valid): a ratio of two p95s of
    /// revisions sharing the same pods' CPU is noise on a busy node. The latency comparison is
    /// `maxLatencyIncreasePercent`.
    #[serde(default = "default_max_p95_ratio")]
    #[schemars(range(min = 100, max = 100000))]
    pub max_p95_ratio_percent: u32,
    /// Latencies below this never count as slower (noise of fast requests), in milliseconds.
    #[serde(default = "default_latency_floor")]
    #[schemars(range(max = 3600000))]
    pub latency_floor_milliseconds: u32,
    /// Deprecated and ignored (kept so existing objects stay valid): the confidence already
    /// accounts for repeated looks.
    #[serde(default = "default_failure_limit")]
    #[schemars(range(max = 100))]
    pub failure_limit: u32,
    /// Metric read errors in a row (looks) that trigger `onProviderError`.
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
            confidence_percent: default_confidence(),
            max_error_rate_percent: default_max_error_rate(),
            max_error_rate_increase_percent: default_max_error_rate_increase(),
            max_client_error_rate_increase_percent: default_max_client_error_rate_increase(),
            max_latency_increase_percent: default_max_latency_increase(),
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
    1
}
fn default_confidence() -> u32 {
    99
}
fn default_max_latency_increase() -> u32 {
    50
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

/// One look at the canary: the evidence since the rollout (or bake) began and the decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    /// `Pass`, `Fail`, `Inconclusive` (too little evidence, or not decided yet) or `Error`.
    pub verdict: Verdict,
    /// Time of the look (RFC 3339).
    pub time: String,
    /// Seconds of evidence: since the rollout (or bake) began.
    pub window_seconds: u32,
    /// The canary's numbers since the rollout (or bake) began.
    pub canary: RevisionNumbers,
    /// The stable revision's numbers since the rollout began.
    pub stable: RevisionNumbers,
    /// Why the verdict is what it is: the evidence that decided and how strong it was, or why
    /// nothing is decided yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The rule that decided a `Fail`: `ErrorRate`, `ErrorRateIncrease`,
    /// `ClientErrorRateIncrease`, `LatencyIncrease`, `LatencyLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Anytime-valid p-value of the decision (`Fail`: of its rule; `Pass`: of the pass): the
    /// smallest `1 − confidence` at which it would have been reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The accumulated evidence (a new operator leader resumes the same test from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<AnalysisEvidence>,
}

/// Everything a rollout's sequential test has seen (see `docs/canary-statistics.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisEvidence {
    /// Looks taken.
    pub looks: u64,
    /// Seconds since the rollout (or bake) began, at the last look.
    pub seconds: f64,
    /// Canary requests and errors.
    pub canary: ErrorCounts,
    /// Stable requests and errors.
    pub stable: ErrorCounts,
    /// Latency comparisons within pods, kinds and time blocks.
    pub latency: LatencyEvidence,
    /// Canary transforms against `maxP95Milliseconds`.
    pub limit: LimitEvidence,
}

/// Requests of one revision, and those that ended in a 5xx or a 4xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCounts {
    /// Requests served.
    pub requests: u64,
    /// Requests that ended in a 5xx.
    pub server_errors: u64,
    /// Requests that ended in a 4xx.
    pub client_errors: u64,
}

/// Pairs of canary and stable latencies compared in the same pod, kind and time block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyEvidence {
    /// Untied pair trials (fractional: expected over random pairings).
    pub trials: f64,
    /// Of which the canary was slower than `factor ×` stable.
    pub slower: f64,
    /// Blocks compared (both revisions observed).
    pub blocks: u64,
    /// Canary observations in those blocks.
    pub canary_observations: u64,
    /// Stable observations in those blocks.
    pub stable_observations: u64,
    /// The tolerated factor applied (the tolerance rounded up to the bucket grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Blocks left out (buckets that could not be compared).
    pub skipped_blocks: u64,
}

/// Canary transforms, and those certainly above `maxP95Milliseconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitEvidence {
    /// Canary transforms observed.
    pub observations: u64,
    /// Of which certainly above `maxP95Milliseconds` (in buckets whose lower bound is at least
    /// the limit).
    pub above: u64,
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
