//! Derivative status: a second, small controller that writes each Derivative's `Ready`,
//! `Reconciling` and `Stalled` conditions ([`vr_operator_core::plan::derivative`]), so a
//! Derivative naming a missing or invalid config says why instead of failing silently.
//!
//! It watches Derivatives and VideoResizerConfigs on its own (two more watches; a config
//! reconcile never waits for it). A config event wakes the Derivatives that name the config,
//! and a reconcile reads the config from the watch's store: no request but the status write,
//! and that only when the status changed.

use super::backoff::Backoff;
use super::context::Error;
use super::stores;
use futures_util::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use vr_crds::contract;
use vr_crds::resources::{Derivative, VideoResizerConfig};
use vr_operator_core::plan::conditions::is_true;
use vr_operator_core::plan::derivative::derivative_status;
use vr_operator_core::reason::ConditionType;

/// How often a Derivative that waits for its config is looked at again without an event.
const RECHECK: Duration = Duration::from_secs(10);

/// What a Derivative reconcile reads.
struct Ctx {
    client: Client,
    configs: Store<VideoResizerConfig>,
    /// Failed status writes in a row, per Derivative (the config controller's backoff).
    backoff: Backoff,
}

/// Runs the Derivative status controller until the process is asked to stop.
pub async fn run(client: Client, namespace: Option<String>) {
    let (configs, writer) = reflector::store();
    let config_events = reflector::reflector(
        writer,
        watcher(
            stores::api::<VideoResizerConfig>(&client, &namespace),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .touched_objects();
    let controller = Controller::new(
        stores::api::<Derivative>(&client, &namespace),
        watcher::Config::default(),
    );
    let derivatives = controller.store();
    let ctx = Arc::new(Ctx {
        client,
        configs: configs.clone(),
        backoff: Backoff::default(),
    });
    controller
        .watches_stream(config_events, move |cfg: VideoResizerConfig| {
            let (ns, name) = (cfg.namespace(), cfg.name_any());
            derivatives
                .state()
                .into_iter()
                .filter(|d| d.namespace() == ns && d.spec.config == name)
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "derivative controller event");
            }
        })
        .await;
}

/// Writes the status `d` should have (only when it changed).
async fn reconcile(d: Arc<Derivative>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = d.namespace().ok_or(Error::NoNamespace)?;
    // Until the config watch has listed once, an absent config proves nothing: look again
    // shortly (never block here: the controller polls that watch between reconciles).
    let listed =
        tokio::time::timeout(Duration::from_millis(100), ctx.configs.wait_until_ready()).await;
    if !matches!(listed, Ok(Ok(()))) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let config = ctx
        .configs
        .get(&ObjectRef::<VideoResizerConfig>::new(&d.spec.config).within(&ns));
    let status = derivative_status(&d, config.as_deref(), Timestamp::now());
    // Waiting (no config yet, or not reconciled yet): look again soon even if no event comes.
    let next = if is_true(&status.conditions, ConditionType::Reconciling) {
        Action::requeue(RECHECK)
    } else {
        Action::await_change()
    };
    if d.status.as_ref() == Some(&status) {
        ctx.backoff.succeeded(&key_of(&d));
        return Ok(next);
    }
    let api: Api<Derivative> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", contract::GROUP, vr_crds::resources::VERSION),
        "kind": "Derivative",
        "status": status,
    });
    api.patch_status(
        &d.name_any(),
        &PatchParams::apply(contract::FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(Error::Status)?;
    ctx.backoff.succeeded(&key_of(&d));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready.as_str());
    tracing::info!(
        derivative = %d.name_any(),
        namespace = %ns,
        ready = ready.map_or("", |c| c.status.as_str()),
        reason = ready.map_or("", |c| c.reason.as_str()),
        "derivative status written"
    );
    Ok(next)
}

fn key_of(d: &Derivative) -> String {
    format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())
}

fn error_policy(d: Arc<Derivative>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let delay = ctx.backoff.failed(&key_of(&d));
    tracing::warn!(derivative = %d.name_any(), error = %err, retry_in_ms = delay.as_millis() as u64, "derivative status not written; retrying");
    Action::requeue(delay)
}
