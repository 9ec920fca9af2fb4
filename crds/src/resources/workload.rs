//! The data-plane workload a VideoResizerConfig asks for: replicas and autoscaling, image,
//! resources, disruption budget.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The data-plane workload: Deployment, HorizontalPodAutoscaler and PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must not exceed maxReplicas"
    },
    {
        "rule": "self.podDisruptionBudget.minAvailable <= self.minReplicas",
        "message": "podDisruptionBudget.minAvailable must not exceed minReplicas"
    }
]))]
pub struct WorkloadSpec {
    /// Data-plane container image (default: the image the operator was released with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Image pull policy of the data-plane container (default: Kubernetes' default for the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Fewest data-plane replicas the autoscaler keeps.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most data-plane replicas the autoscaler may run.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of requests) the autoscaler aims for.
    #[serde(
        default = "default_target_cpu",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Also scale on the pods metric `vr_transform_queue_depth`, aiming for this average per
    /// pod. Needs a custom-metrics adapter; off when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub queue_depth_target: Option<i32>,
    /// How long the autoscaler waits before scaling down, in seconds (avoids flapping).
    #[serde(default = "default_scale_down_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// CPU and memory of each data-plane container. Requests matter: the autoscalers use them.
    #[serde(default)]
    pub resources: WorkloadResources,
    /// Disruption budget of the data-plane pods.
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            image: None,
            image_pull_policy: None,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: default_target_cpu(),
            queue_depth_target: None,
            scale_down_stabilization_seconds: default_scale_down_stabilization(),
            resources: WorkloadResources::default(),
            pod_disruption_budget: PodDisruptionBudgetSpec::default(),
        }
    }
}

fn default_min_replicas() -> i32 {
    2
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target_cpu() -> i32 {
    70
}
fn default_scale_down_stabilization() -> i32 {
    300
}

/// Image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the image is missing on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Resource requests and limits of the data-plane container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResources {
    /// What the scheduler reserves per pod.
    #[serde(default)]
    pub requests: ResourceRequests,
    /// Hard caps per pod. No CPU limit by default (throttling hurts latency); memory is capped.
    #[serde(default)]
    pub limits: ResourceLimits,
}

/// Requested CPU and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequests {
    /// CPU request, e.g. `500m` or `2`.
    #[serde(default = "default_cpu_request")]
    pub cpu: Quantity,
    /// Memory request, e.g. `512Mi`.
    #[serde(default = "default_memory_request")]
    pub memory: Quantity,
}

impl Default for ResourceRequests {
    fn default() -> Self {
        ResourceRequests {
            cpu: default_cpu_request(),
            memory: default_memory_request(),
        }
    }
}

fn default_cpu_request() -> Quantity {
    Quantity("500m".into())
}
fn default_memory_request() -> Quantity {
    Quantity("512Mi".into())
}

/// CPU and memory caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// CPU limit (none when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory limit; ffmpeg buffers frames, so leave headroom above the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            cpu: None,
            memory: Some(Quantity("2Gi".into())),
        }
    }
}

/// Disruption budget of the data-plane pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// Pods that must stay available during voluntary disruptions (node drains).
    #[serde(default = "default_min_available")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_available: i32,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        PodDisruptionBudgetSpec {
            min_available: default_min_available(),
        }
    }
}

fn default_min_available() -> i32 {
    1
}
