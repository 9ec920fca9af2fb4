//! A running canary: data-plane health, the window that just ended (tallied into a decision by
//! [`crate::verdict::Tally`]), pause, and advancing to the next step or promoting after the
//! last one.

use super::decision::{Input, Output};
use super::end::{fail, promote};
use super::history::rfc3339;
use crate::model::{EventSpec, Rev};
use crate::reason::Reason;
use crate::verdict::policy::{secs_since, secs_since_window};
use crate::verdict::{Decision, Tally};
use std::time::Duration;
use vr_crds::contract::{self, Pointer};
use vr_crds::rollout::{
    AnalysisResult, Outcome, ProviderErrorPolicy, RolloutSpec, RolloutState, RolloutStatus, Verdict,
};

fn bp(percent: u32) -> u32 {
    percent.min(100) * 100
}

/// One step of the running canary `ro` (the target against `stable`).
pub(super) fn canary(
    input: &Input<'_>,
    stable: &Rev,
    mut ro: RolloutStatus,
    window: Option<AnalysisResult>,
    out: &mut Output,
) {
    let (spec, target, now) = (input.spec, &input.target, input.now);
    // The window that just ended is not counted when the health check already failed.
    let mut provider_paused = ro.consecutive_errors >= spec.analysis.consecutive_error_limit;
    let failure = match health(input, &ro) {
        Some(unhealthy) => Some(unhealthy),
        None => window.and_then(|w| count_window(input, &mut ro, w, &mut provider_paused, out)),
    };
    if let Some(reason) = failure {
        fail(input, out, stable, ro, Outcome::RolledBack, reason);
        return;
    }
    let paused = input
        .annotations
        .get(contract::ANNOTATION_PAUSED)
        .is_some_and(|v| v.trim() == "true");
    ro.state = if paused || provider_paused {
        RolloutState::Paused
    } else {
        RolloutState::Canary
    };
    if step_done(spec, &ro, now) {
        let next = ro.step as usize + 1;
        if next >= spec.steps.len() {
            promote(input, out, ro, stable, true);
            return;
        }
        ro.step += 1;
        ro.weight = spec.steps[next].weight;
        ro.step_started_at = rfc3339(now);
        let mut tally = Tally::from_status(&ro);
        tally.next_step();
        tally.write_to(&mut ro);
        out.events.push(EventSpec::new(
            Reason::StepAdvanced,
            format!(
                "canary {} at {}% of traffic (step {}/{})",
                target.label(),
                ro.weight,
                ro.step + 1,
                spec.steps.len()
            ),
        ));
    }
    out.pointer = Pointer {
        stable: stable.configmap.clone(),
        canary: Some(target.configmap.clone()),
        canary_weight_bp: bp(ro.weight),
    };
    out.wake_after = Some(next_wake(spec, &ro, now));
    out.rollout = Some(ro);
}

/// Why the data plane is unhealthy during the rollout, if it is.
fn health(input: &Input<'_>, ro: &RolloutStatus) -> Option<String> {
    let (ready, min) = (input.ready_replicas, input.min_replicas);
    // Fewer ready pods than at the start *and* than the workload's minimum: not a scale-down
    // the autoscaler chose (it never goes below minReplicas).
    if ready < ro.baseline_ready_replicas && ready < min {
        Some(format!(
            "ready data-plane pods fell from {} to {ready} (minReplicas {min}) during the rollout",
            ro.baseline_ready_replicas
        ))
    } else if input.restarts > ro.baseline_restarts {
        Some(format!(
            "data-plane containers restarted {} time(s) during the rollout",
            input.restarts - ro.baseline_restarts
        ))
    } else {
        None
    }
}

/// Counts window `w` into `ro`'s tally; the failure it decides, if any. Applies
/// `onProviderError: Pause` to `provider_paused` (with an event when it starts or ends).
fn count_window(
    input: &Input<'_>,
    ro: &mut RolloutStatus,
    w: AnalysisResult,
    provider_paused: &mut bool,
    out: &mut Output,
) -> Option<String> {
    let spec = input.spec;
    let mut tally = Tally::from_status(ro);
    let decision = tally.observe(&spec.analysis, w.verdict);
    tally.write_to(ro);
    ro.last_analysis = Some(w.clone());
    let why = w.reasons.join("; ");
    match decision {
        Decision::Fail { reason } => return Some(format!("{reason}: {why}")),
        Decision::ProviderError { reason } => match spec.on_provider_error {
            ProviderErrorPolicy::Rollback => {
                return Some(format!("{reason} (onProviderError: Rollback): {why}"));
            }
            ProviderErrorPolicy::Pause => {
                if !*provider_paused {
                    out.events.push(EventSpec::new(
                        Reason::AnalysisPaused,
                        format!(
                            "metrics unreadable {} times in a row; holding {} at {}% (onProviderError: Pause): {why}",
                            ro.consecutive_errors,
                            input.target.label(),
                            ro.weight,
                        ),
                    ));
                }
                *provider_paused = true;
            }
        },
        Decision::Continue => {
            if w.verdict != Verdict::Error {
                if *provider_paused {
                    out.events.push(EventSpec::new(
                        Reason::AnalysisResumed,
                        "metrics readable again; the rollout continues".into(),
                    ));
                }
                *provider_paused = false;
            }
        }
    }
    None
}

/// Whether the step is done: not paused, its pause has passed, and at least one window at
/// this step passed, the latest one too.
fn step_done(spec: &RolloutSpec, ro: &RolloutStatus, now: k8s_openapi::jiff::Timestamp) -> bool {
    let pause = spec
        .steps
        .get(ro.step as usize)
        .map_or(0, |s| s.pause_seconds) as f64;
    let last_passed = ro
        .last_analysis
        .as_ref()
        .is_some_and(|a| a.verdict == Verdict::Pass);
    ro.state == RolloutState::Canary
        && secs_since(&ro.step_started_at, now) >= pause
        && ro.passed_windows >= 1
        && last_passed
}

/// Time until the next analysis window ends or the step's pause is over, whichever is first.
pub(super) fn next_wake(
    spec: &RolloutSpec,
    ro: &RolloutStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> Duration {
    let interval = f64::from(spec.analysis.interval_seconds.max(1));
    let to_window = (interval - secs_since_window(ro, now)).max(0.0);
    let pause = spec
        .steps
        .get(ro.step as usize)
        .map_or(0, |s| s.pause_seconds) as f64;
    let to_step = (pause - secs_since(&ro.step_started_at, now)).max(0.0);
    let wake = if to_step > 0.0 {
        to_window.min(to_step)
    } else {
        to_window
    };
    Duration::from_millis((wake * 1000.0) as u64).max(Duration::from_millis(200))
}
