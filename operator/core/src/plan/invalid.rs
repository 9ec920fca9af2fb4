//! The plan for a spec that does not render or validate: nothing changes in the cluster (the
//! last good revision keeps serving), the status says why (`Degraded`, a Warning event naming
//! the fields, once), and a canary running at that moment leaves traffic at once — with no
//! valid spec there is nothing to judge it against or promote it to.

use super::conditions::{set_condition, truncate};
use super::revisions::pointer_configmap;
use crate::model::{EventSpec, Observed};
use crate::reason::{ConditionType, Reason};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use vr_crds::contract::Pointer;
use vr_crds::resources::{Phase, VideoResizerConfig, VideoResizerConfigStatus};
use vr_crds::rollout::Outcome;

/// What an invalid spec changes: at most the pointer (a canary leaves traffic), the status and
/// the events.
pub struct Invalid {
    pub pointer: Option<ConfigMap>,
    pub status: VideoResizerConfigStatus,
    pub events: Vec<EventSpec>,
}

/// What changes for `cfg` whose spec is invalid with `message`.
pub fn invalid(
    cfg: &VideoResizerConfig,
    observed: &Observed,
    prev: &VideoResizerConfigStatus,
    last_revision: u64,
    message: String,
    now: Timestamp,
) -> Invalid {
    let generation = cfg.metadata.generation;
    let mut events = Vec::new();
    if prev.message.as_deref() != Some(message.as_str()) {
        events.push(EventSpec::new(
            Reason::InvalidSpec,
            truncate(
                &format!("not applied; the last good revision keeps serving: {message}"),
                1000,
            ),
        ));
    }
    let serving = observed.pointer.is_some();
    let mut history = prev.history.clone();
    let mut rollout = prev.rollout.clone();
    let mut pointer = None;
    if let Some(p) = observed.pointer.as_ref().filter(|p| p.canary.is_some()) {
        let stable_only = Pointer {
            stable: p.stable.clone(),
            canary: None,
            canary_weight_bp: 0,
        };
        pointer = Some(pointer_configmap(cfg, &stable_only));
        if let Some(ro) = rollout.take() {
            if let Some(r) = history.iter_mut().find(|h| h.revision == ro.revision) {
                r.outcome = Outcome::Replaced;
                r.reason = Some("the spec became invalid during its rollout".into());
                r.time = now.to_string();
            }
        }
        events.push(EventSpec::new(
            Reason::RolloutStopped,
            "the spec became invalid: the canary is out of traffic".into(),
        ));
    }
    let mut conditions = prev.conditions.clone();
    for (type_, status, msg) in [
        (ConditionType::Ready, false, message.as_str()),
        (
            ConditionType::Progressing,
            false,
            "waiting for a valid spec",
        ),
        (ConditionType::Degraded, true, message.as_str()),
        (ConditionType::Stalled, true, message.as_str()),
        (
            ConditionType::Reconciling,
            false,
            "waiting for a valid spec",
        ),
    ] {
        set_condition(
            &mut conditions,
            type_,
            status,
            Reason::InvalidSpec,
            msg,
            generation,
            now,
        );
    }
    let status = VideoResizerConfigStatus {
        observed_generation: generation,
        conditions,
        phase: Some(if serving {
            Phase::Degraded
        } else {
            Phase::Invalid
        }),
        active_revision: prev.active_revision.clone(),
        active_config_map: prev.active_config_map.clone(),
        last_revision,
        ready_replicas: observed.ready_replicas,
        canary_weight: if pointer.is_some() {
            0
        } else {
            prev.canary_weight
        },
        message: Some(message),
        rollout,
        held_back: prev.held_back.clone(),
        history,
    };
    Invalid {
        pointer,
        status,
        events,
    }
}
