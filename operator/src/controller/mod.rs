//! Reconcile, the acting part: observe (from watch-fed stores) → [`vr_operator_core::plan`] →
//! perform. Derivatives get their own status controller (`derivatives`), run next to it.
//!
//! Order of writes, so that no reader ever sees a dangling reference: the new immutable
//! revision ConfigMap first, then the workload (server-side apply under one field manager, in
//! the order the plan declares it), then the pointer that names the revision, then pruning,
//! then status and events. Children carry owner references, so deleting a config lets
//! Kubernetes' garbage collector remove them; the operator needs no finalizer.
//!
//! API cost of one reconcile: one GET of the config (its status must be fresh, not a cache
//! that may lag behind our own last write) and the writes the plan asks for; everything else
//! is read from the stores ([`stores`]).

mod act;
pub mod backoff;
mod context;
mod derivatives;
pub mod stores;
mod window;

pub use context::{Context, Error};

use crate::metrics::{ConfigLabels, ReconcileLabels};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::Stores;
use vr_crds::contract;
use vr_crds::resources::{Derivative, VideoResizerConfig};
use vr_operator_core::observe::{self, Seen};
use vr_operator_core::plan;

/// How long a reconcile waits for the stores' first full listing before it fails (and is
/// retried).
const SYNC_DEADLINE: Duration = Duration::from_secs(30);

/// Reads what exists for config `name` in `ns` from the stores.
async fn observe(ctx: &Context, ns: &str, name: &str) -> Result<(Seen, Vec<Derivative>), Error> {
    let stores = ctx.stores().ok_or(Error::NotSynced("no watch running"))?;
    stores
        .ready(SYNC_DEADLINE)
        .await
        .map_err(Error::NotSynced)?;
    let cms = Stores::in_namespace(&stores.configmaps, ns);
    let slices = Stores::in_namespace(&stores.slices, ns);
    let pods = Stores::in_namespace(&stores.pods, ns);
    let derivs = Stores::in_namespace(&stores.derivatives, ns);
    let seen = observe::seen(
        name,
        cms.iter().map(|o| &**o),
        slices.iter().map(|o| &**o),
        pods.iter().map(|o| &**o),
    );
    let derivatives = observe::derivatives_of(name, derivs.iter().map(|o| &**o));
    Ok((seen, derivatives))
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
        Ok(_) => {
            ctx.backoff().succeeded(&key_of(&cfg));
            "ok".to_string()
        }
        Err(e) => e.code().to_string(),
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels { outcome })
        .inc();
    result
}

fn key_of(cfg: &VideoResizerConfig) -> String {
    format!("{}/{}", cfg.namespace().unwrap_or_default(), cfg.name_any())
}

async fn reconcile_inner(cached: &VideoResizerConfig, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let name = cached.name_any();
    // The rollout state lives in status: read it fresh, not from a cache that may lag behind
    // our own last write.
    let vrcs: Api<VideoResizerConfig> = Api::namespaced(ctx.client.clone(), &ns);
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
    let key = key_of(cfg);
    let (seen, derivatives) = observe(ctx, &ns, &name).await?;
    let Seen {
        mut observed,
        metrics_addresses,
    } = seen;
    let now = Timestamp::now();
    let at = window::Target {
        key: &key,
        namespace: &ns,
        addresses: &metrics_addresses,
    };
    observed.window = window::measure(ctx, cfg, &at, now).await;
    let plan = plan::plan(cfg, &derivatives, &observed, &ctx.settings, now);
    let labels = ConfigLabels {
        namespace: ns.clone(),
        config: name.clone(),
    };
    ctx.metrics
        .canary_weight
        .get_or_create(&labels)
        .set(i64::from(plan.status.canary_weight));
    perform(ctx, cfg, &vrcs, &plan, &labels, &at).await?;
    // Watches bring changes at once; a running rollout wakes at its next window or step end;
    // otherwise the periodic pass only refreshes what no watch reports.
    Ok(Action::requeue(
        plan.wake_after.unwrap_or(Duration::from_secs(300)),
    ))
}

/// Performs `plan` for `cfg`, in the order of writes the module documents.
async fn perform(
    ctx: &Context,
    cfg: &VideoResizerConfig,
    vrcs: &Api<VideoResizerConfig>,
    plan: &plan::Plan,
    labels: &ConfigLabels,
    at: &window::Target<'_>,
) -> Result<(), Error> {
    let (client, ns) = (&ctx.client, at.namespace);
    if let Some(cm) = &plan.new_revision {
        act::create_revision(ctx, ns, cm).await?;
    }
    for child in &plan.children {
        act::apply(client, ns, child).await?;
    }
    if plan.status_first {
        // Taking traffic away: record the decision (held back, rolled back) before acting, so
        // a failed pointer write is retried from it instead of forgotten.
        act::write_status(vrcs, cfg, &plan.status).await?;
    }
    if let Some(p) = &plan.pointer {
        act::apply(client, ns, &plan::children::Declared::ConfigMap(p.clone())).await?;
    }
    if plan.baseline {
        window::baseline(ctx, plan.status.rollout.as_ref(), at).await;
    } else if plan.status.rollout.is_none()
        && cfg.status.as_ref().is_some_and(|s| s.rollout.is_some())
    {
        ctx.analyzer.scrape().forget(at.key);
        ctx.analyzer.forget_evidence(at.key);
    }
    act::prune(client, ns, &plan.prune).await?;
    if !plan.status_first {
        act::write_status(vrcs, cfg, &plan.status).await?;
    }
    act::publish(ctx, cfg, labels, &plan.events).await;
    act::consume(vrcs, &labels.config, &plan.consume).await
}

/// Retry policy for failed reconciles: exponential backoff per config ([`backoff`]).
fn error_policy(cfg: Arc<VideoResizerConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff().failed(&key_of(&cfg));
    tracing::warn!(config = %cfg.name_any(), error = %err, retry_in_ms = delay.as_millis() as u64, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Runs the controller until the process is asked to stop. `namespace`: watch one namespace
/// (`None`: all).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let (configmaps, cm_events) = stores::configmaps(&client, &namespace);
    let (slices, slice_events) = stores::slices(&client, &namespace);
    let (derivatives, derivative_events) = stores::derivatives(&client, &namespace);
    let pods = stores::pods(&client, &namespace);
    if ctx
        .set_stores(Stores {
            configmaps,
            slices,
            pods,
            derivatives,
        })
        .is_err()
    {
        tracing::error!("the controller runs once per process");
        return;
    }
    let owned = watcher::Config::default().labels(contract::LABEL_CONFIG);
    let configs = Controller::new(
        stores::api::<VideoResizerConfig>(&client, &namespace),
        watcher::Config::default(),
    )
    .owns_stream(cm_events)
    .owns(stores::api::<Deployment>(&client, &namespace), owned)
    .watches_stream(derivative_events, |d: Derivative| {
        d.metadata
            .namespace
            .clone()
            .map(|ns| ObjectRef::<VideoResizerConfig>::new(&d.spec.config).within(&ns))
    })
    .watches_stream(slice_events, |s| {
        let config = observe::config_of_slice(&s)?;
        Some(ObjectRef::<VideoResizerConfig>::new(&config).within(s.metadata.namespace.as_deref()?))
    })
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "controller event");
        }
    });
    tokio::join!(configs, derivatives::run(client, namespace));
}
