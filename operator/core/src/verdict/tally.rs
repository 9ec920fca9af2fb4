//! Verdicts over a rollout: [`Tally`] counts the windows' verdicts (restored from and written
//! back to `status.rollout`) and says whether to continue, fail or apply `onProviderError`.

use serde::{Deserialize, Serialize};
use vr_crds::rollout::{AnalysisSpec, RolloutStatus, Verdict};

/// What the rollout should do after a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep going (a pass, an inconclusive window, a tolerated failure, or an error below the
    /// limit).
    Continue,
    /// More than `failureLimit` windows failed: roll back.
    Fail { reason: String },
    /// `consecutiveErrorLimit` reads in a row failed: apply `onProviderError`.
    ProviderError { reason: String },
}

/// Counters of a rollout's windows, the four fields of `status.rollout` (`passedWindows`,
/// `failedWindows`, `inconclusiveWindows`, `consecutiveErrors`), so a new operator leader
/// resumes exactly where the last one stopped ([`Tally::from_status`], [`Tally::write_to`]).
///
/// Guarantees of [`Tally::observe`]:
/// - `Fail` exactly when this window makes `failedWindows` exceed `failureLimit`, and on every
///   later window (a failed rollout stays failed until the caller starts a new tally);
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

    /// Whether the rollout has failed (more than `failure_limit` failed windows).
    pub fn failed(&self, spec: &AnalysisSpec) -> bool {
        self.failed_windows > spec.failure_limit
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
        if self.failed(spec) {
            return Decision::Fail {
                reason: format!(
                    "{} failed analysis windows > failureLimit {}",
                    self.failed_windows, spec.failure_limit
                ),
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
