//! Performing a plan's writes: create the new immutable revision, server-side apply declared
//! objects under one field manager, write status (only when it changed), prune revisions,
//! publish events, remove the request annotations acted on.

use super::context::{Context, Error};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Client, ResourceExt};
use vr_crds::contract;
use vr_crds::resources::{VideoResizerConfig, VideoResizerConfigStatus};
use vr_operator_core::plan::children::Declared;
use vr_operator_core::{EventSpec, Transition};

use crate::metrics::ConfigLabels;

fn apply_params() -> PatchParams {
    PatchParams::apply(contract::FIELD_MANAGER).force()
}

/// Creates the immutable revision ConfigMap `cm` (an existing one with its name is the same
/// content, created by an earlier pass whose status write failed).
pub async fn create_revision(ctx: &Context, ns: &str, cm: &ConfigMap) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match api.create(&PostParams::default(), cm).await {
        Ok(_) => {
            ctx.metrics.revisions_created.inc();
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(Error::Apply {
            kind: "ConfigMap",
            name: cm.metadata.name.clone().unwrap_or_default(),
            source,
        }),
    }
}

/// Server-side applies one declared object in `ns`.
pub async fn apply(client: &Client, ns: &str, obj: &Declared) -> Result<(), Error> {
    let (kind, name) = (obj.kind(), obj.name().to_owned());
    let body = obj.apply_body().map_err(|e| Error::Apply {
        kind,
        name: name.clone(),
        source: kube::Error::SerdeError(e),
    })?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &obj.api_resource());
    api.patch(&name, &apply_params(), &Patch::Apply(body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { kind, name, source })
}

/// Writes `status` (server-side apply of the status subresource) if it changed.
pub async fn write_status(
    vrcs: &Api<VideoResizerConfig>,
    cfg: &VideoResizerConfig,
    status: &VideoResizerConfigStatus,
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

/// Deletes the revision ConfigMaps named in `prune` (already gone is fine).
pub async fn prune(client: &Client, ns: &str, prune: &[String]) -> Result<(), Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for old in prune {
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
    Ok(())
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

/// Publishes `events` about `cfg` (a failure to publish is logged, not fatal), logs them, and
/// counts the rollout transitions they report.
pub async fn publish(
    ctx: &Context,
    cfg: &VideoResizerConfig,
    labels: &ConfigLabels,
    events: &[EventSpec],
) {
    let reference = object_reference(cfg);
    let (name, ns) = (&labels.config, &labels.namespace);
    for ev in events {
        match ev.reason.transition() {
            Some(Transition::Rollback) => ctx.metrics.rollbacks.get_or_create(labels).inc(),
            Some(Transition::Promotion) => ctx.metrics.promotions.get_or_create(labels).inc(),
            None => 0,
        };
        let event = Event {
            type_: if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ev.reason.as_str().into(),
            note: Some(ev.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reason = ev.reason.as_str();
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "cannot publish an event");
        }
        if ev.warning {
            tracing::warn!(config = %name, namespace = %ns, reason, note = %ev.note, "event");
        } else {
            tracing::info!(config = %name, namespace = %ns, reason, note = %ev.note, "event");
        }
    }
}

/// Removes the request annotations acted on (a JSON merge patch of metadata only). A request
/// left in place would be acted on again: failing here fails the reconcile, which is retried.
pub async fn consume(
    vrcs: &Api<VideoResizerConfig>,
    name: &str,
    consume: &[&'static str],
) -> Result<(), Error> {
    if consume.is_empty() {
        return Ok(());
    }
    let annotations: serde_json::Map<String, serde_json::Value> = consume
        .iter()
        .map(|k| ((*k).to_string(), serde_json::Value::Null))
        .collect();
    let body = serde_json::json!({ "metadata": { "annotations": annotations } });
    vrcs.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map(|_| ())
        .map_err(Error::Consume)
}
