use super::*;
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("media".into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ObjectMeta::default()
    }
}

fn revision(config: &str, n: u64) -> ConfigMap {
    let mut m = meta(
        &format!("{config}-r{n}-h{n}"),
        &[
            (contract::LABEL_CONFIG, config),
            (contract::LABEL_ROLE, contract::ROLE_REVISION),
            (contract::LABEL_REVISION, &n.to_string()),
        ],
    );
    m.annotations = Some(BTreeMap::from([(
        contract::ANNOTATION_HASH.to_string(),
        format!("h{n}"),
    )]));
    ConfigMap {
        metadata: m,
        ..ConfigMap::default()
    }
}

fn pointer(config: &str, stable: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(
            &contract::pointer_configmap_name(config),
            &[
                (contract::LABEL_CONFIG, config),
                (contract::LABEL_ROLE, contract::ROLE_POINTER),
            ],
        ),
        data: Some(
            Pointer {
                stable: stable.into(),
                canary: None,
                canary_weight_bp: 0,
            }
            .to_data(),
        ),
        ..ConfigMap::default()
    }
}

fn slice(service: &str, ready: &[(&str, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: meta(&format!("{service}-abc"), &[(LABEL_SERVICE_NAME, service)]),
        address_type: "IPv4".into(),
        endpoints: ready
            .iter()
            .map(|(ip, r)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(*r),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some(ADMIN_PORT_NAME.into()),
            port: Some(9090),
            ..EndpointPort::default()
        }]),
    }
}

fn pod(config: &str, restarts: i32) -> Pod {
    let labels = workload::selector_labels(config);
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Pod {
        metadata: meta("p", &labels),
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                restart_count: restarts,
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

#[test]
fn only_the_configs_own_objects_are_seen() {
    let cms = [
        revision("web", 2),
        revision("web", 1),
        revision("other", 7),
        pointer("web", "web-r2-h2"),
        pointer("other", "other-r7-h7"),
    ];
    let slices = [
        slice("web-dataplane", &[("10.0.0.1", true), ("10.0.0.2", false)]),
        slice("other-dataplane", &[("10.0.0.9", true)]),
    ];
    let pods = [pod("web", 1), pod("web", 2), pod("other", 40)];
    let s = seen("web", &cms, &slices, &pods);
    let names: Vec<&str> = s
        .observed
        .revisions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["web-r1-h1", "web-r2-h2"], "sorted by number");
    assert_eq!(
        s.observed.pointer.as_ref().map(|p| p.stable.as_str()),
        Some("web-r2-h2")
    );
    assert_eq!(s.observed.ready_replicas, 1);
    assert_eq!(s.metrics_addresses, ["10.0.0.1:9090"]);
    assert_eq!(s.observed.restarts, 3);
}

#[test]
fn derivatives_are_those_naming_the_config_in_name_order() {
    let d = |name: &str, config: &str| {
        let mut d: Derivative = serde_yaml::from_str(&format!(
            "apiVersion: videoresizer.io/v1alpha1\nkind: Derivative\nmetadata:\n  name: {name}\nspec:\n  config: {config}\n  width: 320\n"
        ))
        .expect("derivative");
        d.metadata.namespace = Some("media".into());
        d
    };
    let all = [d("thumb", "web"), d("mobile", "web"), d("x", "other")];
    let mine: Vec<String> = derivatives_of("web", &all)
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(mine, ["mobile", "thumb"]);
}

#[test]
fn a_slice_names_the_config_of_its_service() {
    assert_eq!(
        config_of_slice(&slice("web-dataplane", &[])).as_deref(),
        Some("web")
    );
    assert_eq!(config_of_slice(&slice("kubernetes", &[])), None);
}
