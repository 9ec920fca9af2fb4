//! Reconcile, the pure part: from a config, its derivatives and what exists in the cluster, to
//! the children that should exist, the revisions to prune, the status and the events.
//!
//! [`plan`] does no I/O and reads no clock (the caller passes `now`), so every rule below is a
//! plain unit test:
//!
//! * A spec that renders and validates becomes a revision: the existing revision with the same
//!   content hash when there is one (identical content never creates a revision), otherwise
//!   revision `lastRevision + 1` (names are never reused, even after pruning).
//! * The pointer names the revision to serve. A spec that does not render changes nothing in
//!   the cluster: the last good revision keeps serving, and the status says why (`Degraded`,
//!   a Warning event naming the fields).
//! * The newest `revisionHistoryLimit` revisions are kept, and the active one always.
//! * Conditions change `lastTransitionTime` only when their status flips, so re-applying the
//!   same spec produces byte-identical status (no write, no self-triggered reconcile).

use crate::children::{self, WorkloadParams};
use crate::rollout::{self, Rev};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use vr_crds::contract::{self, Pointer};
use vr_crds::render::{self, Rendered};
use vr_crds::resources::{Derivative, Phase, VideoResizerConfig, VideoResizerConfigStatus};
use vr_crds::rollout::{AnalysisResult, RolloutState};

/// A revision ConfigMap as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRevision {
    pub name: String,
    pub revision: u64,
    pub hash: String,
}

/// What exists in the cluster for one config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub revisions: Vec<ObservedRevision>,
    pub pointer: Option<Pointer>,
    /// Ready data-plane endpoints (from the Service's EndpointSlices).
    pub ready_replicas: i32,
    /// Container restarts of the data-plane pods, summed.
    pub restarts: i32,
    /// The canary analysis window that ended now, if one did.
    pub window: Option<AnalysisResult>,
}

/// Operator-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Image used when `spec.workload.image` is not set.
    pub default_image: String,
}

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// Everything one reconcile should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// A new revision ConfigMap to create (immutable).
    pub new_revision: Option<ConfigMap>,
    /// The pointer ConfigMap to apply (None: leave it as it is).
    pub pointer: Option<ConfigMap>,
    /// Workload parameters to apply (None: leave the workload as it is).
    pub workload: Option<WorkloadParams>,
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

/// Condition types (kstatus).
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Condition type set after a rollback or an abort, cleared by the next promotion.
pub const ROLLED_BACK: &str = "RolledBack";

/// The owner reference children carry (controller, blocks owner deletion).
pub fn owner_reference(cfg: &VideoResizerConfig) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", contract::GROUP, vr_crds::resources::VERSION),
        kind: "VideoResizerConfig".into(),
        name: cfg.metadata.name.clone().unwrap_or_default(),
        uid: cfg.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Computes the plan for `cfg`.
pub fn plan(
    cfg: &VideoResizerConfig,
    derivatives: &[Derivative],
    observed: &Observed,
    settings: &Settings,
    now: Timestamp,
) -> Plan {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let namespace = cfg.metadata.namespace.clone().unwrap_or_default();
    let generation = cfg.metadata.generation;
    let prev = cfg.status.clone().unwrap_or_default();
    let max_seen = observed
        .revisions
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0);
    let last_revision = prev.last_revision.max(max_seen);
    let mut events = Vec::new();

    let rendered = match render::render(cfg, derivatives) {
        Ok(r) => r,
        Err(errs) => {
            let message = errs.to_string();
            if prev.message.as_deref() != Some(message.as_str()) {
                events.push(EventSpec {
                    warning: true,
                    reason: "InvalidSpec",
                    note: truncate(
                        &format!("not applied; the last good revision keeps serving: {message}"),
                        1000,
                    ),
                });
            }
            let serving = observed.pointer.is_some();
            // A canary running when the spec turned invalid leaves traffic at once: with no
            // valid spec there is nothing to judge it against or promote it to.
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
                        r.outcome = vr_crds::rollout::Outcome::Replaced;
                        r.reason = Some("the spec became invalid during its rollout".into());
                        r.time = now.to_string();
                    }
                }
                events.push(EventSpec {
                    warning: true,
                    reason: "RolloutStopped",
                    note: "the spec became invalid: the canary is out of traffic".into(),
                });
            }
            let mut conditions = prev.conditions.clone();
            set_condition(
                &mut conditions,
                READY,
                false,
                "InvalidSpec",
                &message,
                generation,
                now,
            );
            set_condition(
                &mut conditions,
                PROGRESSING,
                false,
                "InvalidSpec",
                "waiting for a valid spec",
                generation,
                now,
            );
            set_condition(
                &mut conditions,
                DEGRADED,
                true,
                "InvalidSpec",
                &message,
                generation,
                now,
            );
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
            return Plan {
                new_revision: None,
                pointer,
                workload: None,
                prune: Vec::new(),
                status,
                events,
                consume: Vec::new(),
                wake_after: None,
                baseline: false,
                status_first: false,
            };
        }
    };

    // Identical content → the existing revision; otherwise the next number.
    let (revision, cm_name, new_revision) =
        match observed.revisions.iter().find(|r| r.hash == rendered.hash) {
            Some(r) => (r.revision, r.name.clone(), None),
            None => {
                let n = last_revision + 1;
                let cm_name = contract::revision_configmap_name(&name, n, &rendered.hash);
                events.push(EventSpec {
                    warning: false,
                    reason: "RevisionCreated",
                    note: format!("revision r{n} ({cm_name})"),
                });
                (
                    n,
                    cm_name.clone(),
                    Some(revision_configmap(cfg, &rendered, n, &cm_name)),
                )
            }
        };
    let last_revision = last_revision.max(revision);

    let target = Rev {
        number: revision,
        configmap: cm_name.clone(),
        hash: rendered.hash.clone(),
    };
    // The pointer's stable revision; a pointer naming a ConfigMap not listed (deleted by hand)
    // still counts as stable (number from its name, unknown content), so nothing skips the
    // canary.
    let stable = observed.pointer.as_ref().map(|p| {
        Rev::find(&observed.revisions, &p.stable).unwrap_or_else(|| Rev {
            number: p
                .stable
                .rsplit_once("-r")
                .and_then(|(_, rest)| rest.split('-').next()?.parse().ok())
                .unwrap_or(0),
            configmap: p.stable.clone(),
            hash: String::new(),
        })
    });
    let empty = BTreeMap::new();
    let ro = rollout::step(rollout::Input {
        spec: &cfg.spec.rollout,
        annotations: cfg.metadata.annotations.as_ref().unwrap_or(&empty),
        generation: generation.unwrap_or(0),
        prev: &prev,
        target: target.clone(),
        stable,
        revisions: &observed.revisions,
        ready_replicas: observed.ready_replicas,
        min_replicas: cfg.spec.workload.min_replicas,
        restarts: observed.restarts,
        window: observed.window.clone(),
        now,
    });
    events.extend(ro.events.iter().cloned());
    let pointer = ro.pointer.clone();
    let pointer_changes = observed.pointer.as_ref() != Some(&pointer);
    let serving = Rev::find(&observed.revisions, &pointer.stable)
        .map(|r| r.number)
        .unwrap_or(revision);
    if pointer_changes && observed.pointer.is_none() {
        events.push(EventSpec {
            warning: false,
            reason: "RevisionActivated",
            note: format!("r{serving} ({}) now serves all traffic", pointer.stable),
        });
    }

    // History: keep the newest N, and always the ones in use (stable, canary, rollback target).
    let limit = cfg.spec.revision_history_limit.max(1) as usize;
    let mut all: Vec<&ObservedRevision> = observed.revisions.iter().collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let mut in_use: Vec<&str> = vec![pointer.stable.as_str(), cm_name.as_str()];
    if let Some(c) = &pointer.canary {
        in_use.push(c.as_str());
    }
    if let Some(r) = &ro.rollout {
        in_use.push(r.previous_config_map.as_str());
    }
    let keep: BTreeSet<&str> = all
        .iter()
        .take(limit.saturating_sub(usize::from(new_revision.is_some())))
        .map(|r| r.name.as_str())
        .chain(in_use.iter().copied())
        .collect();
    let prune: Vec<String> = all
        .iter()
        .filter(|r| !keep.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();

    let active_label = format!("r{serving}");
    let canary = ro
        .rollout
        .as_ref()
        .filter(|r| r.state != RolloutState::Baking);
    let ready = observed.ready_replicas >= 1 && !pointer_changes && canary.is_none();
    let mut conditions = prev.conditions.clone();
    if let Some(r) = canary {
        let what = format!(
            "canary {} at {}% of traffic (step {}/{}{}), {active_label} serves the rest",
            r.revision,
            r.weight,
            r.step + 1,
            cfg.spec.rollout.steps.len(),
            if r.state == RolloutState::Paused {
                ", paused"
            } else {
                ""
            }
        );
        set_condition(
            &mut conditions,
            READY,
            false,
            "RolloutInProgress",
            &what,
            generation,
            now,
        );
        set_condition(
            &mut conditions,
            PROGRESSING,
            true,
            if r.state == RolloutState::Paused {
                "RolloutPaused"
            } else {
                "Canary"
            },
            &what,
            generation,
            now,
        );
    } else if observed.ready_replicas >= 1 && !(pointer_changes && ro.rollout.is_none()) {
        set_condition(
            &mut conditions,
            READY,
            true,
            "Available",
            &format!(
                "{active_label} is active and {} data-plane pod(s) are ready",
                observed.ready_replicas
            ),
            generation,
            now,
        );
        match &ro.rollout {
            Some(r) => set_condition(
                &mut conditions,
                PROGRESSING,
                true,
                "Baking",
                &format!(
                    "{} promoted; watched for {}s after promotion",
                    r.revision, cfg.spec.rollout.bake_seconds
                ),
                generation,
                now,
            ),
            None => set_condition(
                &mut conditions,
                PROGRESSING,
                false,
                "Reconciled",
                &format!("{active_label} is fully rolled out"),
                generation,
                now,
            ),
        }
    } else if pointer_changes {
        set_condition(
            &mut conditions,
            READY,
            false,
            "Activating",
            &format!("activating {active_label}"),
            generation,
            now,
        );
        set_condition(
            &mut conditions,
            PROGRESSING,
            true,
            "Activating",
            &format!("activating {active_label}"),
            generation,
            now,
        );
    } else {
        set_condition(
            &mut conditions,
            READY,
            false,
            "NoReadyPods",
            "no data-plane pod is ready yet",
            generation,
            now,
        );
        set_condition(
            &mut conditions,
            PROGRESSING,
            true,
            "WaitingForPods",
            "waiting for data-plane pods to become ready",
            generation,
            now,
        );
    }
    match &ro.held_back {
        Some(h) => {
            let why = ro
                .history
                .iter()
                .find(|r| r.revision == h.revision)
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "rolled back".into());
            set_condition(
                &mut conditions,
                DEGRADED,
                true,
                "RolledBack",
                &format!(
                    "{} is held back until the spec changes or a retry is asked ({}): {why}",
                    h.revision,
                    contract::ANNOTATION_RETRY
                ),
                generation,
                now,
            );
        }
        None => set_condition(
            &mut conditions,
            DEGRADED,
            false,
            "Reconciled",
            "the spec is valid",
            generation,
            now,
        ),
    }
    if let Some(why) = &ro.rolled_back {
        set_condition(
            &mut conditions,
            ROLLED_BACK,
            true,
            "RolledBack",
            why,
            generation,
            now,
        );
    } else if ro.promoted && conditions.iter().any(|c| c.type_ == ROLLED_BACK) {
        set_condition(
            &mut conditions,
            ROLLED_BACK,
            false,
            "Promoted",
            &format!("{active_label} was promoted"),
            generation,
            now,
        );
    }
    let was_ready = prev
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True");
    let now_ready = conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True");
    if ready && !was_ready {
        events.push(EventSpec {
            warning: false,
            reason: "Available",
            note: format!(
                "{active_label} is active and {} data-plane pod(s) are ready",
                observed.ready_replicas
            ),
        });
    } else if !now_ready && was_ready && observed.ready_replicas < 1 {
        events.push(EventSpec {
            warning: true,
            reason: "Unavailable",
            note: "no data-plane pod is ready".into(),
        });
    }
    if matches!(prev.phase, Some(Phase::Invalid))
        || (matches!(prev.phase, Some(Phase::Degraded)) && prev.message.is_some())
    {
        events.push(EventSpec {
            warning: false,
            reason: "SpecValid",
            note: "the spec is valid again".into(),
        });
    }

    let phase = if canary.is_some() || (ro.rollout.is_some() && now_ready) {
        Phase::Progressing
    } else if ro.held_back.is_some() {
        Phase::Degraded
    } else if now_ready {
        Phase::Ready
    } else {
        Phase::Progressing
    };
    let status = VideoResizerConfigStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase),
        active_revision: Some(active_label),
        active_config_map: Some(pointer.stable.clone()),
        last_revision,
        ready_replicas: observed.ready_replicas,
        canary_weight: canary.map_or(0, |r| r.weight),
        message: None,
        rollout: ro.rollout.clone(),
        held_back: ro.held_back.clone(),
        history: ro.history.clone(),
    };

    Plan {
        new_revision,
        pointer: Some(pointer_configmap(cfg, &pointer)),
        workload: Some(workload_params(cfg, &rendered, settings, &namespace)),
        prune,
        status,
        events,
        consume: ro.consumed.clone(),
        wake_after: ro.wake_after,
        baseline: ro.started,
        status_first: ro.rolled_back.is_some(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn base_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            contract::LABEL_APP_NAME.to_string(),
            contract::APP_NAME.to_string(),
        ),
        (contract::LABEL_APP_INSTANCE.to_string(), name.to_string()),
        (
            contract::LABEL_APP_COMPONENT.to_string(),
            contract::COMPONENT_CONFIG.to_string(),
        ),
        (
            contract::LABEL_APP_MANAGED_BY.to_string(),
            contract::FIELD_MANAGER.to_string(),
        ),
        (contract::LABEL_CONFIG.to_string(), name.to_string()),
    ])
}

/// The immutable ConfigMap of revision `n`.
fn revision_configmap(
    cfg: &VideoResizerConfig,
    rendered: &Rendered,
    n: u64,
    cm_name: &str,
) -> ConfigMap {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let mut labels = base_labels(&name);
    labels.insert(contract::LABEL_ROLE.into(), contract::ROLE_REVISION.into());
    labels.insert(contract::LABEL_REVISION.into(), n.to_string());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.to_owned()),
            namespace: cfg.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                contract::ANNOTATION_HASH.to_string(),
                rendered.hash.clone(),
            )])),
            owner_references: Some(vec![owner_reference(cfg)]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            contract::CONFIG_KEY.to_string(),
            render::with_revision(rendered, &format!("r{n}")),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// The pointer ConfigMap.
fn pointer_configmap(cfg: &VideoResizerConfig, pointer: &Pointer) -> ConfigMap {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let mut labels = base_labels(&name);
    labels.insert(contract::LABEL_ROLE.into(), contract::ROLE_POINTER.into());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(contract::pointer_configmap_name(&name)),
            namespace: cfg.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(cfg)]),
            ..ObjectMeta::default()
        },
        data: Some(pointer.to_data()),
        ..ConfigMap::default()
    }
}

/// Process-level flags for the data plane (cache sizes, transform slots), from the spec.
fn sizing_args(cfg: &VideoResizerConfig) -> (Vec<String>, Option<u64>) {
    let s = &cfg.spec;
    let mut a = vec![
        "--memory-cache-bytes".to_string(),
        s.cache.memory.max_bytes.to_string(),
        "--memory-cache-object-bytes".into(),
        s.cache.memory.max_object_bytes.to_string(),
        "--transform-slots".into(),
        s.limits.max_concurrent_transforms.to_string(),
        "--transform-queue".into(),
        s.limits.queue_depth.to_string(),
        "--transform-queue-timeout-seconds".into(),
        s.limits.queue_timeout_seconds.to_string(),
    ];
    let disk = s.cache.disk.as_ref().map(|d| d.max_bytes);
    if let Some(bytes) = disk {
        a.extend([
            "--disk-cache-dir".into(),
            children::DISK_CACHE_DIR.into(),
            "--disk-cache-bytes".into(),
            bytes.to_string(),
        ]);
    }
    (a, disk)
}

fn workload_params(
    cfg: &VideoResizerConfig,
    rendered: &Rendered,
    settings: &Settings,
    namespace: &str,
) -> WorkloadParams {
    let w = &cfg.spec.workload;
    let (sizing_args, disk_cache_bytes) = sizing_args(cfg);
    let mut requests = BTreeMap::new();
    requests.insert("cpu".to_string(), w.resources.requests.cpu.0.clone());
    requests.insert("memory".to_string(), w.resources.requests.memory.0.clone());
    let mut limits = BTreeMap::new();
    if let Some(c) = &w.resources.limits.cpu {
        limits.insert("cpu".to_string(), c.0.clone());
    }
    if let Some(m) = &w.resources.limits.memory {
        limits.insert("memory".to_string(), m.0.clone());
    }
    WorkloadParams {
        config: cfg.metadata.name.clone().unwrap_or_default(),
        namespace: namespace.to_owned(),
        owner: owner_reference(cfg),
        image: w
            .image
            .clone()
            .unwrap_or_else(|| settings.default_image.clone()),
        image_pull_policy: w.image_pull_policy.map(|p| p.as_str().to_owned()),
        min_replicas: w.min_replicas,
        max_replicas: w.max_replicas,
        target_cpu_percent: w.target_cpu_utilization_percentage,
        queue_depth_target: w.queue_depth_target.and_then(|q| u32::try_from(q).ok()),
        scale_down_stabilization_seconds: w.scale_down_stabilization_seconds,
        requests,
        limits,
        pdb_min_available: w.pod_disruption_budget.min_available,
        sizing_args,
        disk_cache_bytes,
        secrets: rendered.secrets.clone(),
    }
}

/// Sets a condition, changing `lastTransitionTime` only when the status flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status_s = if status { "True" } else { "False" };
    let message = truncate(message, 2000);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status_s {
                c.last_transition_time = Time(now);
            }
            c.status = status_s.into();
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status_s.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

#[cfg(test)]
mod tests;
