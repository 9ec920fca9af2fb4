//! The look policy: when the next look at a running rollout's numbers is due
//! (`analysis.intervalSeconds` after the previous one, or after the step began).

use k8s_openapi::jiff::Timestamp;
use vr_crds::rollout::{RolloutSpec, RolloutStatus};

/// Seconds from `since` (RFC 3339) to `now`; unbounded when `since` does not parse.
pub fn secs_since(since: &str, now: Timestamp) -> f64 {
    since
        .parse::<Timestamp>()
        .ok()
        .map(|t| now.as_millisecond().saturating_sub(t.as_millisecond()) as f64 / 1000.0)
        .unwrap_or(f64::MAX)
}

/// Seconds since the rollout's previous look (or since its step began).
pub fn secs_since_window(ro: &RolloutStatus, now: Timestamp) -> f64 {
    ro.last_analysis
        .as_ref()
        .map(|a| secs_since(&a.time, now))
        .unwrap_or_else(|| secs_since(&ro.step_started_at, now))
}

/// Whether the next look at the running rollout is due by `now`.
pub fn window_due(spec: &RolloutSpec, ro: &RolloutStatus, now: Timestamp) -> bool {
    secs_since_window(ro, now) + 0.05 >= f64::from(spec.analysis.interval_seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_crds::rollout::{AnalysisResult, RolloutState, Verdict};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn running(last: Option<i64>) -> RolloutStatus {
        RolloutStatus {
            state: RolloutState::Canary,
            revision: "r2".into(),
            step_started_at: t(0).to_string(),
            last_analysis: last.map(|s| AnalysisResult {
                verdict: Verdict::Pass,
                time: t(s).to_string(),
                ..AnalysisResult::default()
            }),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn a_look_is_due_one_interval_after_the_previous_one_or_the_step_start() {
        let mut spec = RolloutSpec::default();
        spec.analysis.interval_seconds = 10;
        let ro = running(None);
        assert!(!window_due(&spec, &ro, t(9)));
        assert!(window_due(&spec, &ro, t(10)));
        let ro = running(Some(10));
        assert!(!window_due(&spec, &ro, t(15)));
        assert!(window_due(&spec, &ro, t(20)));
        assert_eq!(
            RolloutSpec::default().analysis.interval_seconds,
            1,
            "looks every second by default"
        );
    }

    #[test]
    fn an_unparsable_time_is_long_ago() {
        assert_eq!(secs_since("not a time", t(0)), f64::MAX);
    }
}
