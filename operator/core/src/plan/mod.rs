//! Reconcile, the pure part: from a config, its derivatives and what exists in the cluster, to
//! the children that should exist, the revisions to prune, the status and the events.
//!
//! [`plan`] does no I/O and reads no clock (the caller passes `now`), so every rule below is a
//! plain unit test:
//!
//! * A spec that renders and validates becomes a revision ([`revisions`]): the existing
//!   revision with the same content hash when there is one (identical content never creates a
//!   revision), otherwise revision `lastRevision + 1` (names are never reused, even after
//!   pruning).
//! * The pointer names the revisions to serve, as [`crate::rollout::step`] decides. A spec
//!   that does not render changes nothing in the cluster ([`invalid`]): the last good revision
//!   keeps serving, and the status says why (`Degraded`, a Warning event naming the fields).
//! * The newest `revisionHistoryLimit` revisions are kept, and the ones in use always.
//! * The workload is declared every pass as a list of objects ([`children`]) built from the
//!   spec ([`workload`]).
//! * A Derivative's status ([`derivative`]) is read from the config it names.
//! * Conditions ([`conditions`]) change `lastTransitionTime` only when their status flips, so
//!   re-applying the same spec produces byte-identical status ([`status`]; no write, no
//!   self-triggered reconcile).

pub mod children;
pub mod conditions;
pub mod derivative;
mod invalid;
pub mod meta;
pub mod revisions;
mod status;
pub mod workload;

use crate::model::{EventSpec, Observed, Rev, Settings};
use crate::reason::Reason;
use crate::rollout;
use children::Declared;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use vr_crds::render;
use vr_crds::resources::{Derivative, VideoResizerConfig, VideoResizerConfigStatus};
use vr_crds::rollout::RolloutState;

/// Everything one reconcile should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// A new revision ConfigMap to create (immutable).
    pub new_revision: Option<ConfigMap>,
    /// The pointer ConfigMap to apply (None: leave it as it is).
    pub pointer: Option<ConfigMap>,
    /// The workload objects to apply, in order (empty: leave the workload as it is).
    pub children: Vec<Declared>,
    /// Revision ConfigMaps to delete (beyond the history limit).
    pub prune: Vec<String>,
    pub status: VideoResizerConfigStatus,
    pub events: Vec<EventSpec>,
    /// Request annotations acted on, to remove from the config.
    pub consume: Vec<&'static str>,
    /// When to reconcile again because a rollout is running (next window or step end).
    pub wake_after: Option<std::time::Duration>,
    /// A rollout or bake began: take a metrics baseline now.
    pub baseline: bool,
    /// The plan takes traffic away from a revision (rollback, abort): write status before the
    /// pointer, so that a failed pointer write can never give a failed canary its weight back.
    pub status_first: bool,
}

/// Computes the plan for `cfg`.
pub fn plan(
    cfg: &VideoResizerConfig,
    derivatives: &[Derivative],
    observed: &Observed,
    settings: &Settings,
    now: Timestamp,
) -> Plan {
    let generation = cfg.metadata.generation;
    let prev = cfg.status.clone().unwrap_or_default();
    let last_revision = revisions::last_revision(&prev, observed);
    let rendered = match render::render(cfg, derivatives) {
        Ok(r) => r,
        Err(errs) => {
            let invalid =
                invalid::invalid(cfg, observed, &prev, last_revision, errs.to_string(), now);
            return Plan {
                new_revision: None,
                pointer: invalid.pointer,
                children: Vec::new(),
                prune: Vec::new(),
                status: invalid.status,
                events: invalid.events,
                consume: Vec::new(),
                wake_after: None,
                baseline: false,
                status_first: false,
            };
        }
    };
    let mut events = Vec::new();
    let target = revisions::target(cfg, observed, &rendered, last_revision, &mut events);
    let last_revision = last_revision.max(target.rev.number);
    let empty = BTreeMap::new();
    let ro = rollout::step(rollout::Input {
        spec: &cfg.spec.rollout,
        annotations: cfg.metadata.annotations.as_ref().unwrap_or(&empty),
        generation: generation.unwrap_or(0),
        prev: &prev,
        target: target.rev.clone(),
        stable: revisions::stable(observed),
        revisions: &observed.revisions,
        ready_replicas: observed.ready_replicas,
        min_replicas: cfg.spec.workload.min_replicas,
        restarts: observed.restarts,
        window: observed.window.clone(),
        now,
    });
    events.extend(ro.events.iter().cloned());
    let pointer = &ro.pointer;
    let pointer_changes = observed.pointer.as_ref() != Some(pointer);
    let serving = Rev::find(&observed.revisions, &pointer.stable)
        .map(|r| r.number)
        .unwrap_or(target.rev.number);
    if pointer_changes && observed.pointer.is_none() {
        events.push(EventSpec::new(
            Reason::RevisionActivated,
            format!("r{serving} ({}) now serves all traffic", pointer.stable),
        ));
    }
    let prune = revisions::prune(cfg, observed, pointer, &target, &ro);
    let active_label = format!("r{serving}");
    let canary = ro
        .rollout
        .as_ref()
        .filter(|r| r.state != RolloutState::Baking);
    let mut conditions = prev.conditions.clone();
    conditions::update(
        &mut conditions,
        &conditions::Facts {
            steps: cfg.spec.rollout.steps.len(),
            bake_seconds: cfg.spec.rollout.bake_seconds,
            ro: &ro,
            canary,
            ready_replicas: observed.ready_replicas,
            pointer_changes,
            active_label: &active_label,
            generation,
            now,
        },
    );
    let parts = status::Parts {
        prev: &prev,
        conditions,
        ro: &ro,
        canary,
        ready_replicas: observed.ready_replicas,
        pointer_changes,
        active_label,
        last_revision,
        generation,
    };
    status::events(&parts, &mut events);
    let status = status::status(parts);
    let params = workload::workload_params(cfg, &rendered, settings);
    Plan {
        new_revision: target.new_revision,
        pointer: Some(revisions::pointer_configmap(cfg, pointer)),
        children: children::workload(&params),
        prune,
        status,
        events,
        consume: ro.consumed.clone(),
        wake_after: ro.wake_after,
        baseline: ro.started,
        status_first: ro.rolled_back.is_some(),
    }
}

#[cfg(test)]
mod tests;
