//! What one rollout step decides from ([`Input`]) and what it decided ([`Output`]).

use crate::model::{EventSpec, ObservedRevision, Rev};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;
use vr_crds::contract::Pointer;
use vr_crds::resources::{HeldBack, VideoResizerConfigStatus};
use vr_crds::rollout::{AnalysisResult, RevisionRecord, RolloutSpec, RolloutStatus};

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

impl Input<'_> {
    /// Whether the request annotation `key` is present.
    pub(super) fn asks(&self, key: &str) -> bool {
        self.annotations.contains_key(key)
    }
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

/// A pointer sending everything to `rev`.
pub(super) fn stable_only(rev: &Rev) -> Pointer {
    Pointer {
        stable: rev.configmap.clone(),
        canary: None,
        canary_weight_bp: 0,
    }
}
