//! Requests made with annotations on the config (consumed once acted on): rollback to a kept
//! revision, retry of a held-back revision, and promote or abort of a running rollout.

use super::decision::{Input, Output};
use super::end::{fail, out_of_traffic, promote};
use super::history::{kept, record, rev_of, supersede};
use crate::model::{number_of, EventSpec, Rev};
use crate::reason::Reason;
use std::ops::ControlFlow;
use vr_crds::contract;
use vr_crds::rollout::{Outcome, RolloutStatus};

/// `rollback-to: N`: revision N (a kept revision ConfigMap) serves everything at once, without
/// analysis; the current target is held back. Breaks when it acted.
pub(super) fn rollback_to(input: &Input<'_>, out: &mut Output) -> ControlFlow<()> {
    let Some(n) = input.annotations.get(contract::ANNOTATION_ROLLBACK_TO) else {
        return ControlFlow::Continue(());
    };
    let now = input.now;
    out.consumed.push(contract::ANNOTATION_ROLLBACK_TO);
    let wanted = Some(number_of(n)).filter(|n| *n > 0);
    let Some(r) = wanted.and_then(|n| input.revisions.iter().find(|r| r.revision == n)) else {
        out.events.push(EventSpec::new(
            Reason::RollbackRefused,
            format!(
                "annotation {}={n:?}: no such revision ConfigMap (kept: {})",
                contract::ANNOTATION_ROLLBACK_TO,
                kept(input.revisions)
            ),
        ));
        return ControlFlow::Continue(());
    };
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
    if let Some(s) = &input.stable {
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
        input.target.label()
    );
    out_of_traffic(
        out,
        &input.target,
        &to,
        input.generation,
        Reason::RolledBack,
        msg,
    );
    if out.held_back.as_ref().is_some_and(|h| h.hash == to.hash) {
        out.held_back = None;
    }
    ControlFlow::Break(())
}

/// `retry`: the held-back revision may roll out again.
pub(super) fn retry(input: &Input<'_>, out: &mut Output) {
    if !input.asks(contract::ANNOTATION_RETRY) {
        return;
    }
    out.consumed.push(contract::ANNOTATION_RETRY);
    if let Some(h) = out.held_back.take() {
        out.events.push(EventSpec::new(
            Reason::RetryRequested,
            format!("retrying {} as requested", h.revision),
        ));
    }
}

/// `abort` or `promote` of the running rollout `ro`: ends it now (abort wins). Gives `ro`
/// back when neither was asked.
pub(super) fn end_rollout(
    input: &Input<'_>,
    stable: &Rev,
    ro: RolloutStatus,
    out: &mut Output,
) -> ControlFlow<(), RolloutStatus> {
    if input.asks(contract::ANNOTATION_ABORT) {
        out.consumed.push(contract::ANNOTATION_ABORT);
        if input.asks(contract::ANNOTATION_PROMOTE) {
            out.consumed.push(contract::ANNOTATION_PROMOTE);
        }
        fail(
            input,
            out,
            stable,
            ro,
            Outcome::Aborted,
            "abort requested".into(),
        );
        return ControlFlow::Break(());
    }
    if input.asks(contract::ANNOTATION_PROMOTE) {
        out.consumed.push(contract::ANNOTATION_PROMOTE);
        out.events.push(EventSpec::new(
            Reason::PromoteRequested,
            format!(
                "promoting {} as requested, skipping analysis",
                input.target.label()
            ),
        ));
        promote(input, out, ro, stable, false);
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(ro)
}
