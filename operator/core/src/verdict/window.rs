//! What a provider measured for one window ([`Sample`], [`Window`]) and the result to record
//! for it ([`analyse`]). Providers (direct scraping, Prometheus) live in the acting crate; they
//! hand their numbers over in these types.

use super::judge::{error_result, judge, no_window_result};
use k8s_openapi::jiff::Timestamp;
use std::fmt::Display;
use vr_crds::rollout::{AnalysisResult, AnalysisSpec, RevisionNumbers};

/// One window of numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub canary: RevisionNumbers,
    pub stable: RevisionNumbers,
    /// Length of the window (scrape: measured between the two scrapes; Prometheus: the query
    /// range), whole seconds rounded to nearest, at least 1.
    pub window_seconds: u32,
    /// What the operator should log about how the numbers were obtained (unreadable pods, pods
    /// that restarted, pods counted from the next window). Not verdict reasons.
    pub notes: Vec<String>,
    /// Scrape only: (pods that have the canary loaded in the canary role, pods read). A canary
    /// no pod loaded was refused by the data planes (see [`refused_canary`]).
    pub canary_loaded: Option<(usize, usize)>,
}

/// What a provider measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A window of numbers to judge.
    Window(Window),
    /// No window yet: the scrape provider only recorded a baseline (first call for this key
    /// since the operator started, or no pod had been read before). Recorded as `Inconclusive`.
    Baseline { reason: String },
}

/// Why a window says the data planes refused the canary, if it does: every pod read reports the
/// canary revision not loaded (the data plane refuses a revision it cannot compile, e.g. a
/// Secret file missing in the pods; the stable revision then serves everything and the canary
/// would otherwise look merely idle).
pub fn refused_canary(window: &Window, canary: &str) -> Option<String> {
    match window.canary_loaded {
        Some((0, pods)) if pods > 0 => Some(format!(
            "none of the {pods} data-plane pods read has loaded canary {canary}: they refused it \
             (see vr_config_loads_total{{outcome=\"invalid\"}} and the data-plane logs)"
        )),
        _ => None,
    }
}

/// The analysis result to record for a provider's answer: judged numbers, `Inconclusive` for
/// "no window yet", `Error` with the provider's message.
pub fn analyse<E: Display>(
    spec: &AnalysisSpec,
    sampled: &Result<Sample, E>,
    now: Timestamp,
) -> AnalysisResult {
    match sampled {
        Ok(Sample::Window(w)) => judge(spec, &w.canary, &w.stable, w.window_seconds, now),
        Ok(Sample::Baseline { reason }) => {
            no_window_result(spec.interval_seconds, now, reason.clone())
        }
        Err(e) => error_result(spec.interval_seconds, now, e.to_string()),
    }
}
