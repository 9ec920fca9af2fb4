//! The window policy: when an analysis window of a running rollout is due, which limits it is
//! judged against, and which verdict the rollout records for what a provider measured.
//!
//! * A window is due `analysis.intervalSeconds` after the previous one (or after the step
//!   began).
//! * During a bake (after promotion) only the absolute limits apply: the previous revision no
//!   longer takes traffic, so there is nothing to compare with.
//! * A canary that every data-plane pod read refused to load fails the window — except on the
//!   rollout's first window (the pods may not have loaded the new pointer yet) and during a
//!   bake (the revision is stable then, not a canary).

use super::window::{analyse, refused_canary, Sample};
use k8s_openapi::jiff::Timestamp;
use std::fmt::Display;
use vr_crds::rollout::{
    AnalysisResult, AnalysisSpec, RolloutSpec, RolloutState, RolloutStatus, Verdict,
};

/// Seconds from `since` (RFC 3339) to `now`; unbounded when `since` does not parse.
pub fn secs_since(since: &str, now: Timestamp) -> f64 {
    since
        .parse::<Timestamp>()
        .ok()
        .map(|t| now.as_millisecond().saturating_sub(t.as_millisecond()) as f64 / 1000.0)
        .unwrap_or(f64::MAX)
}

/// Seconds since the rollout's previous window ended (or its step began).
pub fn secs_since_window(ro: &RolloutStatus, now: Timestamp) -> f64 {
    ro.last_analysis
        .as_ref()
        .map(|a| secs_since(&a.time, now))
        .unwrap_or_else(|| secs_since(&ro.step_started_at, now))
}

/// Whether an analysis window of the running rollout has ended by `now`.
pub fn window_due(spec: &RolloutSpec, ro: &RolloutStatus, now: Timestamp) -> bool {
    secs_since_window(ro, now) + 0.05 >= f64::from(spec.analysis.interval_seconds.max(1))
}

/// The limits a window of `ro` is judged against: the policy's, and during a bake only its
/// absolute limits.
pub fn window_spec(spec: &RolloutSpec, ro: &RolloutStatus) -> AnalysisSpec {
    if ro.state == RolloutState::Baking {
        absolute_only(&spec.analysis)
    } else {
        spec.analysis.clone()
    }
}

/// The analysis policy of a bake: only the absolute limits (the relative ones are opened
/// wide).
pub fn absolute_only(spec: &AnalysisSpec) -> AnalysisSpec {
    AnalysisSpec {
        max_error_rate_increase_percent: 100,
        max_client_error_rate_increase_percent: 100,
        max_p95_ratio_percent: 100_000,
        ..spec.clone()
    }
}

/// The result `ro` records for what a provider measured, judged with `spec` (from
/// [`window_spec`]): the numbers' verdict, and `Fail` for a canary every pod refused.
pub fn window_result<E: Display>(
    spec: &AnalysisSpec,
    ro: &RolloutStatus,
    sampled: &Result<Sample, E>,
    now: Timestamp,
) -> AnalysisResult {
    let mut result = analyse(spec, sampled, now);
    if let Ok(Sample::Window(w)) = sampled {
        let baking = ro.state == RolloutState::Baking;
        let first = ro.last_analysis.is_none();
        if let Some(why) = refused_canary(w, &ro.revision).filter(|_| !baking && !first) {
            result.verdict = Verdict::Fail;
            result.reasons.push(why);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Window;
    use vr_crds::rollout::RevisionNumbers;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn running(state: RolloutState, last: Option<i64>) -> RolloutStatus {
        RolloutStatus {
            state,
            revision: "r2".into(),
            step_started_at: t(0).to_string(),
            last_analysis: last.map(|s| AnalysisResult {
                verdict: Verdict::Pass,
                time: t(s).to_string(),
                window_seconds: 10,
                canary: RevisionNumbers::default(),
                stable: RevisionNumbers::default(),
                reasons: Vec::new(),
            }),
            ..RolloutStatus::default()
        }
    }

    fn refused() -> Result<Sample, String> {
        Ok(Sample::Window(Window {
            canary: RevisionNumbers {
                requests: 1000,
                ..RevisionNumbers::default()
            },
            stable: RevisionNumbers {
                requests: 1000,
                ..RevisionNumbers::default()
            },
            window_seconds: 10,
            notes: Vec::new(),
            canary_loaded: Some((0, 3)),
        }))
    }

    #[test]
    fn a_window_is_due_one_interval_after_the_previous_one_or_the_step_start() {
        let mut spec = RolloutSpec::default();
        spec.analysis.interval_seconds = 10;
        let ro = running(RolloutState::Canary, None);
        assert!(!window_due(&spec, &ro, t(9)));
        assert!(window_due(&spec, &ro, t(10)));
        let ro = running(RolloutState::Canary, Some(10));
        assert!(!window_due(&spec, &ro, t(15)));
        assert!(window_due(&spec, &ro, t(20)));
    }

    #[test]
    fn a_bake_is_judged_on_the_absolute_limits_only() {
        let spec = RolloutSpec::default();
        let canary = window_spec(&spec, &running(RolloutState::Canary, None));
        assert_eq!(canary, spec.analysis);
        let bake = window_spec(&spec, &running(RolloutState::Baking, None));
        assert_eq!(
            bake.max_error_rate_percent,
            spec.analysis.max_error_rate_percent
        );
        assert_eq!(bake.max_error_rate_increase_percent, 100);
        assert_eq!(bake.max_client_error_rate_increase_percent, 100);
        assert_eq!(bake.max_p95_ratio_percent, 100_000);
    }

    #[test]
    fn a_refused_canary_fails_except_on_the_first_window_and_during_a_bake() {
        let spec = AnalysisSpec::default();
        let later = running(RolloutState::Canary, Some(0));
        let r = window_result(&spec, &later, &refused(), t(10));
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.reasons.iter().any(|x| x.contains("refused")),
            "{:?}",
            r.reasons
        );
        let first = running(RolloutState::Canary, None);
        assert_eq!(
            window_result(&spec, &first, &refused(), t(10)).verdict,
            Verdict::Pass
        );
        let bake = running(RolloutState::Baking, Some(0));
        assert_eq!(
            window_result(&spec, &bake, &refused(), t(10)).verdict,
            Verdict::Pass
        );
    }
}
