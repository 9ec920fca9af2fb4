//! Verdicts over a rollout: [`Tally`] counts the looks' verdicts (restored from and written
//! back to `status.rollout`) and says whether to continue, fail or apply `onProviderError`.
//! A failed look fails the rollout at once: the sequential decision already accounts for
//! repeated looks, so `failureLimit` is ignored (deprecated).

use serde::{Deserialize, Serialize};
use vr_crds::rollout::{AnalysisSpec, RolloutStatus, Verdict};

/// What the rollout should do after a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep going (a pass, an inconclusive look, or an error below the limit).
    Continue,
    /// A look failed: roll back.
    Fail { reason: String },
    /// `consecutiveErrorLimit` reads in a row failed: apply `onProviderError`.
    ProviderError { reason: String },
}

/// Counters of a rollout's windows, the four fields of `status.rollout` (`passedWindows`,
/// `failedWindows`, `inconclusiveWindows`, `consecutiveErrors`), so a new operator leader
/// resumes exactly where the last one stopped ([`Tally::from_status`], [`Tally::write_to`]).
///
/// Guarantees of [`Tally::observe`]:
/// - `Fail` on the first failed look, and on every later one (a failed rollout stays failed
///   until the caller starts a new tally);
/// - otherwise `ProviderError` when `consecutiveErrors` reaches `consecutiveErrorLimit`
///   (and on every further error); any other verdict resets the run of errors;
/// - `Inconclusive` never fails and never counts as a pass; `Error` is not a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Windows that passed at the current step (reset by [`Tally::next_step`]).
    pub passed_windows: u32,
    /// Windows that failed during this rollout.
    pub failed_windows: u32,
    /// Inconclusive windows during this rollout.
    pub inconclusive_windows: u32,
    /// Metric read errors in a row.
    pub consecutive_errors: u32,
}

impl Tally {
    /// The tally recorded in a rollout status.
    pub fn from_status(status: &RolloutStatus) -> Tally {
        Tally {
            passed_windows: status.passed_windows,
            failed_windows: status.failed_windows,
            inconclusive_windows: status.inconclusive_windows,
            consecutive_errors: status.consecutive_errors,
        }
    }

    /// Records this tally in a rollout status.
    pub fn write_to(&self, status: &mut RolloutStatus) {
        status.passed_windows = self.passed_windows;
        status.failed_windows = self.failed_windows;
        status.inconclusive_windows = self.inconclusive_windows;
        status.consecutive_errors = self.consecutive_errors;
    }

    /// A new step begins: passes are counted per step, everything else per rollout.
    pub fn next_step(&mut self) {
        self.passed_windows = 0;
    }

    /// Whether the rollout has failed (a failed look).
    pub fn failed(&self) -> bool {
        self.failed_windows > 0
    }

    /// Counts one window's verdict and says what to do.
    pub fn observe(&mut self, spec: &AnalysisSpec, verdict: Verdict) -> Decision {
        match verdict {
            Verdict::Pass => self.passed_windows = self.passed_windows.saturating_add(1),
            Verdict::Fail => self.failed_windows = self.failed_windows.saturating_add(1),
            Verdict::Inconclusive => {
                self.inconclusive_windows = self.inconclusive_windows.saturating_add(1)
            }
            Verdict::Error => self.consecutive_errors = self.consecutive_errors.saturating_add(1),
        }
        if verdict != Verdict::Error {
            self.consecutive_errors = 0;
        }
        if self.failed() {
            return Decision::Fail {
                reason: "the canary failed its analysis".into(),
            };
        }
        if self.consecutive_errors >= spec.consecutive_error_limit.max(1) {
            return Decision::ProviderError {
                reason: format!(
                    "metrics unreadable {} times in a row (consecutiveErrorLimit {})",
                    self.consecutive_errors, spec.consecutive_error_limit
                ),
            };
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failed_look_fails_whatever_the_failure_limit() {
        let spec = AnalysisSpec {
            failure_limit: 5,
            ..AnalysisSpec::default()
        };
        let mut t = Tally::default();
        assert_eq!(t.observe(&spec, Verdict::Inconclusive), Decision::Continue);
        assert_eq!(t.observe(&spec, Verdict::Pass), Decision::Continue);
        assert!(matches!(
            t.observe(&spec, Verdict::Fail),
            Decision::Fail { .. }
        ));
        assert!(matches!(
            t.observe(&spec, Verdict::Pass),
            Decision::Fail { .. }
        ));
        assert_eq!(t.passed_windows, 2);
        assert_eq!(t.inconclusive_windows, 1);
    }

    #[test]
    fn provider_errors_in_a_row_reach_the_limit_and_any_other_verdict_resets_them() {
        let spec = AnalysisSpec::default();
        let mut t = Tally::default();
        assert_eq!(t.observe(&spec, Verdict::Error), Decision::Continue);
        assert_eq!(t.observe(&spec, Verdict::Error), Decision::Continue);
        assert_eq!(t.observe(&spec, Verdict::Inconclusive), Decision::Continue);
        assert_eq!(t.consecutive_errors, 0);
        for _ in 0..2 {
            t.observe(&spec, Verdict::Error);
        }
        assert!(matches!(
            t.observe(&spec, Verdict::Error),
            Decision::ProviderError { .. }
        ));
    }

    #[test]
    fn the_tally_round_trips_through_status_and_a_new_step_resets_only_passes() {
        let mut t = Tally {
            passed_windows: 3,
            failed_windows: 0,
            inconclusive_windows: 7,
            consecutive_errors: 1,
        };
        let mut st = RolloutStatus::default();
        t.write_to(&mut st);
        assert_eq!(Tally::from_status(&st), t);
        t.next_step();
        assert_eq!(t.passed_windows, 0);
        assert_eq!(t.inconclusive_windows, 7);
    }
}
