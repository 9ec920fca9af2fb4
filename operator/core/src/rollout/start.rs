//! Starting (or not starting) a rollout: the first revision of a config, content that needs no
//! rollout (the stable revision's, or held back), and the rollout of new content — a canary at
//! the first step's weight, or an immediate switch when no steps are configured.

use super::decision::{stable_only, Input, Output};
use super::history::{record, rev_of, rfc3339, supersede};
use crate::model::{EventSpec, Rev};
use crate::reason::Reason;
use std::ops::ControlFlow;
use vr_crds::contract;
use vr_crds::rollout::{AnalysisResult, Outcome, RolloutState, RolloutStatus};

/// With no stable revision yet, the target takes all traffic at once.
pub(super) fn first_revision(input: &Input<'_>, out: &mut Output) {
    out.pointer = stable_only(&input.target);
    record(
        &mut out.history,
        &input.target,
        Outcome::Stable,
        None,
        None,
        input.now,
    );
    out.rollout = None;
    out.promoted = true;
}

/// Records that a rollout of `ro`'s content stopped because the spec changed.
fn replaced(out: &mut Output, ro: &RolloutStatus, input: &Input<'_>) -> Rev {
    let was = rev_of(ro);
    record(
        &mut out.history,
        &was,
        Outcome::Replaced,
        Some("the spec changed before its rollout finished".into()),
        None,
        input.now,
    );
    was
}

/// The target is the stable content, or held back: nothing to roll out; a rollout of other
/// content is replaced and stable serves everything. Breaks when so.
pub(super) fn nothing_to_roll_out(
    input: &Input<'_>,
    stable: &Rev,
    out: &mut Output,
) -> ControlFlow<()> {
    let target = &input.target;
    let held = out
        .held_back
        .as_ref()
        .is_some_and(|h| h.hash == target.hash);
    if target.hash != stable.hash && !held {
        return ControlFlow::Continue(());
    }
    if let Some(ro) = out.rollout.take() {
        if ro.hash != stable.hash {
            let was = replaced(out, &ro, input);
            out.events.push(EventSpec::new(
                Reason::RolloutReplaced,
                format!("rollout of {} stopped: the spec changed", was.label()),
            ));
        }
    }
    for k in [contract::ANNOTATION_PROMOTE, contract::ANNOTATION_ABORT] {
        if input.asks(k) {
            out.consumed.push(k);
        }
    }
    if !out.history.iter().any(|h| h.hash == stable.hash) {
        record(
            &mut out.history,
            stable,
            Outcome::Stable,
            None,
            None,
            input.now,
        );
    }
    out.pointer = stable_only(stable);
    ControlFlow::Break(())
}

/// The target differs from stable: the rollout of it that runs, or one that starts now, with
/// the window to count (a window belongs to the rollout it was measured for: a rollout that
/// starts now, or replaces another, ignores it). Breaks when no steps are configured (the
/// target is promoted at once).
pub(super) fn running_rollout(
    input: &Input<'_>,
    stable: &Rev,
    out: &mut Output,
) -> ControlFlow<(), (RolloutStatus, Option<AnalysisResult>)> {
    let (spec, target, now) = (input.spec, &input.target, input.now);
    let other = match out.rollout.take() {
        Some(ro) if ro.hash == target.hash => {
            return ControlFlow::Continue((ro, input.window.clone()))
        }
        other => other,
    };
    if let Some(old) = other {
        replaced(out, &old, input);
    }
    if spec.steps.is_empty() {
        // No canary: switch at once.
        supersede(&mut out.history, stable, now);
        record(&mut out.history, target, Outcome::Stable, None, None, now);
        out.events.push(EventSpec::new(
            Reason::Promoted,
            format!(
                "{} serves all traffic (no canary steps configured)",
                target.label()
            ),
        ));
        out.pointer = stable_only(target);
        out.promoted = true;
        return ControlFlow::Break(());
    }
    let w = spec.steps[0].weight;
    out.started = true;
    record(
        &mut out.history,
        target,
        Outcome::Progressing,
        None,
        None,
        now,
    );
    out.events.push(EventSpec::new(
        Reason::RolloutStarted,
        format!(
            "canary {} at {w}% of traffic (step 1/{}), stable {}",
            target.label(),
            spec.steps.len(),
            stable.label()
        ),
    ));
    let ro = RolloutStatus {
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
        baseline_ready_replicas: input.ready_replicas,
        baseline_restarts: input.restarts,
        last_analysis: None,
    };
    ControlFlow::Continue((ro, None))
}
