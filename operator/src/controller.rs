//! Reconcile, the acting part: observe → [`reconcile::plan`] → perform.
//!
//! Order of writes, so that no reader ever sees a dangling reference: the new immutable
//! revision ConfigMap first, then the workload (server-side apply under one field manager),
//! then the pointer that names the revision, then pruning, then status and events.
//! Children carry owner references, so deleting a config lets Kubernetes' garbage collector
//! remove them; the operator needs no finalizer.

use crate::children;
use crate::metrics::{Metrics, ReconcileLabels};
use crate::reconcile::{self, Observed, ObservedRevision, Settings};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, policy::v1::PodDisruptionBudget,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vr_crds::contract::{self, Pointer};
use vr_crds::resources::{Derivative, VideoResizerConfig};

/// What can go wrong while acting (reported, retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listing {what} failed: {source}")]
    Observe {
        what: &'static str,
        source: kube::Error,
    },
    #[error("applying {kind}/{name} failed: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("deleting ConfigMap/{name} failed: {source}")]
    Prune { name: String, source: kube::Error },
    #[error("writing status failed: {0}")]
    Status(kube::Error),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Observe { .. } => "observe_failed",
            Error::Apply { .. } => "apply_failed",
            Error::Prune { .. } => "prune_failed",
            Error::Status(_) => "status_failed",
            Error::NoNamespace => "no_namespace",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        instance: String,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: contract::FIELD_MANAGER.into(),
                instance: Some(instance),
            },
        );
        Context {
            client,
            settings,
            metrics,
            recorder,
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(contract::FIELD_MANAGER).force()
}

/// Server-side applies one typed child.
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut value = serde_json::to_value(obj).map_err(|e| Error::Apply {
        kind: short_kind::<K>(),
        name: name.clone(),
        source: kube::Error::SerdeError(e),
    })?;
    // Server-side apply needs apiVersion and kind in the body.
    value["apiVersion"] =
        serde_json::Value::String(K::api_version(&Default::default()).into_owned());
    value["kind"] = serde_json::Value::String(K::kind(&Default::default()).into_owned());
    api.patch(&name, &apply_params(), &Patch::Apply(value))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply {
            kind: short_kind::<K>(),
            name,
            source,
        })
}

fn short_kind<K: Resource>() -> &'static str
where
    <K as Resource>::DynamicType: Default,
{
    match K::kind(&Default::default()).as_ref() {
        "ConfigMap" => "ConfigMap",
        "Deployment" => "Deployment",
        "Service" => "Service",
        "ServiceAccount" => "ServiceAccount",
        "Role" => "Role",
        "RoleBinding" => "RoleBinding",
        "HorizontalPodAutoscaler" => "HorizontalPodAutoscaler",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        _ => "object",
    }
}

/// Reads what exists for `cfg`.
async fn observe(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(Observed, Vec<Derivative>), Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let selector = format!("{}={name}", contract::LABEL_CONFIG);
    let list = cms
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Observe {
            what: "ConfigMaps",
            source,
        })?;
    let mut observed = Observed::default();
    let pointer_name = contract::pointer_configmap_name(name);
    for cm in list.items {
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
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let svc = children::workload_name(name);
    let sl = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .map_err(|source| Error::Observe {
            what: "EndpointSlices",
            source,
        })?;
    observed.ready_replicas = sl
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count() as i32;
    let derivs: Api<Derivative> = Api::namespaced(client.clone(), ns);
    let ds = derivs
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Observe {
            what: "Derivatives",
            source,
        })?;
    let mine = ds
        .items
        .into_iter()
        .filter(|d| d.spec.config == name)
        .collect();
    Ok((observed, mine))
}

/// One reconcile of one config. Guarantees: writes only children it owns and the status
/// subresource (never the spec); identical inputs produce no change in the cluster.
pub async fn reconcile(cfg: Arc<VideoResizerConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&cfg, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().to_string(),
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels { outcome })
        .inc();
    result
}

async fn reconcile_inner(cfg: &VideoResizerConfig, ctx: &Context) -> Result<Action, Error> {
    let ns = cfg.namespace().ok_or(Error::NoNamespace)?;
    let name = cfg.name_any();
    let client = &ctx.client;
    let (observed, derivatives) = observe(client, &ns, &name).await?;
    let plan = reconcile::plan(
        cfg,
        &derivatives,
        &observed,
        &ctx.settings,
        Timestamp::now(),
    );

    if let Some(cm) = &plan.new_revision {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        match api.create(&PostParams::default(), cm).await {
            Ok(_) => {
                ctx.metrics.revisions_created.inc();
            }
            // Created by an earlier pass whose status write failed: same name, same content.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(Error::Apply {
                    kind: "ConfigMap",
                    name: cm.metadata.name.clone().unwrap_or_default(),
                    source,
                })
            }
        }
    }
    if let Some(w) = &plan.workload {
        apply::<ServiceAccount>(client, &ns, &children::service_account(w)).await?;
        apply::<Role>(client, &ns, &children::role(w)).await?;
        apply::<RoleBinding>(client, &ns, &children::role_binding(w)).await?;
        apply::<Service>(client, &ns, &children::service(w)).await?;
        apply::<Deployment>(client, &ns, &children::deployment(w)).await?;
        apply::<HorizontalPodAutoscaler>(client, &ns, &children::hpa(w)).await?;
        apply::<PodDisruptionBudget>(client, &ns, &children::pdb(w)).await?;
    }
    if let Some(p) = &plan.pointer {
        apply::<ConfigMap>(client, &ns, p).await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for old in &plan.prune {
        match cms.delete(old, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Prune {
                    name: old.clone(),
                    source,
                })
            }
        }
    }
    if cfg.status.as_ref() != Some(&plan.status) {
        let api: Api<VideoResizerConfig> = Api::namespaced(client.clone(), &ns);
        let body = serde_json::json!({
            "apiVersion": format!("{}/{}", contract::GROUP, vr_crds::resources::VERSION),
            "kind": "VideoResizerConfig",
            "status": plan.status,
        });
        api.patch_status(&name, &apply_params(), &Patch::Apply(body))
            .await
            .map_err(Error::Status)?;
    }
    let reference = object_reference(cfg);
    for ev in &plan.events {
        let event = Event {
            type_: if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ev.reason.into(),
            note: Some(ev.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = ev.reason, "cannot publish an event");
        }
        if ev.warning {
            tracing::warn!(config = %name, namespace = %ns, reason = ev.reason, note = %ev.note, "event");
        } else {
            tracing::info!(config = %name, namespace = %ns, reason = ev.reason, note = %ev.note, "event");
        }
    }
    // Watches bring changes at once; the periodic pass only refreshes what no watch reports.
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn object_reference(cfg: &VideoResizerConfig) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!(
            "{}/{}",
            contract::GROUP,
            vr_crds::resources::VERSION
        )),
        kind: Some("VideoResizerConfig".into()),
        name: cfg.metadata.name.clone(),
        namespace: cfg.metadata.namespace.clone(),
        uid: cfg.metadata.uid.clone(),
        resource_version: cfg.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Retry policy for failed reconciles.
fn error_policy(cfg: Arc<VideoResizerConfig>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(config = %cfg.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until the process is asked to stop. `namespace`: watch one namespace
/// (`None`: all).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(client.clone(), n),
            None => Api::all(client.clone()),
        }
    }
    let owned = watcher::Config::default().labels(contract::LABEL_CONFIG);
    Controller::new(
        api::<VideoResizerConfig>(&client, &namespace),
        watcher::Config::default(),
    )
    .owns(api::<ConfigMap>(&client, &namespace), owned.clone())
    .owns(api::<Deployment>(&client, &namespace), owned)
    .watches(
        api::<Derivative>(&client, &namespace),
        watcher::Config::default(),
        |d: Derivative| {
            d.metadata
                .namespace
                .clone()
                .map(|ns| ObjectRef::<VideoResizerConfig>::new(&d.spec.config).within(&ns))
        },
    )
    .watches(
        api::<EndpointSlice>(&client, &namespace),
        watcher::Config::default().labels("kubernetes.io/service-name"),
        |s: EndpointSlice| {
            let svc = s
                .metadata
                .labels
                .as_ref()?
                .get("kubernetes.io/service-name")?
                .clone();
            let config = svc.strip_suffix("-dataplane")?.to_owned();
            Some(
                ObjectRef::<VideoResizerConfig>::new(&config)
                    .within(s.metadata.namespace.as_deref()?),
            )
        },
    )
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "controller event");
        }
    })
    .await;
}
