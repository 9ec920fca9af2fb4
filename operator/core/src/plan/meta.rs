//! The metadata every child of a config shares: an owner reference to the config (so the
//! garbage collector removes the children with it) and the labels of its ConfigMaps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use vr_crds::contract;
use vr_crds::resources::VideoResizerConfig;

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

/// Labels of the config's ConfigMaps (revisions and pointer).
pub fn config_labels(name: &str) -> BTreeMap<String, String> {
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
