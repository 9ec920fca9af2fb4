//! How a rollout ends: out of traffic (rollback, abort: weight 0 at once, the content held
//! back) or promoted (stable := canary, then a bake when configured).

use super::decision::{stable_only, Input, Output};
use super::history::{record, rfc3339, supersede};
use crate::model::{EventSpec, Rev};
use crate::reason::Reason;
use std::time::Duration;
use vr_crds::resources::HeldBack;
use vr_crds::rollout::{Outcome, RolloutState, RolloutStatus};

/// Ends with `serve` taking all traffic and `held` held back (unless it is the same content),
/// with a Warning event `reason` and the `RolledBack` condition's message `msg`.
pub(super) fn out_of_traffic(
    out: &mut Output,
    held: &Rev,
    serve: &Rev,
    generation: i64,
    reason: Reason,
    msg: String,
) {
    if held.hash != serve.hash {
        out.held_back = Some(HeldBack {
            hash: held.hash.clone(),
            revision: held.label(),
            generation,
        });
    }
    out.events.push(EventSpec::new(reason, msg.clone()));
    out.rolled_back = Some(msg);
    out.pointer = stable_only(serve);
    out.rollout = None;
}

/// Takes the canary (`input.target`) out of traffic: `stable` serves everything; the history
/// records `outcome` with `reason` and the last window's numbers.
pub(super) fn fail(
    input: &Input<'_>,
    out: &mut Output,
    stable: &Rev,
    ro: RolloutStatus,
    outcome: Outcome,
    reason: String,
) {
    let target = &input.target;
    record(
        &mut out.history,
        target,
        outcome,
        Some(reason.clone()),
        ro.last_analysis.clone(),
        input.now,
    );
    let verb = if outcome == Outcome::Aborted {
        Reason::Aborted
    } else {
        Reason::RolledBack
    };
    let msg = format!(
        "{} taken out of traffic at {}% (weight 0), {} serves everything: {reason}",
        target.label(),
        ro.weight,
        stable.label()
    );
    out_of_traffic(out, target, stable, input.generation, verb, msg);
}

/// Promotes the canary (`input.target`): it serves everything; with `bake` (the last step
/// passed, not a promote request) and `bakeSeconds` set, it is watched for that long.
pub(super) fn promote(
    input: &Input<'_>,
    out: &mut Output,
    mut ro: RolloutStatus,
    stable: &Rev,
    bake: bool,
) {
    let (spec, target, now) = (input.spec, &input.target, input.now);
    supersede(&mut out.history, stable, now);
    record(
        &mut out.history,
        target,
        Outcome::Stable,
        None,
        ro.last_analysis.clone(),
        now,
    );
    out.events.push(EventSpec::new(
        Reason::Promoted,
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
}
