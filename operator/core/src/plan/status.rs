//! The status of a valid spec: the phase, the events of availability changes, and the status
//! object itself (everything the rollout and the conditions decided).

use super::conditions::is_true;
use crate::model::EventSpec;
use crate::reason::{ConditionType, Reason};
use crate::rollout;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use vr_crds::resources::{Phase, VideoResizerConfigStatus};
use vr_crds::rollout::RolloutStatus;

/// What the status of a valid spec is made of.
pub struct Parts<'a> {
    pub prev: &'a VideoResizerConfigStatus,
    pub conditions: Vec<Condition>,
    pub ro: &'a rollout::Output,
    /// The running canary (a rollout that is not baking), if any.
    pub canary: Option<&'a RolloutStatus>,
    pub ready_replicas: i32,
    /// The pointer this plan applies differs from the observed one.
    pub pointer_changes: bool,
    /// `r<N>` of the revision serving stable traffic.
    pub active_label: String,
    pub last_revision: u64,
    pub generation: Option<i64>,
}

/// Events for availability changes: `Available` when the config becomes ready, `Unavailable`
/// when its last pod goes, `SpecValid` after an invalid spec.
pub fn events(p: &Parts<'_>, events: &mut Vec<EventSpec>) {
    let prev = p.prev;
    let was_ready = is_true(&prev.conditions, ConditionType::Ready);
    let now_ready = is_true(&p.conditions, ConditionType::Ready);
    // Not `Ready` after a rollback, although pods serve: no `Available` event then either.
    let ready = now_ready && p.ready_replicas >= 1 && !p.pointer_changes && p.canary.is_none();
    if ready && !was_ready {
        events.push(EventSpec::new(
            Reason::Available,
            format!(
                "{} is active and {} data-plane pod(s) are ready",
                p.active_label, p.ready_replicas
            ),
        ));
    } else if !now_ready && was_ready && p.ready_replicas < 1 {
        events.push(EventSpec::new(
            Reason::Unavailable,
            "no data-plane pod is ready".into(),
        ));
    }
    if matches!(prev.phase, Some(Phase::Invalid))
        || (matches!(prev.phase, Some(Phase::Degraded)) && prev.message.is_some())
    {
        events.push(EventSpec::new(
            Reason::SpecValid,
            "the spec is valid again".into(),
        ));
    }
}

/// The status object.
pub fn status(p: Parts<'_>) -> VideoResizerConfigStatus {
    let ro = p.ro;
    let now_ready = is_true(&p.conditions, ConditionType::Ready);
    let phase = if p.canary.is_some() || (ro.rollout.is_some() && now_ready) {
        Phase::Progressing
    } else if ro.held_back.is_some() {
        Phase::Degraded
    } else if now_ready {
        Phase::Ready
    } else {
        Phase::Progressing
    };
    VideoResizerConfigStatus {
        observed_generation: p.generation,
        conditions: p.conditions,
        phase: Some(phase),
        active_revision: Some(p.active_label),
        active_config_map: Some(ro.pointer.stable.clone()),
        last_revision: p.last_revision,
        ready_replicas: p.ready_replicas,
        canary_weight: p.canary.map_or(0, |r| r.weight),
        message: None,
        rollout: ro.rollout.clone(),
        held_back: ro.held_back.clone(),
        history: ro.history.clone(),
    }
}
