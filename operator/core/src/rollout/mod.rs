//! The rollout state machine, pure: from the rollout policy, the request annotations, the last
//! recorded rollout state and (when a window just ended) an analysis result, to the pointer
//! (stable, canary, weight), the new rollout state, the revision history and the events.
//!
//! No I/O and no clock: the caller passes `now` and the analysis result, so every transition
//! is a unit test. All state lives in `status` (`rollout`, `heldBack`, `history`), so a new
//! leader resumes at the same step with the same counters.
//!
//! Transitions:
//!
//! * **Start**: the spec renders to content that is neither the stable revision nor held back →
//!   the canary gets `steps[0].weight`. A rollout of other content in progress is `Replaced`.
//!   With no stable revision yet, or no steps, the new revision takes all traffic at once.
//! * **Window**: every analysis window's verdict is tallied (`failureLimit`,
//!   `consecutiveErrorLimit`; inconclusive neither passes nor fails). Data-plane health (ready
//!   pods below the rollout's baseline, container restarts above it) fails at once.
//! * **Advance**: a step whose pause has passed with at least one passing window at
//!   this step, the latest window passing, moves to the next weight; after the last step the canary is **promoted**
//!   (stable := canary) and watched for `bakeSeconds` against the absolute limits.
//! * **Fail**: weight 0 at once, the revision is `RolledBack` with the numbers that failed it,
//!   its content is held back until the spec changes (a new generation) or a retry is asked.
//! * **Requests** (annotations, consumed once acted on): promote, abort, retry, rollback-to-N
//!   (skips analysis); `paused: "true"` holds the step while present.

use crate::analysis::{Decision, Tally};
use crate::reconcile::{EventSpec, ObservedRevision};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;
use vr_crds::contract::{self, Pointer};
use vr_crds::resources::{HeldBack, VideoResizerConfigStatus};
use vr_crds::rollout::{
    AnalysisResult, Outcome, ProviderErrorPolicy, RevisionRecord, RolloutSpec, RolloutState,
    RolloutStatus, Verdict,
};

/// Most revisions kept in `status.history`.
pub const HISTORY_LIMIT: usize = 20;

/// A revision as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rev {
    pub number: u64,
    pub configmap: String,
    pub hash: String,
}

impl Rev {
    /// `r<N>`.
    pub fn label(&self) -> String {
        format!("r{}", self.number)
    }

    /// The revision of `observed` named `configmap`.
    pub fn find(observed: &[ObservedRevision], configmap: &str) -> Option<Rev> {
        observed.iter().find(|r| r.name == configmap).map(Rev::from)
    }
}

impl From<&ObservedRevision> for Rev {
    fn from(r: &ObservedRevision) -> Self {
        Rev {
            number: r.revision,
            configmap: r.name.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// Everything one rollout step decides from.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub spec: &'a RolloutSpec,
    pub annotations: &'a BTreeMap<String, String>,
    pub generation: i64,
    pub prev: &'a VideoResizerConfigStatus,
    /// The revision the current spec renders to.
    pub target: Rev,
    /// The revision serving stable traffic now (from the pointer), if any.
    pub stable: Option<Rev>,
    /// Every revision ConfigMap that exists (targets of rollback-to-N).
    pub revisions: &'a [ObservedRevision],
    pub ready_replicas: i32,
    /// The workload's `minReplicas`: ready pods below both it and the rollout's starting count
    /// fail the rollout.
    pub min_replicas: i32,
    /// Container restarts of the data-plane pods, summed.
    pub restarts: i32,
    /// The analysis window that ended now, if one did (verdict `Error` when unreadable).
    pub window: Option<AnalysisResult>,
    pub now: Timestamp,
}

/// What one rollout step decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub pointer: Pointer,
    pub rollout: Option<RolloutStatus>,
    pub held_back: Option<HeldBack>,
    pub history: Vec<RevisionRecord>,
    /// Request annotations acted on, to remove.
    pub consumed: Vec<&'static str>,
    pub events: Vec<EventSpec>,
    /// Set when this step rolled back or aborted: the reason (for the `RolledBack` condition).
    pub rolled_back: Option<String>,
    /// Set when this step promoted a revision (clears the `RolledBack` condition).
    pub promoted: bool,
    /// When to look again (the next analysis window or step end), while a rollout runs.
    pub wake_after: Option<Duration>,
    /// A rollout (or bake) began now: the caller should take a metrics baseline.
    pub started: bool,
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

fn secs_since(since: &str, now: Timestamp) -> f64 {
    parse_time(since)
        .map(|t| now.as_millisecond().saturating_sub(t.as_millisecond()) as f64 / 1000.0)
        .unwrap_or(f64::MAX)
}

fn bp(percent: u32) -> u32 {
    percent.min(100) * 100
}

/// Records `outcome` for `rev` at the front of `history` (one entry per revision, newest first).
fn record(
    history: &mut Vec<RevisionRecord>,
    rev: &Rev,
    outcome: Outcome,
    reason: Option<String>,
    analysis: Option<AnalysisResult>,
    now: Timestamp,
) {
    let label = rev.label();
    history.retain(|h| h.revision != label);
    history.insert(
        0,
        RevisionRecord {
            revision: label,
            number: rev.number,
            config_map: rev.configmap.clone(),
            hash: rev.hash.clone(),
            outcome,
            time: rfc3339(now),
            reason,
            analysis,
        },
    );
    history.truncate(HISTORY_LIMIT);
}

/// Marks `rev` superseded if the history says it is stable.
fn supersede(history: &mut Vec<RevisionRecord>, rev: &Rev, now: Timestamp) {
    let label = rev.label();
    if let Some(h) = history.iter_mut().find(|h| h.revision == label) {
        if h.outcome == Outcome::Stable {
            h.outcome = Outcome::Superseded;
            h.time = rfc3339(now);
        }
    } else {
        record(history, rev, Outcome::Superseded, None, None, now);
    }
}

fn stable_only(rev: &Rev) -> Pointer {
    Pointer {
        stable: rev.configmap.clone(),
        canary: None,
        canary_weight_bp: 0,
    }
}

fn event(warning: bool, reason: &'static str, note: String) -> EventSpec {
    EventSpec {
        warning,
        reason,
        note,
    }
}

/// One step of the rollout state machine.
pub fn step(input: Input<'_>) -> Output {
    let Input {
        spec,
        annotations,
        generation,
        prev,
        target,
        stable,
        revisions,
        ready_replicas,
        min_replicas,
        restarts,
        window,
        now,
    } = input;
    let mut out = Output {
        pointer: stable_only(stable.as_ref().unwrap_or(&target)),
        rollout: prev.rollout.clone(),
        held_back: prev.held_back.clone(),
        history: prev.history.clone(),
        consumed: Vec::new(),
        events: Vec::new(),
        rolled_back: None,
        promoted: false,
        wake_after: None,
        started: false,
    };
    let has = |k: &str| annotations.contains_key(k);
    let paused = annotations
        .get(contract::ANNOTATION_PAUSED)
        .is_some_and(|v| v.trim() == "true");

    // A held-back revision is lifted by a new generation.
    if out
        .held_back
        .as_ref()
        .is_some_and(|h| h.generation != generation)
    {
        out.held_back = None;
    }

    // ---- requests ------------------------------------------------------------------------
    if let Some(n) = annotations.get(contract::ANNOTATION_ROLLBACK_TO) {
        out.consumed.push(contract::ANNOTATION_ROLLBACK_TO);
        let wanted = Some(number_of(n)).filter(|n| *n > 0);
        match wanted.and_then(|n| revisions.iter().find(|r| r.revision == n)) {
            Some(r) => {
                let to = Rev::from(r);
                if let Some(ro) = out.rollout.take() {
                    let was = rev_of(&ro);
                    if was.hash != to.hash {
                        record(
                            &mut out.history,
                            &was,
                            Outcome::RolledBack,
                            Some(format!("rollback to {} requested", to.label())),
                            None,
                            now,
                        );
                    }
                }
                if let Some(s) = &stable {
                    if s.hash != to.hash {
                        supersede(&mut out.history, s, now);
                    }
                }
                record(
                    &mut out.history,
                    &to,
                    Outcome::Stable,
                    Some("rollback requested".into()),
                    None,
                    now,
                );
                let msg = format!(
                    "rollback to {} requested; {} is held back until the spec changes or a retry is asked",
                    to.label(),
                    target.label()
                );
                let mut out = out_of_traffic(out, &target, &to, generation, "RolledBack", msg);
                if out.held_back.as_ref().is_some_and(|h| h.hash == to.hash) {
                    out.held_back = None;
                }
                return out;
            }
            None => out.events.push(event(
                true,
                "RollbackRefused",
                format!(
                    "annotation {}={n:?}: no such revision ConfigMap (kept: {})",
                    contract::ANNOTATION_ROLLBACK_TO,
                    kept(revisions)
                ),
            )),
        }
    }
    if has(contract::ANNOTATION_RETRY) {
        out.consumed.push(contract::ANNOTATION_RETRY);
        if let Some(h) = out.held_back.take() {
            out.events.push(event(
                false,
                "RetryRequested",
                format!("retrying {} as requested", h.revision),
            ));
        }
    }

    // The revision serving stable traffic; with none yet the target takes everything.
    let Some(stable) = stable else {
        out.pointer = stable_only(&target);
        record(&mut out.history, &target, Outcome::Stable, None, None, now);
        out.rollout = None;
        out.promoted = true;
        return out;
    };

    // A bake in progress watches the (new) stable revision, until the spec moves on.
    if let Some(ro) = out.rollout.clone() {
        if ro.state == RolloutState::Baking {
            if target.hash == ro.hash && stable.hash == ro.hash {
                if has(contract::ANNOTATION_PROMOTE) {
                    // Already promoted: the request ends the bake.
                    out.consumed.push(contract::ANNOTATION_PROMOTE);
                    out.rollout = None;
                    out.pointer = stable_only(&stable);
                    return out;
                }
                if has(contract::ANNOTATION_ABORT) {
                    out.consumed.push(contract::ANNOTATION_ABORT);
                    let previous = previous_of(&ro);
                    record(
                        &mut out.history,
                        &stable,
                        Outcome::Aborted,
                        Some("abort requested during the bake".into()),
                        None,
                        now,
                    );
                    restore_stable(&mut out.history, &previous, now);
                    let msg = format!(
                        "{} aborted during its bake; {} serves everything again",
                        stable.label(),
                        previous.label()
                    );
                    return out_of_traffic(out, &stable, &previous, generation, "Aborted", msg);
                }
                return bake(out, spec, ro, &stable, window, generation, now);
            }
            out.rollout = None;
        }
    }

    let held = out
        .held_back
        .as_ref()
        .is_some_and(|h| h.hash == target.hash);
    if target.hash == stable.hash || held {
        // Nothing to roll out; a rollout of other content is replaced.
        if let Some(ro) = out.rollout.take() {
            if ro.hash != stable.hash {
                let was = rev_of(&ro);
                record(
                    &mut out.history,
                    &was,
                    Outcome::Replaced,
                    Some("the spec changed before its rollout finished".into()),
                    None,
                    now,
                );
                out.events.push(event(
                    false,
                    "RolloutReplaced",
                    format!("rollout of {} stopped: the spec changed", was.label()),
                ));
            }
        }
        for k in [contract::ANNOTATION_PROMOTE, contract::ANNOTATION_ABORT] {
            if has(k) {
                out.consumed.push(k);
            }
        }
        if !out.history.iter().any(|h| h.hash == stable.hash) {
            record(&mut out.history, &stable, Outcome::Stable, None, None, now);
        }
        out.pointer = stable_only(&stable);
        return out;
    }

    // The target differs from stable: a rollout of it runs (or starts now).
    // A window belongs to the rollout it was measured for: a rollout that starts now (or
    // replaces another) ignores it.
    let mut window = window;
    let mut ro = match out.rollout.take() {
        Some(ro) if ro.hash == target.hash => ro,
        other => {
            window = None;
            if let Some(old) = other {
                let was = rev_of(&old);
                record(
                    &mut out.history,
                    &was,
                    Outcome::Replaced,
                    Some("the spec changed before its rollout finished".into()),
                    None,
                    now,
                );
            }
            if spec.steps.is_empty() {
                // No canary: switch at once.
                supersede(&mut out.history, &stable, now);
                record(&mut out.history, &target, Outcome::Stable, None, None, now);
                out.events.push(event(
                    false,
                    "Promoted",
                    format!(
                        "{} serves all traffic (no canary steps configured)",
                        target.label()
                    ),
                ));
                out.pointer = stable_only(&target);
                out.promoted = true;
                return out;
            }
            let w = spec.steps[0].weight;
            out.started = true;
            record(
                &mut out.history,
                &target,
                Outcome::Progressing,
                None,
                None,
                now,
            );
            out.events.push(event(
                false,
                "RolloutStarted",
                format!(
                    "canary {} at {w}% of traffic (step 1/{}), stable {}",
                    target.label(),
                    spec.steps.len(),
                    stable.label()
                ),
            ));
            RolloutStatus {
                state: RolloutState::Canary,
                revision: target.label(),
                config_map: target.configmap.clone(),
                hash: target.hash.clone(),
                previous_revision: stable.label(),
                previous_config_map: stable.configmap.clone(),
                step: 0,
                weight: w,
                started_at: rfc3339(now),
                step_started_at: rfc3339(now),
                passed_windows: 0,
                failed_windows: 0,
                inconclusive_windows: 0,
                consecutive_errors: 0,
                baseline_ready_replicas: ready_replicas,
                baseline_restarts: restarts,
                last_analysis: None,
            }
        }
    };

    // Requests that end the rollout now.
    if has(contract::ANNOTATION_ABORT) {
        out.consumed.push(contract::ANNOTATION_ABORT);
        for k in [contract::ANNOTATION_PROMOTE] {
            if has(k) {
                out.consumed.push(k);
            }
        }
        return fail(
            out,
            &stable,
            &target,
            ro,
            Outcome::Aborted,
            "abort requested".into(),
            generation,
            now,
        );
    }
    if has(contract::ANNOTATION_PROMOTE) {
        out.consumed.push(contract::ANNOTATION_PROMOTE);
        out.events.push(event(
            false,
            "PromoteRequested",
            format!(
                "promoting {} as requested, skipping analysis",
                target.label()
            ),
        ));
        return promote(out, spec, ro, &stable, &target, false, now);
    }

    // Health of the data plane.
    let mut health = None;
    // Fewer ready pods than at the start *and* than the workload's minimum: not a scale-down
    // the autoscaler chose (it never goes below minReplicas).
    if ready_replicas < ro.baseline_ready_replicas && ready_replicas < min_replicas {
        health = Some(format!(
            "ready data-plane pods fell from {} to {ready_replicas} (minReplicas {min_replicas}) during the rollout",
            ro.baseline_ready_replicas
        ));
    } else if restarts > ro.baseline_restarts {
        health = Some(format!(
            "data-plane containers restarted {} time(s) during the rollout",
            restarts - ro.baseline_restarts
        ));
    }

    // The window that just ended (not counted when the health check already failed).
    let mut failure = health;
    let mut provider_paused = ro.consecutive_errors >= spec.analysis.consecutive_error_limit;
    if let Some(w) = window.filter(|_| failure.is_none()) {
        let mut tally = Tally::from_status(&ro);
        let decision = tally.observe(&spec.analysis, w.verdict);
        tally.write_to(&mut ro);
        ro.last_analysis = Some(w.clone());
        match decision {
            Decision::Fail { reason } => {
                failure = Some(format!("{reason}: {}", w.reasons.join("; ")));
            }
            Decision::ProviderError { reason } => match spec.on_provider_error {
                ProviderErrorPolicy::Rollback => {
                    failure = Some(format!(
                        "{reason} (onProviderError: Rollback): {}",
                        w.reasons.join("; ")
                    ));
                }
                ProviderErrorPolicy::Pause => {
                    if !provider_paused {
                        out.events.push(event(
                            true,
                            "AnalysisPaused",
                            format!(
                                "metrics unreadable {} times in a row; holding {} at {}% (onProviderError: Pause): {}",
                                ro.consecutive_errors,
                                target.label(),
                                ro.weight,
                                w.reasons.join("; ")
                            ),
                        ));
                    }
                    provider_paused = true;
                }
            },
            Decision::Continue => {
                if w.verdict != Verdict::Error {
                    if provider_paused {
                        out.events.push(event(
                            false,
                            "AnalysisResumed",
                            "metrics readable again; the rollout continues".into(),
                        ));
                    }
                    provider_paused = false;
                }
            }
        }
    }
    if let Some(reason) = failure {
        return fail(
            out,
            &stable,
            &target,
            ro,
            Outcome::RolledBack,
            reason,
            generation,
            now,
        );
    }
    ro.state = if paused || provider_paused {
        RolloutState::Paused
    } else {
        RolloutState::Canary
    };

    // Advance when the step's pause has passed with a passing window and no failure.
    let step_idx = ro.step as usize;
    let pause = spec.steps.get(step_idx).map_or(0, |s| s.pause_seconds) as f64;
    let elapsed = secs_since(&ro.step_started_at, now);
    let last_passed = ro
        .last_analysis
        .as_ref()
        .is_some_and(|a| a.verdict == Verdict::Pass);
    if ro.state == RolloutState::Canary && elapsed >= pause && ro.passed_windows >= 1 && last_passed
    {
        if step_idx + 1 < spec.steps.len() {
            ro.step += 1;
            ro.weight = spec.steps[step_idx + 1].weight;
            ro.step_started_at = rfc3339(now);
            let mut tally = Tally::from_status(&ro);
            tally.next_step();
            tally.write_to(&mut ro);
            out.events.push(event(
                false,
                "StepAdvanced",
                format!(
                    "canary {} at {}% of traffic (step {}/{})",
                    target.label(),
                    ro.weight,
                    ro.step + 1,
                    spec.steps.len()
                ),
            ));
        } else {
            return promote(out, spec, ro, &stable, &target, true, now);
        }
    }

    out.pointer = Pointer {
        stable: stable.configmap.clone(),
        canary: Some(target.configmap.clone()),
        canary_weight_bp: bp(ro.weight),
    };
    out.wake_after = Some(next_wake(spec, &ro, now));
    out.rollout = Some(ro);
    out
}

/// Ends with `serve` taking all traffic and `held` held back (unless it is the same content),
/// with a Warning event `reason` and the `RolledBack` condition's message `msg`.
fn out_of_traffic(
    mut out: Output,
    held: &Rev,
    serve: &Rev,
    generation: i64,
    reason: &'static str,
    msg: String,
) -> Output {
    if held.hash != serve.hash {
        out.held_back = Some(HeldBack {
            hash: held.hash.clone(),
            revision: held.label(),
            generation,
        });
    }
    out.events.push(event(true, reason, msg.clone()));
    out.rolled_back = Some(msg);
    out.pointer = stable_only(serve);
    out.rollout = None;
    out
}

/// Marks `rev` stable again in the history (after a rollback to it).
fn restore_stable(history: &mut [RevisionRecord], rev: &Rev, now: Timestamp) {
    if let Some(h) = history.iter_mut().find(|h| h.revision == rev.label()) {
        h.outcome = Outcome::Stable;
        h.time = rfc3339(now);
    }
}

/// The revision a rollout rolls out, from its status.
fn rev_of(ro: &RolloutStatus) -> Rev {
    Rev {
        number: number_of(&ro.revision),
        configmap: ro.config_map.clone(),
        hash: ro.hash.clone(),
    }
}

/// The revision that was stable when a rollout began (its content hash is not recorded).
fn previous_of(ro: &RolloutStatus) -> Rev {
    Rev {
        number: number_of(&ro.previous_revision),
        configmap: ro.previous_config_map.clone(),
        hash: String::new(),
    }
}

/// `N` of a label `r<N>` (0 when it is not one).
fn number_of(label: &str) -> u64 {
    label.trim().trim_start_matches('r').parse().unwrap_or(0)
}

fn kept(revisions: &[ObservedRevision]) -> String {
    let mut n: Vec<u64> = revisions.iter().map(|r| r.revision).collect();
    n.sort_unstable();
    n.iter()
        .map(|n| format!("r{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Time until the next analysis window ends or the step's pause is over, whichever is first.
fn next_wake(spec: &RolloutSpec, ro: &RolloutStatus, now: Timestamp) -> Duration {
    let interval = f64::from(spec.analysis.interval_seconds.max(1));
    let since_window = ro
        .last_analysis
        .as_ref()
        .map(|a| secs_since(&a.time, now))
        .unwrap_or_else(|| secs_since(&ro.step_started_at, now));
    let to_window = (interval - since_window).max(0.0);
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

/// Whether an analysis window of the running rollout has ended by `now`.
pub fn window_due(spec: &RolloutSpec, ro: &RolloutStatus, now: Timestamp) -> bool {
    let since = ro
        .last_analysis
        .as_ref()
        .map(|a| secs_since(&a.time, now))
        .unwrap_or_else(|| secs_since(&ro.step_started_at, now));
    since + 0.05 >= f64::from(spec.analysis.interval_seconds.max(1))
}

#[allow(clippy::too_many_arguments)]
fn fail(
    mut out: Output,
    stable: &Rev,
    target: &Rev,
    ro: RolloutStatus,
    outcome: Outcome,
    reason: String,
    generation: i64,
    now: Timestamp,
) -> Output {
    record(
        &mut out.history,
        target,
        outcome,
        Some(reason.clone()),
        ro.last_analysis.clone(),
        now,
    );
    let verb = if outcome == Outcome::Aborted {
        "Aborted"
    } else {
        "RolledBack"
    };
    let msg = format!(
        "{} taken out of traffic at {}% (weight 0), {} serves everything: {reason}",
        target.label(),
        ro.weight,
        stable.label()
    );
    out_of_traffic(out, target, stable, generation, verb, msg)
}

fn promote(
    mut out: Output,
    spec: &RolloutSpec,
    mut ro: RolloutStatus,
    stable: &Rev,
    target: &Rev,
    bake: bool,
    now: Timestamp,
) -> Output {
    supersede(&mut out.history, stable, now);
    record(
        &mut out.history,
        target,
        Outcome::Stable,
        None,
        ro.last_analysis.clone(),
        now,
    );
    out.events.push(event(
        false,
        "Promoted",
        format!(
            "{} promoted: it serves all traffic (was {})",
            target.label(),
            stable.label()
        ),
    ));
    out.pointer = stable_only(target);
    out.promoted = true;
    if bake && spec.bake_seconds > 0 {
        ro.state = RolloutState::Baking;
        ro.weight = 100;
        ro.step_started_at = rfc3339(now);
        ro.passed_windows = 0;
        ro.last_analysis = None;
        out.started = true;
        out.wake_after = Some(Duration::from_secs(
            spec.analysis.interval_seconds.max(1).into(),
        ));
        out.rollout = Some(ro);
    } else {
        out.rollout = None;
    }
    out
}

/// After promotion: the new stable revision against the absolute limits, for `bakeSeconds`.
#[allow(clippy::too_many_arguments)]
fn bake(
    mut out: Output,
    spec: &RolloutSpec,
    mut ro: RolloutStatus,
    stable: &Rev,
    window: Option<AnalysisResult>,
    generation: i64,
    now: Timestamp,
) -> Output {
    out.pointer = stable_only(stable);
    if let Some(w) = window {
        let failed = w.verdict == Verdict::Fail;
        ro.last_analysis = Some(w.clone());
        if failed {
            let previous = previous_of(&ro);
            let reason = format!(
                "failed during the bake after promotion: {}",
                w.reasons.join("; ")
            );
            record(
                &mut out.history,
                stable,
                Outcome::RolledBack,
                Some(reason.clone()),
                Some(w),
                now,
            );
            restore_stable(&mut out.history, &previous, now);
            let msg = format!(
                "{} rolled back to {}: {reason}",
                stable.label(),
                previous.label()
            );
            return out_of_traffic(out, stable, &previous, generation, "RolledBack", msg);
        }
    }
    if secs_since(&ro.step_started_at, now) >= f64::from(spec.bake_seconds) {
        out.events.push(event(
            false,
            "BakeComplete",
            format!("{} passed its bake time", stable.label()),
        ));
        out.rollout = None;
        return out;
    }
    out.wake_after = Some(next_wake(spec, &ro, now));
    out.rollout = Some(ro);
    out
}

#[cfg(test)]
mod tests;
