//! The data-plane workload a config owns, built as plain values (no I/O): ServiceAccount,
//! Role + RoleBinding, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget.
//!
//! Every object carries the standard `app.kubernetes.io/*` labels, the config label and an
//! owner reference to the config, and sets only fields the operator owns (server-side apply
//! claims exactly what is serialized). The Deployment leaves `replicas` to the HPA.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use vr_crds::contract;

/// Public (traffic) port of the data plane.
pub const HTTP_PORT: i32 = 8080;
/// Admin port (probes, metrics, admin API).
pub const ADMIN_PORT: i32 = 9090;
/// Non-root user the data plane runs as.
pub const RUN_AS_USER: i64 = 65532;
/// Where the data plane spools sources and outputs.
pub const WORK_DIR: &str = "/var/cache/video-resizer/work";
/// Where the disk cache lives when enabled.
pub const DISK_CACHE_DIR: &str = "/var/cache/video-resizer/variants";

/// Everything the workload builders need, already resolved from the config's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadParams {
    pub config: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub target_cpu_percent: i32,
    /// Average transform queue depth per pod to scale on (a pods metric), if set.
    pub queue_depth_target: Option<u32>,
    pub scale_down_stabilization_seconds: i32,
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    pub pdb_min_available: i32,
    /// Process-level sizing flags passed to `vr-dataplane` (cache sizes, transform slots).
    pub sizing_args: Vec<String>,
    /// Disk cache size limit when the config enables the disk layer.
    pub disk_cache_bytes: Option<u64>,
    /// `(secret, key)` pairs the rendered config reads; each secret is mounted read-only.
    pub secrets: BTreeSet<(String, String)>,
}

/// The name shared by the workload objects of `config`.
pub fn workload_name(config: &str) -> String {
    contract::workload_name(config)
}

/// Labels on every child.
pub fn labels(config: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(config);
    l.insert(
        contract::LABEL_APP_MANAGED_BY.into(),
        contract::FIELD_MANAGER.into(),
    );
    l.insert(
        contract::LABEL_APP_PART_OF.into(),
        contract::APP_NAME.into(),
    );
    l.insert(contract::LABEL_CONFIG.into(), config.into());
    l
}

/// Labels that select the data-plane pods (stable for the life of the Deployment).
pub fn selector_labels(config: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            contract::LABEL_APP_NAME.to_string(),
            contract::APP_NAME.to_string(),
        ),
        (contract::LABEL_APP_INSTANCE.to_string(), config.to_string()),
        (
            contract::LABEL_APP_COMPONENT.to_string(),
            contract::COMPONENT_DATAPLANE.to_string(),
        ),
    ])
}

fn meta(p: &WorkloadParams, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(p.namespace.clone()),
        labels: Some(labels(&p.config)),
        owner_references: Some(vec![p.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The data plane's own identity.
pub fn service_account(p: &WorkloadParams) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(p, workload_name(&p.config)),
        // The data plane talks to the API with a projected token only (mounted by default).
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// Least privilege: read ConfigMaps in this namespace, nothing else.
pub fn role(p: &WorkloadParams) -> Role {
    Role {
        metadata: meta(p, workload_name(&p.config)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(p: &WorkloadParams) -> RoleBinding {
    let name = workload_name(&p.config);
    RoleBinding {
        metadata: meta(p, name.clone()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(p.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// Volume name for a mounted Secret (DNS label: `secret-` + the secret's name, shortened if needed).
fn secret_volume_name(secret: &str) -> String {
    let n = format!("secret-{secret}");
    if n.len() <= 63 {
        n
    } else {
        n[..63].trim_end_matches('-').to_owned()
    }
}

/// The data-plane Deployment: restricted pod security, probes on the admin port, Secrets
/// mounted where the rendered config expects them, no `replicas` (the HPA owns it).
pub fn deployment(p: &WorkloadParams) -> Deployment {
    let name = workload_name(&p.config);
    let mut args = vec![
        "--kube-config-name".to_string(),
        p.config.clone(),
        "--listen".into(),
        format!("0.0.0.0:{HTTP_PORT}"),
        "--admin-listen".into(),
        format!("0.0.0.0:{ADMIN_PORT}"),
        "--work-dir".into(),
        WORK_DIR.into(),
    ];
    args.extend(p.sizing_args.iter().cloned());
    let secrets: BTreeSet<&str> = p.secrets.iter().map(|(s, _)| s.as_str()).collect();
    let mut volumes = vec![Volume {
        name: "work".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "work".into(),
        mount_path: WORK_DIR.into(),
        ..VolumeMount::default()
    }];
    if let Some(bytes) = p.disk_cache_bytes {
        volumes.push(Volume {
            name: "variants".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                // Headroom over the cache's own bound for files being written.
                size_limit: Some(Quantity(format!("{}", bytes + bytes / 10))),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "variants".into(),
            mount_path: DISK_CACHE_DIR.into(),
            ..VolumeMount::default()
        });
    }
    for s in secrets {
        let vn = secret_volume_name(s);
        volumes.push(Volume {
            name: vn.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.to_owned()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: vn,
            mount_path: format!("{}/{s}", contract::SECRETS_DIR),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    let container = Container {
        name: "dataplane".into(),
        image: Some(p.image.clone()),
        image_pull_policy: p.image_pull_policy.clone(),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "POD_NAMESPACE".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("admin".into()),
                container_port: ADMIN_PORT,
                ..ContainerPort::default()
            },
        ]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 2, 2)),
        resources: Some(ResourceRequirements {
            requests: quantities(&p.requests),
            limits: quantities(&p.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Deployment {
        metadata: meta(p, name.clone()),
        spec: Some(DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels(&p.config)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&p.config)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    // In-flight transforms get time to finish; the server drains for up to 30 s.
                    termination_grace_period_seconds: Some(45),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service in front of the pods: traffic and admin (metrics) ports. Its EndpointSlices are
/// where the operator finds pods to scrape.
pub fn service(p: &WorkloadParams) -> Service {
    Service {
        metadata: meta(p, workload_name(&p.config)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(&p.config)),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("admin".into()),
                    port: ADMIN_PORT,
                    target_port: Some(IntOrString::String("admin".into())),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// autoscaling/v2 HPA: CPU by default, optionally the transform queue depth per pod, with a
/// scale-down stabilisation window.
pub fn hpa(p: &WorkloadParams) -> HorizontalPodAutoscaler {
    let mut metrics = vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(p.target_cpu_percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(q) = p.queue_depth_target {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: contract::metrics::TRANSFORM_QUEUE_DEPTH_SERIES.into(),
                    ..MetricIdentifier::default()
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(q.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    HorizontalPodAutoscaler {
        metadata: meta(p, workload_name(&p.config)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: workload_name(&p.config),
            },
            min_replicas: Some(p.min_replicas),
            max_replicas: p.max_replicas,
            metrics: Some(metrics),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(p.scale_down_stabilization_seconds),
                    ..HPAScalingRules::default()
                }),
                ..HorizontalPodAutoscalerBehavior::default()
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

/// Keeps `minAvailable` pods through voluntary disruptions (node drains, cluster autoscaler).
pub fn pdb(p: &WorkloadParams) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(p, workload_name(&p.config)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(p.pdb_min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&p.config)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> WorkloadParams {
        WorkloadParams {
            config: "web".into(),
            namespace: "media".into(),
            owner: OwnerReference {
                api_version: "videoresizer.io/v1alpha1".into(),
                kind: "VideoResizerConfig".into(),
                name: "web".into(),
                uid: "u-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            image: "video-resizer/dataplane:0.1.0".into(),
            image_pull_policy: None,
            min_replicas: 2,
            max_replicas: 10,
            target_cpu_percent: 70,
            queue_depth_target: Some(4),
            scale_down_stabilization_seconds: 300,
            requests: BTreeMap::from([
                ("cpu".into(), "500m".into()),
                ("memory".into(), "512Mi".into()),
            ]),
            limits: BTreeMap::from([("memory".into(), "2Gi".into())]),
            pdb_min_available: 1,
            sizing_args: vec!["--transform-slots".into(), "2".into()],
            disk_cache_bytes: Some(1 << 30),
            secrets: BTreeSet::from([
                ("origin-token".into(), "token".into()),
                ("admin".into(), "ops".into()),
            ]),
        }
    }

    #[test]
    fn deployment_leaves_replicas_to_the_hpa_and_runs_restricted() {
        let d = deployment(&params());
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, None);
        let pod = spec.template.spec.expect("pod");
        let psc = pod.security_context.expect("pod security");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.map(|s| s.type_),
            Some("RuntimeDefault".into())
        );
        let c = &pod.containers[0];
        let sc = c.security_context.clone().expect("container security");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert!(c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key("cpu")));
    }

    #[test]
    fn every_referenced_secret_is_mounted_read_only_where_the_config_expects_it() {
        let d = deployment(&params());
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
        for secret in ["origin-token", "admin"] {
            let m = mounts
                .iter()
                .find(|m| m.mount_path == format!("{}/{secret}", contract::SECRETS_DIR))
                .expect("mounted");
            assert_eq!(m.read_only, Some(true));
        }
        // The file path the config uses lies under the mount.
        assert!(contract::secret_file_path("origin-token", "token")
            .starts_with(&format!("{}/origin-token/", contract::SECRETS_DIR)));
    }

    #[test]
    fn the_data_plane_role_only_reads_configmaps() {
        let r = role(&params());
        let rules = r.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources, Some(vec!["configmaps".to_string()]));
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
    }

    #[test]
    fn hpa_scales_on_cpu_and_optionally_queue_depth_with_stabilisation() {
        let h = hpa(&params()).spec.expect("spec");
        assert_eq!(h.min_replicas, Some(2));
        assert_eq!(h.max_replicas, 10);
        let m = h.metrics.expect("metrics");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1].pods.as_ref().map(|p| p.metric.name.as_str()),
            Some("vr_transform_queue_depth")
        );
        assert_eq!(
            h.behavior
                .and_then(|b| b.scale_down)
                .and_then(|s| s.stabilization_window_seconds),
            Some(300)
        );
    }

    #[test]
    fn every_child_is_owned_and_labelled() {
        let p = params();
        let metas = [
            service_account(&p).metadata,
            role(&p).metadata,
            role_binding(&p).metadata,
            deployment(&p).metadata,
            service(&p).metadata,
            hpa(&p).metadata,
            pdb(&p).metadata,
        ];
        for m in metas {
            assert_eq!(
                m.owner_references.as_ref().map(|o| o[0].uid.as_str()),
                Some("u-1")
            );
            let l = m.labels.expect("labels");
            assert_eq!(
                l.get(contract::LABEL_CONFIG).map(String::as_str),
                Some("web")
            );
            assert_eq!(
                l.get("app.kubernetes.io/managed-by").map(String::as_str),
                Some(contract::FIELD_MANAGER)
            );
        }
    }
}
