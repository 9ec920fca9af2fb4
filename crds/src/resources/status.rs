//! What the operator reports in a VideoResizerConfig's status.

use crate::rollout::{RevisionRecord, RolloutStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a VideoResizerConfig (kstatus conventions: `observedGeneration` and the
/// `Ready`, `Progressing` and `Degraded` conditions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoResizerConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (`Ready`, `Progressing`, `Degraded`, `RolledBack`), one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Summary of the rollout state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Revision label (`r<N>`) serving stable traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// Name of the revision ConfigMap serving stable traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_config_map: Option<String>,
    /// Highest revision number ever assigned; revision ConfigMap names are never reused.
    #[serde(default)]
    pub last_revision: u64,
    /// Data-plane pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Percentage of traffic sent to the canary revision (0 when no canary runs).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub canary_weight: u32,
    /// Human-readable detail of the current phase (e.g. the validation errors of the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The rollout in progress (absent when one revision serves all traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Content the operator will not roll out again until the spec changes (a new
    /// `metadata.generation`) or a retry is asked for (annotation `videoresizer.io/retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back: Option<HeldBack>,
    /// Revisions and what happened to them, newest first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub history: Vec<RevisionRecord>,
}

/// A revision held back after a rollback or an abort.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldBack {
    /// Content hash that is held back.
    pub hash: String,
    /// Revision label (`r<N>`) of that content.
    pub revision: String,
    /// The spec generation it was held back at; any other generation lifts it.
    pub generation: i64,
}

/// Summary of a config's rollout state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Not rendered yet.
    Pending,
    /// A new revision is rolling out.
    Progressing,
    /// The active revision serves all traffic and the workload is available.
    Ready,
    /// Serving, but something needs attention (e.g. the last revision was rolled back or the
    /// workload is short of replicas).
    Degraded,
    /// The spec cannot be rendered (see `message` and the `Ready` condition).
    Invalid,
}
