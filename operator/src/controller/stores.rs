//! Watch-fed stores of every kind a reconcile reads besides the config itself: ConfigMaps
//! (revisions and pointers), EndpointSlices (ready data-plane endpoints), Pods (container
//! restarts) and Derivatives. Each kind is watched once; the same watch keeps the store up to
//! date and (except Pods) triggers the reconcile of the config it belongs to. A reconcile reads
//! from memory, so its cost in API requests does not grow with the number of objects or
//! configs: after start-up no LIST is made at all.

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use vr_crds::contract;
use vr_crds::resources::Derivative;
use vr_operator_core::observe::{self, LABEL_SERVICE_NAME};
use vr_operator_core::plan::workload;

/// Readers of the stores. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub configmaps: Store<ConfigMap>,
    pub slices: Store<EndpointSlice>,
    pub pods: Store<Pod>,
    pub derivatives: Store<Derivative>,
}

/// The store of a trigger kind and the watch stream that fills it (to hand to the controller,
/// which polls it and reconciles the configs its objects belong to).
pub type Fed<K> = (
    Store<K>,
    std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>,
);

/// `Api` of `K` in `namespace` (`None`: all namespaces).
pub fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// A store of `K` fed by a watch of `api` with `config`, keeping only objects `keep` accepts
/// (the watch's label selector cannot say everything), and the stream of the objects it
/// touched (applied or deleted).
fn fed<K>(api: Api<K>, config: watcher::Config, keep: fn(&K) -> bool) -> Fed<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        .filter(move |ev| std::future::ready(keeps(ev, keep)));
    let stream = reflector::reflector(writer, events)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Whether a watch event is about an object `keep` accepts (markers always pass).
fn keeps<K>(ev: &Result<watcher::Event<K>, watcher::Error>, keep: fn(&K) -> bool) -> bool {
    match ev {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o)) => {
            keep(o)
        }
        _ => true,
    }
}

/// ConfigMaps the operator made (revisions and pointers carry the config label).
pub fn configmaps(client: &Client, namespace: &Option<String>) -> Fed<ConfigMap> {
    fed(
        api(client, namespace),
        watcher::Config::default().labels(contract::LABEL_CONFIG),
        |_| true,
    )
}

/// EndpointSlices of data-plane Services (`<config>-dataplane`).
pub fn slices(client: &Client, namespace: &Option<String>) -> Fed<EndpointSlice> {
    fed(
        api(client, namespace),
        watcher::Config::default().labels(LABEL_SERVICE_NAME),
        |s| observe::config_of_slice(s).is_some(),
    )
}

/// Every Derivative (a derivative names its config in its spec, not in a label).
pub fn derivatives(client: &Client, namespace: &Option<String>) -> Fed<Derivative> {
    fed(api(client, namespace), watcher::Config::default(), |_| true)
}

/// The store of data-plane Pods and the task that keeps it up to date. Pods do not trigger
/// reconciles (restarts matter only during a rollout, which wakes at every analysis window).
pub fn pods(client: &Client, namespace: &Option<String>) -> Store<Pod> {
    let (reader, stream) = fed::<Pod>(
        api(client, namespace),
        watcher::Config::default().labels(&workload::dataplane_pod_selector()),
        |_| true,
    );
    tokio::spawn(stream.for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "pod watch");
        }
    }));
    reader
}

impl Stores {
    /// Waits until every store holds a full first listing (at most `deadline`). A reconcile
    /// that read a store still empty would see no revisions and create the first one again.
    pub async fn ready(&self, deadline: Duration) -> Result<(), &'static str> {
        let all = async {
            self.configmaps
                .wait_until_ready()
                .await
                .map_err(|_| "ConfigMaps")?;
            self.slices
                .wait_until_ready()
                .await
                .map_err(|_| "EndpointSlices")?;
            self.pods.wait_until_ready().await.map_err(|_| "Pods")?;
            self.derivatives
                .wait_until_ready()
                .await
                .map_err(|_| "Derivatives")
        };
        tokio::time::timeout(deadline, all)
            .await
            .map_err(|_| "the watch caches (not synced yet)")?
    }

    /// The objects of namespace `ns` in `store`.
    pub fn in_namespace<K: Resource + Clone>(store: &Store<K>, ns: &str) -> Vec<Arc<K>>
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        store.state_filter(|o| o.meta().namespace.as_deref() == Some(ns))
    }
}
