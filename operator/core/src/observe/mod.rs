//! From the objects that exist (whatever the caller read them from: the controller's
//! watch-fed stores) to what one config's reconcile needs to know: its revisions and pointer,
//! ready data-plane endpoints and their metrics addresses, container restarts, derivatives.
//!
//! The caller passes the objects of the config's namespace; everything here selects by the
//! labels and names the operator gives its children, so a store of the whole cluster works.

use crate::model::{Observed, ObservedRevision};
use crate::plan::workload;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use vr_crds::contract::{self, Pointer};
use vr_crds::resources::Derivative;

/// The EndpointSlice label naming the Service a slice belongs to.
pub use vr_crds::contract::LABEL_SERVICE_NAME;

/// The named port of the data plane's admin listener (its metrics).
pub const ADMIN_PORT_NAME: &str = "admin";

/// What exists for the config `name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub observed: Observed,
    /// `host:port` of the admin (metrics) port of every ready data-plane endpoint.
    pub metrics_addresses: Vec<String>,
}

fn has_label(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
    v: &str,
) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(k))
        .is_some_and(|x| x == v)
}

/// Reads the revisions, the pointer, the ready endpoints and the restarts of config `name`
/// from the ConfigMaps, EndpointSlices and Pods of its namespace.
pub fn seen<'a>(
    name: &str,
    configmaps: impl IntoIterator<Item = &'a ConfigMap>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Seen {
    let mut observed = Observed::default();
    let pointer_name = contract::pointer_configmap_name(name);
    for cm in configmaps
        .into_iter()
        .filter(|c| has_label(&c.metadata, contract::LABEL_CONFIG, name))
    {
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        let cm_name = cm.metadata.name.clone().unwrap_or_default();
        match labels.get(contract::LABEL_ROLE).map(String::as_str) {
            Some(contract::ROLE_REVISION) => {
                let revision = labels
                    .get(contract::LABEL_REVISION)
                    .and_then(|r| r.parse::<u64>().ok());
                let hash = cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(contract::ANNOTATION_HASH))
                    .cloned();
                if let (Some(revision), Some(hash)) = (revision, hash) {
                    observed.revisions.push(ObservedRevision {
                        name: cm_name,
                        revision,
                        hash,
                    });
                }
            }
            Some(contract::ROLE_POINTER) if cm_name == pointer_name => {
                observed.pointer = cm.data.as_ref().and_then(Pointer::from_data);
            }
            _ => {}
        }
    }
    // A store's order is not the API's: sort, so the plan never depends on it.
    observed.revisions.sort_by_key(|r| r.revision);
    let service = workload::workload_name(name);
    let slices: Vec<&EndpointSlice> = slices
        .into_iter()
        .filter(|s| has_label(&s.metadata, LABEL_SERVICE_NAME, &service))
        .collect();
    let is_ready = |e: &&Endpoint| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
    observed.ready_replicas = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(is_ready)
        .count() as i32;
    let mut metrics_addresses = Vec::new();
    for slice in &slices {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(ADMIN_PORT_NAME))
            .and_then(|p| p.port)
        else {
            continue;
        };
        for e in slice.endpoints.iter().filter(is_ready) {
            for a in &e.addresses {
                metrics_addresses.push(if slice.address_type == "IPv6" {
                    format!("[{a}]:{port}")
                } else {
                    format!("{a}:{port}")
                });
            }
        }
    }
    let selector = workload::selector_labels(name);
    observed.restarts = pods
        .into_iter()
        .filter(|p| selector.iter().all(|(k, v)| has_label(&p.metadata, k, v)))
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    Seen {
        observed,
        metrics_addresses,
    }
}

/// The derivatives of config `name` (among those of its namespace).
pub fn derivatives_of<'a>(
    name: &str,
    derivatives: impl IntoIterator<Item = &'a Derivative>,
) -> Vec<Derivative> {
    let mut mine: Vec<Derivative> = derivatives
        .into_iter()
        .filter(|d| d.spec.config == name)
        .cloned()
        .collect();
    // The API lists by name; a store has no order. Rendering sorts anyway, but the messages
    // about invalid derivatives name them in this order.
    mine.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    mine
}

/// The config an EndpointSlice reports on: its Service is `<config>-dataplane`.
pub fn config_of_slice(slice: &EndpointSlice) -> Option<String> {
    let service = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    workload::config_of_workload(service).map(str::to_owned)
}

#[cfg(test)]
mod tests;
