//! The analysis window of a running rollout, measured: when [`policy::window_due`] says a
//! window has ended, the provider the spec names samples it and [`policy::window_result`]
//! judges it. Also the metrics baseline taken when a rollout or bake begins.

use super::context::Context;
use crate::analysis::{self, WindowQuery};
use crate::metrics::VerdictLabels;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;
use vr_crds::resources::VideoResizerConfig;
use vr_crds::rollout::{AnalysisResult, RolloutStatus, Verdict};
use vr_operator_core::verdict::{policy, Sample};

/// The scrape interval assumed for Prometheus range queries (`increase` needs two samples in
/// the window).
const PROMETHEUS_SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// Where one config's window is measured.
pub struct Target<'a> {
    pub key: &'a str,
    pub namespace: &'a str,
    /// `host:port` of every ready data-plane pod's metrics listener.
    pub addresses: &'a [String],
}

/// Measures the analysis window of `cfg`'s running rollout if one has ended.
pub async fn measure(
    ctx: &Context,
    cfg: &VideoResizerConfig,
    at: &Target<'_>,
    now: Timestamp,
) -> Option<AnalysisResult> {
    let ro = cfg.status.as_ref()?.rollout.as_ref()?;
    let policy = &cfg.spec.rollout;
    if !policy::window_due(policy, ro, now) {
        return None;
    }
    let spec = policy::window_spec(policy, ro);
    let interval = Duration::from_secs(spec.interval_seconds.max(1).into());
    let query = WindowQuery {
        key: at.key,
        namespace: at.namespace,
        canary: &ro.revision,
        // During a bake the previous revision takes no traffic; its (empty) numbers are not
        // compared (absolute limits only).
        stable: &ro.previous_revision,
        window: analysis::query_window(interval, PROMETHEUS_SCRAPE_INTERVAL),
        addresses: at.addresses,
    };
    let sampled = ctx.analyzer.sample(&spec, &query).await;
    if let Ok(Sample::Window(w)) = &sampled {
        for note in &w.notes {
            tracing::info!(config = %at.key, %note, "analysis");
        }
    }
    let result = policy::window_result(&spec, ro, &sampled, now);
    tracing::info!(
        config = %at.key,
        canary = %ro.revision,
        verdict = ?result.verdict,
        canary_requests = result.canary.requests,
        stable_requests = result.stable.requests,
        reasons = %result.reasons.join("; "),
        "analysis window"
    );
    let verdict = match result.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Error => "error",
    };
    ctx.metrics
        .analysis_windows
        .get_or_create(&VerdictLabels { verdict })
        .inc();
    Some(result)
}

/// Window 1 starts now (a rollout or bake began): records where every pod's counters stand.
pub async fn baseline(ctx: &Context, ro: Option<&RolloutStatus>, at: &Target<'_>) {
    ctx.analyzer.scrape().forget(at.key);
    let query = WindowQuery {
        key: at.key,
        namespace: at.namespace,
        canary: ro.map_or("", |r| r.revision.as_str()),
        stable: ro.map_or("", |r| r.previous_revision.as_str()),
        window: Duration::from_secs(1),
        addresses: at.addresses,
    };
    if let Err(e) = ctx.analyzer.scrape().sample_window(&query).await {
        tracing::warn!(config = %at.key, error = %e, "cannot record the analysis baseline");
    }
}
