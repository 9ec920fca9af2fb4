//! The bake: after a promotion the new stable revision is watched for `bakeSeconds` against
//! the absolute limits (judged so by [`crate::verdict::policy_of`]); a failing look
//! rolls back to the revision that was stable before.

use super::canary::next_wake;
use super::decision::{stable_only, Input, Output};
use super::end::out_of_traffic;
use super::history::{previous_of, record, restore_stable};
use crate::model::{EventSpec, Rev};
use crate::reason::Reason;
use crate::verdict::policy::secs_since;
use std::ops::ControlFlow;
use vr_crds::contract;
use vr_crds::rollout::{AnalysisResult, Outcome, RolloutState, RolloutStatus, Verdict};

/// A bake in progress watches the (new) stable revision, until the spec moves on (then the
/// bake is dropped and the next phases see no rollout). Breaks while the bake owns the step.
pub(super) fn resume(input: &Input<'_>, stable: &Rev, out: &mut Output) -> ControlFlow<()> {
    let Some(ro) = out
        .rollout
        .clone()
        .filter(|ro| ro.state == RolloutState::Baking)
    else {
        return ControlFlow::Continue(());
    };
    if input.target.hash != ro.hash || stable.hash != ro.hash {
        out.rollout = None;
        return ControlFlow::Continue(());
    }
    if input.asks(contract::ANNOTATION_PROMOTE) {
        // Already promoted: the request ends the bake.
        out.consumed.push(contract::ANNOTATION_PROMOTE);
        out.rollout = None;
        out.pointer = stable_only(stable);
        return ControlFlow::Break(());
    }
    if input.asks(contract::ANNOTATION_ABORT) {
        out.consumed.push(contract::ANNOTATION_ABORT);
        leave(input, out, &ro, stable, Left::Aborted);
        return ControlFlow::Break(());
    }
    bake(input, out, ro, stable);
    ControlFlow::Break(())
}

/// One step of the bake of `stable`: a failed window rolls back; the end of `bakeSeconds`
/// completes it.
fn bake(input: &Input<'_>, out: &mut Output, mut ro: RolloutStatus, stable: &Rev) {
    let (spec, now) = (input.spec, input.now);
    out.pointer = stable_only(stable);
    if let Some(w) = input.window.clone() {
        ro.last_analysis = Some(w.clone());
        if w.verdict == Verdict::Fail {
            leave(input, out, &ro, stable, Left::Failed(Box::new(w)));
            return;
        }
    }
    if secs_since(&ro.step_started_at, now) >= f64::from(spec.bake_seconds) {
        out.events.push(EventSpec::new(
            Reason::BakeComplete,
            format!("{} passed its bake time", stable.label()),
        ));
        out.rollout = None;
        return;
    }
    out.wake_after = Some(next_wake(spec, &ro, now));
    out.rollout = Some(ro);
}

/// Why a baking revision leaves traffic.
enum Left {
    /// An abort was asked during the bake.
    Aborted,
    /// This window failed.
    Failed(Box<AnalysisResult>),
}

/// The baking revision `stable` leaves traffic: the revision that was stable before the
/// rollout serves everything again, and `stable` is held back.
fn leave(input: &Input<'_>, out: &mut Output, ro: &RolloutStatus, stable: &Rev, why: Left) {
    let previous = previous_of(ro);
    let (stable_l, previous_l) = (stable.label(), previous.label());
    let (outcome, event, reason, analysis, msg) = match why {
        Left::Aborted => (
            Outcome::Aborted,
            Reason::Aborted,
            "abort requested during the bake".to_string(),
            None,
            format!("{stable_l} aborted during its bake; {previous_l} serves everything again"),
        ),
        Left::Failed(w) => {
            let reason = format!(
                "failed during the bake after promotion: {}",
                w.reasons.join("; ")
            );
            let msg = format!("{stable_l} rolled back to {previous_l}: {reason}");
            (
                Outcome::RolledBack,
                Reason::RolledBack,
                reason,
                Some(*w),
                msg,
            )
        }
    };
    record(
        &mut out.history,
        stable,
        outcome,
        Some(reason),
        analysis,
        input.now,
    );
    restore_stable(&mut out.history, &previous, input.now);
    out_of_traffic(out, stable, &previous, input.generation, event, msg);
}
