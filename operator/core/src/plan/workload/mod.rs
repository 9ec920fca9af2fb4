//! The data-plane workload a config owns, built as plain values (no I/O): ServiceAccount,
//! Role + RoleBinding, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget.
//!
//! Every object carries the standard `app.kubernetes.io/*` labels, the config label and an
//! owner reference to the config, and sets only fields the operator owns (server-side apply
//! claims exactly what is serialized). The Deployment leaves `replicas` to the HPA.

use super::meta::owner_reference;
use crate::model::Settings;
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
use vr_crds::render::Rendered;
use vr_crds::resources::VideoResizerConfig;

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

/// The name shared by the workload objects of a config, and its inverse (one spelling, in
/// the shared contract).
pub use contract::{config_of_workload, workload_name};

/// Process-level flags for the data plane (cache sizes, transform slots), from the spec, and
/// the disk cache size when the disk layer is on.
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
            DISK_CACHE_DIR.into(),
            "--disk-cache-bytes".into(),
            bytes.to_string(),
        ]);
    }
    (a, disk)
}

/// The workload parameters of `cfg` (rendered as `rendered`; `settings` supply the image when
/// the spec names none).
pub fn workload_params(
    cfg: &VideoResizerConfig,
    rendered: &Rendered,
    settings: &Settings,
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
        namespace: cfg.metadata.namespace.clone().unwrap_or_default(),
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

/// A label selector (`k=v,k=v`) matching the data-plane pods of every config (the instance
/// label tells them apart).
pub fn dataplane_pod_selector() -> String {
    selector_labels("")
        .into_iter()
        .filter(|(k, _)| k != contract::LABEL_APP_INSTANCE)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// The pod's volumes and the container's mounts: a work dir, the disk cache when enabled, and
/// every Secret the rendered config reads (read-only, where the config expects it).
fn volumes(p: &WorkloadParams) -> (Vec<Volume>, Vec<VolumeMount>) {
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
    (volumes, mounts)
}

/// The data-plane container: its flags, ports, probes on the admin port, resources and a
/// restricted security context.
fn container(p: &WorkloadParams, mounts: Vec<VolumeMount>) -> Container {
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
    Container {
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
    }
}

/// The data-plane Deployment: restricted pod security, probes on the admin port, Secrets
/// mounted where the rendered config expects them, no `replicas` (the HPA owns it).
pub fn deployment(p: &WorkloadParams) -> Deployment {
    let name = workload_name(&p.config);
    let (volumes, mounts) = volumes(p);
    let container = container(p, mounts);
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
mod tests;
