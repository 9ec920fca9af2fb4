//! Revisions: which revision the spec's content is (the existing one with the same content
//! hash, or the next number — names are never reused, even after pruning), which revision the
//! pointer serves, which revisions to prune, and the revision and pointer ConfigMaps.

use super::meta::{config_labels, owner_reference};
use crate::model::{EventSpec, Observed, ObservedRevision, Rev};
use crate::reason::Reason;
use crate::rollout;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};
use vr_crds::contract::{self, Pointer};
use vr_crds::render::{self, Rendered};
use vr_crds::resources::{VideoResizerConfig, VideoResizerConfigStatus};

/// The highest revision number ever used: recorded in status, or seen in the cluster.
pub fn last_revision(prev: &VideoResizerConfigStatus, observed: &Observed) -> u64 {
    let max_seen = observed
        .revisions
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0);
    prev.last_revision.max(max_seen)
}

/// The revision the spec renders to.
pub struct Target {
    pub rev: Rev,
    /// The ConfigMap to create when the content is new.
    pub new_revision: Option<ConfigMap>,
}

/// The existing revision with `rendered`'s content, or revision `last_revision + 1` (with a
/// `RevisionCreated` event).
pub fn target(
    cfg: &VideoResizerConfig,
    observed: &Observed,
    rendered: &Rendered,
    last_revision: u64,
    events: &mut Vec<EventSpec>,
) -> Target {
    if let Some(r) = observed.revisions.iter().find(|r| r.hash == rendered.hash) {
        return Target {
            rev: Rev::from(r),
            new_revision: None,
        };
    }
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let n = last_revision + 1;
    let cm_name = contract::revision_configmap_name(&name, n, &rendered.hash);
    events.push(EventSpec::new(
        Reason::RevisionCreated,
        format!("revision r{n} ({cm_name})"),
    ));
    Target {
        rev: Rev {
            number: n,
            configmap: cm_name.clone(),
            hash: rendered.hash.clone(),
        },
        new_revision: Some(revision_configmap(cfg, rendered, n, &cm_name)),
    }
}

/// The pointer's stable revision. A pointer naming a ConfigMap not listed (deleted by hand)
/// still counts as stable (number from its name, unknown content), so nothing skips the
/// canary.
pub fn stable(observed: &Observed) -> Option<Rev> {
    observed.pointer.as_ref().map(|p| {
        Rev::find(&observed.revisions, &p.stable).unwrap_or_else(|| Rev {
            number: p
                .stable
                .rsplit_once("-r")
                .and_then(|(_, rest)| rest.split('-').next()?.parse().ok())
                .unwrap_or(0),
            configmap: p.stable.clone(),
            hash: String::new(),
        })
    })
}

/// Revision ConfigMaps to delete: beyond the newest `revisionHistoryLimit` (counting a new
/// one), except those in use (stable, canary, the target, a rollout's previous revision).
pub fn prune(
    cfg: &VideoResizerConfig,
    observed: &Observed,
    pointer: &Pointer,
    target: &Target,
    ro: &rollout::Output,
) -> Vec<String> {
    let limit = cfg.spec.revision_history_limit.max(1) as usize;
    let mut all: Vec<&ObservedRevision> = observed.revisions.iter().collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let mut in_use: Vec<&str> = vec![pointer.stable.as_str(), target.rev.configmap.as_str()];
    if let Some(c) = &pointer.canary {
        in_use.push(c.as_str());
    }
    if let Some(r) = &ro.rollout {
        in_use.push(r.previous_config_map.as_str());
    }
    let keep: BTreeSet<&str> = all
        .iter()
        .take(limit.saturating_sub(usize::from(target.new_revision.is_some())))
        .map(|r| r.name.as_str())
        .chain(in_use.iter().copied())
        .collect();
    all.iter()
        .filter(|r| !keep.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect()
}

/// The immutable ConfigMap of revision `n`.
fn revision_configmap(
    cfg: &VideoResizerConfig,
    rendered: &Rendered,
    n: u64,
    cm_name: &str,
) -> ConfigMap {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let mut labels = config_labels(&name);
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
pub fn pointer_configmap(cfg: &VideoResizerConfig, pointer: &Pointer) -> ConfigMap {
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let mut labels = config_labels(&name);
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
