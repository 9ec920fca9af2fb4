//! Reconcile, the acting part: observe → [`reconcile::plan`] → perform.
//!
//! Order of writes, so that no reader ever sees a dangling reference: the new immutable
//! revision ConfigMap first, then the workload (server-side apply under one field manager),
//! then the pointer that names the revision, then pruning, then status and events.
//! Children carry owner references, so deleting a config lets Kubernetes' garbage collector
//! remove them; the operator needs no finalizer.

use crate::analysis::{self, Analyzer, WindowQuery};
use crate::children;
use crate::metrics::{ConfigLabels, Metrics, ReconcileLabels, VerdictLabels};
use crate::reconcile::{self, Observed, ObservedRevision, Settings};
use crate::rollout;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Service, ServiceAccount};
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
use vr_crds::rollout::{AnalysisSpec, RolloutState};

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
    #[error("removing the request annotations acted on failed: {0}")]
    Consume(kube::Error),
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
            Error::Consume(_) => "consume_failed",
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
    /// Canary analysis: scrape baselines survive between reconciles.
    pub analyzer: Analyzer,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        instance: String,
        analyzer: Analyzer,
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
            analyzer,
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

/// What exists for a config, and where its data-plane pods' metrics are.
struct Seen {
    observed: Observed,
    derivatives: Vec<Derivative>,
    /// `host:port` of the admin (metrics) port of every ready data-plane endpoint.
    metrics_addresses: Vec<String>,
}

/// Reads what exists for `cfg`.
async fn observe(client: &Client, ns: &str, name: &str) -> Result<Seen, Error> {
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
    let is_ready = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
        e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
    };
    observed.ready_replicas = sl
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(is_ready)
        .count() as i32;
    let mut metrics_addresses = Vec::new();
    for slice in &sl.items {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("admin"))
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
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = children::selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pl = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Observe {
            what: "Pods",
            source,
        })?;
    observed.restarts = pl
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    let derivs: Api<Derivative> = Api::namespaced(client.clone(), ns);
    let ds = derivs
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Observe {
            what: "Derivatives",
            source,
        })?;
    let derivatives = ds
        .items
        .into_iter()
        .filter(|d| d.spec.config == name)
        .collect();
    Ok(Seen {
        observed,
        derivatives,
        metrics_addresses,
    })
}

/// The analysis policy of a bake: only the absolute limits (the previous revision no longer
/// takes traffic, so there is nothing to compare with).
fn absolute_only(spec: &AnalysisSpec) -> AnalysisSpec {
    AnalysisSpec {
        max_error_rate_increase_percent: 100,
        max_client_error_rate_increase_percent: 100,
        max_p95_ratio_percent: 100_000,
        ..spec.clone()
    }
}

/// Measures the analysis window of a running rollout if one has ended.
async fn analysis_window(
    ctx: &Context,
    cfg: &VideoResizerConfig,
    ns: &str,
    key: &str,
    addresses: &[String],
    now: Timestamp,
) -> Option<vr_crds::rollout::AnalysisResult> {
    let ro = cfg.status.as_ref()?.rollout.as_ref()?;
    let policy = &cfg.spec.rollout;
    if !rollout::window_due(policy, ro, now) {
        return None;
    }
    let baking = ro.state == RolloutState::Baking;
    let spec = if baking {
        absolute_only(&policy.analysis)
    } else {
        policy.analysis.clone()
    };
    let interval = Duration::from_secs(spec.interval_seconds.max(1).into());
    let query = WindowQuery {
        key,
        namespace: ns,
        canary: &ro.revision,
        // During a bake the previous revision takes no traffic; its (empty) numbers are not
        // compared (absolute limits only).
        stable: &ro.previous_revision,
        window: analysis::query_window(interval, PROMETHEUS_SCRAPE_INTERVAL),
        addresses,
    };
    let sampled = ctx.analyzer.sample(&spec, &query).await;
    if let Ok(analysis::Sample::Window(w)) = &sampled {
        for note in &w.notes {
            tracing::info!(config = %key, %note, "analysis");
        }
    }
    let mut result = analysis::analyse(&spec, &sampled, now);
    if let Ok(analysis::Sample::Window(w)) = &sampled {
        // Not on the first window: the pods may not have loaded the new pointer yet.
        let first = ro.last_analysis.is_none();
        if let Some(why) = analysis::refused_canary(w, &ro.revision).filter(|_| !baking && !first) {
            result.verdict = vr_crds::rollout::Verdict::Fail;
            result.reasons.push(why);
        }
    }
    tracing::info!(
        config = %key,
        canary = %ro.revision,
        verdict = ?result.verdict,
        canary_requests = result.canary.requests,
        stable_requests = result.stable.requests,
        reasons = %result.reasons.join("; "),
        "analysis window"
    );
    Some(result)
}

/// The scrape interval assumed for Prometheus range queries (`increase` needs two samples in
/// the window).
const PROMETHEUS_SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

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

async fn reconcile_inner(cached: &VideoResizerConfig, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let name = cached.name_any();
    let client = &ctx.client;
    // The rollout state lives in status: read it fresh, not from a cache that may lag behind
    // our own last write.
    let vrcs: Api<VideoResizerConfig> = Api::namespaced(client.clone(), &ns);
    let cfg = match vrcs.get_opt(&name).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(Action::await_change()),
        Err(source) => {
            return Err(Error::Observe {
                what: "VideoResizerConfig",
                source,
            })
        }
    };
    let cfg = &cfg;
    let key = format!("{ns}/{name}");
    let Seen {
        mut observed,
        derivatives,
        metrics_addresses,
    } = observe(client, &ns, &name).await?;
    let now = Timestamp::now();
    observed.window = analysis_window(ctx, cfg, &ns, &key, &metrics_addresses, now).await;
    if let Some(w) = &observed.window {
        let verdict = match w.verdict {
            vr_crds::rollout::Verdict::Pass => "pass",
            vr_crds::rollout::Verdict::Fail => "fail",
            vr_crds::rollout::Verdict::Inconclusive => "inconclusive",
            vr_crds::rollout::Verdict::Error => "error",
        };
        ctx.metrics
            .analysis_windows
            .get_or_create(&VerdictLabels { verdict })
            .inc();
    }
    let plan = reconcile::plan(cfg, &derivatives, &observed, &ctx.settings, now);
    let labels = ConfigLabels {
        namespace: ns.clone(),
        config: name.clone(),
    };
    ctx.metrics
        .canary_weight
        .get_or_create(&labels)
        .set(i64::from(plan.status.canary_weight));

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
    if plan.status_first {
        // Taking traffic away: record the decision (held back, rolled back) before acting, so
        // a failed pointer write is retried from it instead of forgotten.
        write_status(&vrcs, cfg, &plan.status).await?;
    }
    if let Some(p) = &plan.pointer {
        apply::<ConfigMap>(client, &ns, p).await?;
    }
    if plan.baseline {
        // Window 1 starts now: record where every pod's counters stand.
        ctx.analyzer.scrape().forget(&key);
        let ro = plan.status.rollout.as_ref();
        let query = WindowQuery {
            key: &key,
            namespace: &ns,
            canary: ro.map_or("", |r| r.revision.as_str()),
            stable: ro.map_or("", |r| r.previous_revision.as_str()),
            window: Duration::from_secs(1),
            addresses: &metrics_addresses,
        };
        if let Err(e) = ctx.analyzer.scrape().sample_window(&query).await {
            tracing::warn!(config = %key, error = %e, "cannot record the analysis baseline");
        }
    } else if plan.status.rollout.is_none()
        && cfg.status.as_ref().is_some_and(|s| s.rollout.is_some())
    {
        ctx.analyzer.scrape().forget(&key);
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
    if !plan.status_first {
        write_status(&vrcs, cfg, &plan.status).await?;
    }
    let reference = object_reference(cfg);
    for ev in &plan.events {
        match ev.reason {
            "RolledBack" | "Aborted" => ctx.metrics.rollbacks.get_or_create(&labels).inc(),
            "Promoted" => ctx.metrics.promotions.get_or_create(&labels).inc(),
            _ => 0,
        };
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
    if !plan.consume.is_empty() {
        // The request annotations acted on are removed (a JSON merge patch of metadata only).
        let annotations: serde_json::Map<String, serde_json::Value> = plan
            .consume
            .iter()
            .map(|k| ((*k).to_string(), serde_json::Value::Null))
            .collect();
        let body = serde_json::json!({ "metadata": { "annotations": annotations } });
        // A request left in place would be acted on again: failing here retries the reconcile.
        vrcs.patch(&name, &PatchParams::default(), &Patch::Merge(body))
            .await
            .map_err(Error::Consume)?;
    }
    // Watches bring changes at once; a running rollout wakes at its next window or step end;
    // otherwise the periodic pass only refreshes what no watch reports.
    Ok(Action::requeue(
        plan.wake_after.unwrap_or(Duration::from_secs(300)),
    ))
}

/// Writes `status` (server-side apply of the status subresource) if it changed.
async fn write_status(
    vrcs: &Api<VideoResizerConfig>,
    cfg: &VideoResizerConfig,
    status: &vr_crds::resources::VideoResizerConfigStatus,
) -> Result<(), Error> {
    if cfg.status.as_ref() == Some(status) {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", contract::GROUP, vr_crds::resources::VERSION),
        "kind": "VideoResizerConfig",
        "status": status,
    });
    vrcs.patch_status(&cfg.name_any(), &apply_params(), &Patch::Apply(body))
        .await
        .map(|_| ())
        .map_err(Error::Status)
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
                .get(contract::LABEL_SERVICE_NAME)?
                .clone();
            let config = contract::config_of_workload(&svc)?.to_owned();
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
