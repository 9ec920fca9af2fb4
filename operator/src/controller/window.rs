//! One look at a running rollout, measured and decided: when [`policy::window_due`] says a
//! look is due, the provider the spec names samples the data planes and
//! [`verdict::look_result`] adds it to the rollout's evidence (kept by the analyzer between
//! looks, restored from status by a new leader) and decides sequentially. Also the metrics
//! baseline taken when a rollout or bake begins.

use super::context::Context;
use crate::analysis::{self, WindowQuery};
use crate::metrics::VerdictLabels;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;
use vr_crds::resources::VideoResizerConfig;
use vr_crds::rollout::{AnalysisResult, RolloutStatus, Verdict};
use vr_operator_core::verdict::{self, policy, sequential, Sample};

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

/// Takes a look at `cfg`'s running rollout if one is due, and decides on the evidence.
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
    let started = sequential::evidence_start(ro);
    // Prometheus: totals since the evidence began (the core takes the deltas).
    let since = Duration::from_secs_f64(policy::secs_since(started, now).clamp(1.0, 86_400.0));
    let query = WindowQuery {
        key: at.key,
        namespace: at.namespace,
        canary: &ro.revision,
        // During a bake the previous revision takes no traffic; its (empty) numbers are not
        // compared (absolute limits only).
        stable: &ro.previous_revision,
        window: analysis::query_window(since, PROMETHEUS_SCRAPE_INTERVAL),
        addresses: at.addresses,
    };
    let sampled = ctx.analyzer.sample(&policy.analysis, &query).await;
    let mut notes = Vec::new();
    if let Ok(Sample::Window(w)) = &sampled {
        notes.extend(w.notes.iter().cloned());
    }
    let phase = format!(
        "{}@{}/{:?}",
        ro.revision,
        started,
        ro.state == vr_crds::rollout::RolloutState::Baking
    );
    let result = ctx.analyzer.with_evidence(
        at.key,
        &phase,
        || verdict::restore(ro),
        |e| verdict::look_result(policy, ro, e, &sampled, now, &mut notes),
    );
    for note in &notes {
        tracing::info!(config = %at.key, %note, "analysis");
    }
    tracing::info!(
        config = %at.key,
        canary = %ro.revision,
        verdict = ?result.verdict,
        canary_requests = result.canary.requests,
        stable_requests = result.stable.requests,
        rule = result.rule.as_deref().unwrap_or(""),
        p_value = result.p_value.unwrap_or(1.0),
        reasons = %result.reasons.join("; "),
        "analysis look"
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
    ctx.analyzer.forget_evidence(at.key);
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
