//! The observed world of one config and the small types every decision shares: what exists
//! ([`Observed`]), a revision as the rollout sees it ([`Rev`]), operator settings and the
//! events a plan asks to publish.

use crate::reason::Reason;
use vr_crds::contract::Pointer;
use vr_crds::rollout::AnalysisResult;

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
    /// Warning (not Normal): follows from the reason ([`Reason::is_warning`]).
    pub warning: bool,
    pub reason: Reason,
    pub note: String,
}

impl EventSpec {
    /// An event with `reason` and `note`.
    pub fn new(reason: Reason, note: String) -> Self {
        EventSpec {
            warning: reason.is_warning(),
            reason,
            note,
        }
    }
}

/// A revision as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rev {
    pub number: u64,
    pub configmap: String,
    pub hash: String,
}

impl Rev {
    /// `r<N>`.
    pub fn label(&self) -> String {
        format!("r{}", self.number)
    }

    /// The revision of `observed` named `configmap`.
    pub fn find(observed: &[ObservedRevision], configmap: &str) -> Option<Rev> {
        observed.iter().find(|r| r.name == configmap).map(Rev::from)
    }
}

impl From<&ObservedRevision> for Rev {
    fn from(r: &ObservedRevision) -> Self {
        Rev {
            number: r.revision,
            configmap: r.name.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// `N` of a label `r<N>` (0 when it is not one).
pub fn number_of(label: &str) -> u64 {
    label.trim().trim_start_matches('r').parse().unwrap_or(0)
}
