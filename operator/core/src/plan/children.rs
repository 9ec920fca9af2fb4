//! The children a config declares, as a list the acting layer applies in order (server-side
//! apply, one field manager).

use super::workload::{self, WorkloadParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::{ApiResource, Resource};
use serde::Serialize;

/// One object a config declares, to server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Service(Service),
    /// Boxed: by far the largest object.
    Deployment(Box<Deployment>),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    PodDisruptionBudget(PodDisruptionBudget),
    ConfigMap(ConfigMap),
}

/// Calls `$f` on the typed object inside a [`Declared`].
macro_rules! with_object {
    ($d:expr, $o:ident => $f:expr) => {
        match $d {
            Declared::ServiceAccount($o) => $f,
            Declared::Role($o) => $f,
            Declared::RoleBinding($o) => $f,
            Declared::Service($o) => $f,
            Declared::Deployment(boxed) => {
                let $o = boxed.as_ref();
                $f
            }
            Declared::HorizontalPodAutoscaler($o) => $f,
            Declared::PodDisruptionBudget($o) => $f,
            Declared::ConfigMap($o) => $f,
        }
    };
}

/// The body of a server-side apply of `obj`: the object with its `apiVersion` and `kind`.
fn apply_body<K: k8s_openapi::Resource + Serialize>(
    obj: &K,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(obj)?;
    value["apiVersion"] = serde_json::Value::String(K::API_VERSION.to_owned());
    value["kind"] = serde_json::Value::String(K::KIND.to_owned());
    Ok(value)
}

impl Declared {
    /// The object's kind (`Deployment`).
    pub fn kind(&self) -> &'static str {
        fn kind_of<K: k8s_openapi::Resource>(_: &K) -> &'static str {
            K::KIND
        }
        with_object!(self, o => kind_of(o))
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        with_object!(self, o => o.meta().name.as_deref().unwrap_or_default())
    }

    /// Where the object lives in the API (group, version, plural).
    pub fn api_resource(&self) -> ApiResource {
        fn of<K: Resource<DynamicType = ()>>(_: &K) -> ApiResource {
            ApiResource::erase::<K>(&())
        }
        with_object!(self, o => of(o))
    }

    /// The server-side apply body (the object with `apiVersion` and `kind`).
    pub fn apply_body(&self) -> Result<serde_json::Value, serde_json::Error> {
        with_object!(self, o => apply_body(o))
    }
}

/// The workload objects of `p`, in the order they are applied: identity and its rights first,
/// then the Service, the Deployment, and what scales and protects it.
pub fn workload(p: &WorkloadParams) -> Vec<Declared> {
    vec![
        Declared::ServiceAccount(workload::service_account(p)),
        Declared::Role(workload::role(p)),
        Declared::RoleBinding(workload::role_binding(p)),
        Declared::Service(workload::service(p)),
        Declared::Deployment(Box::new(workload::deployment(p))),
        Declared::HorizontalPodAutoscaler(workload::hpa(p)),
        Declared::PodDisruptionBudget(workload::pdb(p)),
    ]
}
