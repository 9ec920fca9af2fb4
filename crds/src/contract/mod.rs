//! The contract between the operator, the data plane and the CLI: every name one side writes
//! and another reads, spelled once, so a rename is one edit and the sides cannot drift apart.
//!
//! * this module — Kubernetes: labels, annotations, object names, the revision pointer, and
//!   the data-plane workload's name and labels;
//! * [`headers`] — HTTP response headers the data plane sets and the CLI reads;
//! * [`metrics`] — metric names and label keys the data plane exposes and the operator's
//!   analysis and HPA read.
//!
//! * Each distinct rendered config is a **revision ConfigMap** named
//!   `<config>-r<N>-<hash>` (immutable, never reused), labelled [`LABEL_CONFIG`],
//!   [`LABEL_REVISION`] and [`LABEL_ROLE`]`=revision`, holding the document under [`CONFIG_KEY`].
//! * One small mutable **pointer ConfigMap** `<config>-active` ([`LABEL_ROLE`]`=pointer`) names
//!   the stable revision ConfigMap and, during a canary, the canary one and its weight. The data
//!   plane watches both kinds by the [`LABEL_CONFIG`] label and loads what the pointer names.

pub mod headers;
pub mod metrics;

use std::collections::BTreeMap;

/// API group of the custom resources.
pub const GROUP: &str = "videoresizer.io";
/// Label on every object that belongs to a config: the config's name.
pub const LABEL_CONFIG: &str = "videoresizer.io/config";
/// Label on revision ConfigMaps: the revision number.
pub const LABEL_REVISION: &str = "videoresizer.io/revision";
/// Label telling revision ConfigMaps (`revision`) from the pointer (`pointer`).
pub const LABEL_ROLE: &str = "videoresizer.io/role";
/// Role value of revision ConfigMaps.
pub const ROLE_REVISION: &str = "revision";
/// Role value of the pointer ConfigMap.
pub const ROLE_POINTER: &str = "pointer";
/// Annotation on revision ConfigMaps: the content hash (hex) of the rendered document.
pub const ANNOTATION_HASH: &str = "videoresizer.io/content-hash";
/// Key of the rendered document in a revision ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Server-side-apply field manager of the operator.
pub const FIELD_MANAGER: &str = "video-resizer-operator";
/// Where the data plane finds mounted Secrets: `<SECRETS_DIR>/<secret>/<key>`.
pub const SECRETS_DIR: &str = "/etc/video-resizer/secrets";

/// Annotation on a VideoResizerConfig asking the operator to promote the running canary now,
/// skipping the remaining steps and analysis. Consumed (removed) once acted on; any value.
pub const ANNOTATION_PROMOTE: &str = "videoresizer.io/promote";
/// Annotation asking the operator to abort the running canary: weight 0 at once, the revision
/// is marked `Aborted` and not tried again until the spec changes or a retry is asked for.
/// Consumed once acted on; any value.
pub const ANNOTATION_ABORT: &str = "videoresizer.io/abort";
/// Annotation holding the rollout at its current step while present with value `"true"`
/// (analysis keeps running, so a failing canary is still rolled back). Removing it resumes.
/// Not consumed: it is state, not a request.
pub const ANNOTATION_PAUSED: &str = "videoresizer.io/paused";
/// Annotation asking the operator to try again the revision of the current spec after it was
/// rolled back or aborted. Consumed once acted on; any value.
pub const ANNOTATION_RETRY: &str = "videoresizer.io/retry";
/// Annotation asking the operator to make revision `N` (decimal, as in `r<N>`) stable at once,
/// without analysis. The revision of the current spec is then held back (outcome `RolledBack`)
/// until the spec changes or a retry is asked for. Consumed once acted on.
pub const ANNOTATION_ROLLBACK_TO: &str = "videoresizer.io/rollback-to";
/// Response header naming the revision (`r<N>`) that served a request.
pub const HEADER_CONFIG_REVISION: &str = headers::CONFIG_REVISION;

/// Standard label: the application (`video-resizer`).
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// Standard label: the instance (the config's name).
pub const LABEL_APP_INSTANCE: &str = "app.kubernetes.io/instance";
/// Standard label: the component (`dataplane` for the workload, `config` for revisions).
pub const LABEL_APP_COMPONENT: &str = "app.kubernetes.io/component";
/// Standard label: who manages the object ([`FIELD_MANAGER`]).
pub const LABEL_APP_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Standard label: the larger application the object is part of.
pub const LABEL_APP_PART_OF: &str = "app.kubernetes.io/part-of";
/// Value of [`LABEL_APP_NAME`] and [`LABEL_APP_PART_OF`].
pub const APP_NAME: &str = "video-resizer";
/// Value of [`LABEL_APP_COMPONENT`] on the data-plane workload (and its container's name).
pub const COMPONENT_DATAPLANE: &str = "dataplane";
/// Value of [`LABEL_APP_COMPONENT`] on revision and pointer ConfigMaps.
pub const COMPONENT_CONFIG: &str = "config";
/// Label Kubernetes puts on EndpointSlices: the Service they belong to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Suffix of the data-plane workload's objects (Deployment, Service, HPA, PDB, Role…).
pub const WORKLOAD_SUFFIX: &str = "-dataplane";

/// The name shared by the data-plane workload objects of `config`.
pub fn workload_name(config: &str) -> String {
    format!("{config}{WORKLOAD_SUFFIX}")
}

/// The config whose workload is named `name` (the inverse of [`workload_name`]).
pub fn config_of_workload(name: &str) -> Option<&str> {
    name.strip_suffix(WORKLOAD_SUFFIX)
}

/// Name of revision `revision` of `config` with content hash `hash` (first 10 hex digits used).
pub fn revision_configmap_name(config: &str, revision: u64, hash: &str) -> String {
    let short = &hash[..hash.len().min(10)];
    format!("{config}-r{revision}-{short}")
}

/// Name of the pointer ConfigMap of `config`.
pub fn pointer_configmap_name(config: &str) -> String {
    format!("{config}-active")
}

/// Path of a mounted Secret key inside data-plane pods.
pub fn secret_file_path(secret: &str, key: &str) -> String {
    format!("{SECRETS_DIR}/{secret}/{key}")
}

/// What the pointer ConfigMap says: which revision ConfigMaps serve, and how traffic is split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pointer {
    /// Revision ConfigMap that serves all traffic not sent to the canary.
    pub stable: String,
    /// Revision ConfigMap under canary, if any.
    pub canary: Option<String>,
    /// Share of traffic for the canary, in basis points (0–10000).
    pub canary_weight_bp: u32,
}

impl Pointer {
    /// The ConfigMap `data` of this pointer.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        d.insert("stable".into(), self.stable.clone());
        if let Some(c) = &self.canary {
            d.insert("canary".into(), c.clone());
        }
        d.insert(
            "canaryWeightBasisPoints".into(),
            self.canary_weight_bp.to_string(),
        );
        d
    }

    /// Reads a pointer from ConfigMap `data`; `None` if `stable` is missing or a value is bad.
    pub fn from_data(data: &BTreeMap<String, String>) -> Option<Pointer> {
        let stable = data.get("stable")?.trim().to_owned();
        if stable.is_empty() {
            return None;
        }
        let canary = data
            .get("canary")
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        let canary_weight_bp = match data.get("canaryWeightBasisPoints") {
            Some(w) => w.trim().parse::<u32>().ok().filter(|w| *w <= 10_000)?,
            None => 0,
        };
        Some(Pointer {
            stable,
            canary,
            canary_weight_bp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trips_through_configmap_data() {
        let p = Pointer {
            stable: "web-r3-0123456789".into(),
            canary: Some("web-r4-abcdefabcd".into()),
            canary_weight_bp: 500,
        };
        assert_eq!(Pointer::from_data(&p.to_data()), Some(p));
    }

    #[test]
    fn a_pointer_without_stable_or_with_a_bad_weight_is_refused() {
        let mut d = BTreeMap::new();
        assert_eq!(Pointer::from_data(&d), None);
        d.insert("stable".into(), "x-r1-a".into());
        d.insert("canaryWeightBasisPoints".into(), "10001".into());
        assert_eq!(Pointer::from_data(&d), None);
    }

    #[test]
    fn revision_names_carry_revision_and_short_hash() {
        assert_eq!(
            revision_configmap_name("web", 7, "0123456789abcdef"),
            "web-r7-0123456789"
        );
        assert_eq!(pointer_configmap_name("web"), "web-active");
    }

    #[test]
    fn workload_names_round_trip() {
        assert_eq!(workload_name("web"), "web-dataplane");
        assert_eq!(config_of_workload("web-dataplane"), Some("web"));
        assert_eq!(config_of_workload("web"), None);
    }
}
