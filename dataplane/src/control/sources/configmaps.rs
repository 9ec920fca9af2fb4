//! Kubernetes config source: watch a config's ConfigMaps by label, decide from the pointer which
//! revision should serve, and swap it in atomically; the last good revision keeps serving
//! through bad revisions and API-server outages.
//!
//! Classify, compute, then act: [`Follower::observe`] folds watch events into a map of
//! ConfigMaps (a small reflector), [`desired`] is a pure function from that map to what should
//! serve, and [`Follower::reconcile`] performs the one resulting action (install, refuse or
//! wait). [`run`] is the thin async layer around a kube-runtime watcher. Nothing here is on the
//! request path: requests read the live revision through [`App::runtime`], which never blocks.

use crate::control::app::{App, Live};
use crate::control::runtime::Runtime;
use crate::control::sources::file::{self, Document};
use crate::error::{Classify, Fault};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vr_crds::contract::{self, Pointer};

/// The ConfigMaps of one config, by name.
pub type Store = BTreeMap<String, ConfigMap>;

/// One revision ConfigMap's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Name of the revision ConfigMap.
    pub configmap: String,
    /// The rendered document (under [`contract::CONFIG_KEY`]).
    pub document: String,
    /// SHA-256 of the document (hex), as [`Document::digest`] computes it.
    pub digest: String,
}

/// The canary half of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// Name of the canary revision ConfigMap.
    pub configmap: String,
    /// Share of traffic for the canary, in basis points (0–10000).
    pub weight_bp: u32,
    /// Its document; `None` while the ConfigMap has not been seen or is not a usable revision.
    pub revision: Option<Revision>,
}

/// What the pointer says should serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub stable: Revision,
    /// Present while the pointer names a canary.
    pub canary: Option<Canary>,
}

/// Why the ConfigMaps do not name a usable revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("pointer ConfigMap {pointer}: {reason}")]
    BadPointer { pointer: String, reason: String },
    #[error(
        "pointer ConfigMap {pointer} names ConfigMap {configmap}, which has not been seen yet"
    )]
    NotYetSeen { pointer: String, configmap: String },
    #[error(
        "ConfigMap {configmap} named by the pointer is not a revision of config {config} \
         (labels {} and {})",
        contract::LABEL_CONFIG,
        contract::LABEL_ROLE
    )]
    NotARevision { configmap: String, config: String },
    #[error("revision ConfigMap {configmap} has no `{}` key", contract::CONFIG_KEY)]
    NoDocument { configmap: String },
}

impl Problem {
    /// Whether waiting may fix it without anyone changing a ConfigMap (the pointer was written
    /// before the revision reached us).
    pub fn is_transient(&self) -> bool {
        matches!(self, Problem::NotYetSeen { .. })
    }
}

impl Classify for Problem {
    fn status(&self) -> http::StatusCode {
        http::StatusCode::SERVICE_UNAVAILABLE
    }
    fn code(&self) -> &'static str {
        if self.is_transient() {
            "config_pending"
        } else {
            "config_invalid"
        }
    }
    fn fault(&self) -> Fault {
        Fault::Server
    }
    fn retryable(&self) -> bool {
        self.is_transient()
    }
}

fn label<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// What should serve for config `config`, from its ConfigMaps.
///
/// `Ok(None)`: there is no pointer ConfigMap yet. `Err` with [`Problem::is_transient`]: the
/// pointer names a revision not seen yet (wait). Any other `Err`: the pointer or the revision it
/// names is unusable (refuse, keep serving the last good revision). A bad *canary* never hides
/// a good stable revision: it shows as [`Canary::revision`] `None`.
pub fn desired(store: &Store, config: &str) -> Result<Option<Desired>, Problem> {
    let pointer_name = contract::pointer_configmap_name(config);
    let Some(pointer_cm) = store.get(&pointer_name) else {
        return Ok(None);
    };
    let bad_pointer = |reason: String| Problem::BadPointer {
        pointer: pointer_name.clone(),
        reason,
    };
    if label(pointer_cm, contract::LABEL_ROLE) != Some(contract::ROLE_POINTER) {
        return Err(bad_pointer(format!(
            "label {} is not `{}`",
            contract::LABEL_ROLE,
            contract::ROLE_POINTER
        )));
    }
    let empty = BTreeMap::new();
    let pointer =
        Pointer::from_data(pointer_cm.data.as_ref().unwrap_or(&empty)).ok_or_else(|| {
            bad_pointer(
                "`stable` is missing or empty, or `canaryWeightBasisPoints` is not 0–10000".into(),
            )
        })?;
    let stable = revision(store, config, &pointer_name, &pointer.stable)?;
    let canary = pointer.canary.map(|name| Canary {
        revision: revision(store, config, &pointer_name, &name).ok(),
        configmap: name,
        weight_bp: pointer.canary_weight_bp,
    });
    Ok(Some(Desired { stable, canary }))
}

/// The document of revision ConfigMap `name`, checked against the contract.
fn revision(store: &Store, config: &str, pointer: &str, name: &str) -> Result<Revision, Problem> {
    let cm = store.get(name).ok_or_else(|| Problem::NotYetSeen {
        pointer: pointer.to_owned(),
        configmap: name.to_owned(),
    })?;
    if label(cm, contract::LABEL_ROLE) != Some(contract::ROLE_REVISION)
        || label(cm, contract::LABEL_CONFIG) != Some(config)
    {
        return Err(Problem::NotARevision {
            configmap: name.to_owned(),
            config: config.to_owned(),
        });
    }
    let document = cm
        .data
        .as_ref()
        .and_then(|d| d.get(contract::CONFIG_KEY).cloned())
        .or_else(|| {
            let b = cm.binary_data.as_ref()?.get(contract::CONFIG_KEY)?;
            Some(String::from_utf8_lossy(&b.0).into_owned())
        })
        .ok_or_else(|| Problem::NoDocument {
            configmap: name.to_owned(),
        })?;
    Ok(Revision {
        configmap: name.to_owned(),
        digest: hex::encode(Sha256::digest(document.as_bytes())),
        document,
    })
}

/// Parses a revision's document. Relative paths in it resolve against `/` (rendered documents
/// use absolute paths; a pod's working directory means nothing). Errors name the ConfigMap.
pub fn document(rev: &Revision) -> Result<Document, file::LoadError> {
    let origin = format!("ConfigMap {} key {}", rev.configmap, contract::CONFIG_KEY);
    let mut doc = file::parse(rev.document.as_bytes(), Path::new(&origin))?;
    doc.base = PathBuf::from("/");
    Ok(doc)
}

/// Whether `name` can be a config name: a DNS-1123 label (it is used as a label value and as
/// the prefix of ConfigMap names) short enough for `<name>-active`.
pub fn valid_config_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63 - "-active".len()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Connection to the API server as seen through the watch stream, so that each change is
/// logged once rather than each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Started; nothing from the stream yet.
    Connecting,
    /// Never connected; the stream has produced only errors (retrying with backoff).
    Unreachable,
    /// The last thing the stream produced was an event.
    Up,
    /// Connected once; the last thing the stream produced was an error (retrying with backoff).
    Down,
}

/// A change of [`Link`] worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// First event since start.
    Connected,
    /// First error before ever connecting.
    Unreachable,
    /// First error after being connected.
    Disconnected,
    /// First event after [`LinkChange::Disconnected`].
    Reconnected,
}

impl Link {
    /// The stream produced an event.
    pub fn on_event(&mut self) -> Option<LinkChange> {
        let change = match self {
            Link::Connecting | Link::Unreachable => Some(LinkChange::Connected),
            Link::Down => Some(LinkChange::Reconnected),
            Link::Up => None,
        };
        *self = Link::Up;
        change
    }

    /// The stream produced an error.
    pub fn on_error(&mut self) -> Option<LinkChange> {
        let (next, change) = match self {
            Link::Connecting => (Link::Unreachable, Some(LinkChange::Unreachable)),
            Link::Unreachable => (Link::Unreachable, None),
            Link::Up => (Link::Down, Some(LinkChange::Disconnected)),
            Link::Down => (Link::Down, None),
        };
        *self = next;
        change
    }
}

/// What [`Follower::reconcile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stable revision ConfigMap was compiled and swapped in.
    Installed(String),
    /// A revision or pointer was refused (counted and logged); the last good one serves.
    Refused(String),
    /// Nothing to load yet (no pointer, or its revision not seen yet).
    Waiting(String),
    /// Nothing changed.
    Unchanged,
}

/// The revisions (ConfigMap, digest) and canary weight last acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    stable: (String, String),
    canary: Option<(String, String, u32)>,
}

/// Follows one config's ConfigMaps and keeps the app on the revisions the pointer names.
pub struct Follower {
    config: String,
    store: Store,
    /// Objects of a relist in progress; they replace `store` at `InitDone`.
    relist: Option<Store>,
    /// What was last installed or refused, so the same content is not compiled twice.
    last_target: Option<Target>,
    /// Compiled runtimes of the revisions serving now, by ConfigMap name, with their digest.
    compiled: BTreeMap<String, (String, Arc<Runtime>)>,
    /// The last problem or wait reported, so each is reported once.
    last_report: Option<String>,
    pub link: Link,
}

impl Follower {
    pub fn new(config: impl Into<String>) -> Follower {
        Follower {
            config: config.into(),
            store: Store::new(),
            relist: None,
            last_target: None,
            compiled: BTreeMap::new(),
            last_report: None,
            link: Link::Connecting,
        }
    }

    /// The ConfigMaps seen so far.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Folds one watch event into the map. Returns whether the map changed and is complete
    /// (not in the middle of a relist), i.e. whether to [`reconcile`](Self::reconcile).
    pub fn observe(&mut self, ev: Event<ConfigMap>) -> bool {
        match ev {
            Event::Init => {
                self.relist = Some(Store::new());
                false
            }
            Event::InitApply(cm) => {
                if let (Some(buf), Some(name)) = (self.relist.as_mut(), cm.metadata.name.clone()) {
                    buf.insert(name, cm);
                }
                false
            }
            Event::InitDone => {
                // Anything not relisted was deleted while we were not watching.
                self.store = self.relist.take().unwrap_or_default();
                true
            }
            Event::Apply(cm) => match cm.metadata.name.clone() {
                Some(name) => {
                    self.store.insert(name, cm);
                    self.relist.is_none()
                }
                None => false,
            },
            Event::Delete(cm) => match cm.metadata.name.as_deref() {
                Some(name) => {
                    self.store.remove(name);
                    self.relist.is_none()
                }
                None => false,
            },
        }
    }

    /// Makes the app serve what the map says, if it can.
    ///
    /// Guarantees: a revision is installed only after it parsed and compiled in full (never
    /// half-applied); a refused revision or pointer is counted once
    /// (`vr_config_loads_total{outcome="invalid"}`) and logged once, and the last good revision
    /// keeps serving; the same content is not compiled again until it changes; losing the
    /// pointer keeps the last revision serving.
    pub fn reconcile(&mut self, app: &App) -> Outcome {
        match desired(&self.store, &self.config) {
            Ok(None) => {
                let msg = format!(
                    "waiting for pointer ConfigMap {}",
                    contract::pointer_configmap_name(&self.config)
                );
                self.report_wait(msg)
            }
            Err(p) if p.is_transient() => self.report_wait(p.to_string()),
            Err(p) => {
                let msg = p.to_string();
                if self.last_report.as_deref() == Some(&msg) {
                    return Outcome::Unchanged;
                }
                self.last_report = Some(msg.clone());
                app.refused(&msg);
                Outcome::Refused(msg)
            }
            Ok(Some(d)) => {
                self.last_report = None;
                let canary_target = d.canary.as_ref().and_then(|c| {
                    c.revision
                        .as_ref()
                        .map(|r| (r.configmap.clone(), r.digest.clone(), c.weight_bp))
                });
                let target = Target {
                    stable: (d.stable.configmap.clone(), d.stable.digest.clone()),
                    canary: canary_target,
                };
                if self.last_target.as_ref() == Some(&target) {
                    return Outcome::Unchanged;
                }
                self.last_target = Some(target);
                let stable = match self.compile(app, &d.stable) {
                    Ok(rt) => rt,
                    Err(reason) => {
                        app.refused(&reason);
                        return Outcome::Refused(reason);
                    }
                };
                // A canary that does not load never hides a good stable revision: the stable
                // one serves everything and the refusal is counted and logged.
                let mut refused_canary = None;
                let canary = match &d.canary {
                    Some(Canary {
                        revision: Some(rev),
                        weight_bp,
                        ..
                    }) => match self.compile(app, rev) {
                        Ok(rt) => Some((rt, *weight_bp)),
                        Err(reason) => {
                            refused_canary = Some(reason);
                            None
                        }
                    },
                    _ => None,
                };
                if let Some(reason) = &refused_canary {
                    app.refused(reason);
                }
                let canary_name = d.canary.as_ref().map(|c| c.configmap.clone());
                self.compiled.retain(|name, _| {
                    *name == d.stable.configmap
                        || (canary.is_some() && canary_name.as_ref() == Some(name))
                });
                app.install_live(Live {
                    stable,
                    canary: canary.clone(),
                });
                match (canary, refused_canary) {
                    (_, Some(reason)) => Outcome::Refused(reason),
                    (Some((_, w)), None) => {
                        tracing::info!(stable = %d.stable.configmap, canary = ?canary_name, weight_bp = w, "revision ConfigMaps loaded");
                        Outcome::Installed(d.stable.configmap)
                    }
                    (None, None) => {
                        tracing::info!(configmap = %d.stable.configmap, "revision ConfigMap loaded");
                        Outcome::Installed(d.stable.configmap)
                    }
                }
            }
        }
    }

    /// The compiled runtime of `rev`, reusing the one compiled earlier for the same content (a
    /// weight change or a promotion recompiles nothing).
    fn compile(&mut self, app: &App, rev: &Revision) -> Result<Arc<Runtime>, String> {
        if let Some((digest, rt)) = self.compiled.get(&rev.configmap) {
            if *digest == rev.digest {
                return Ok(rt.clone());
            }
        }
        let rt = document(rev)
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                Runtime::compile(doc, app.origin_state.clone())
                    .map_err(|errs| format!("ConfigMap {} is invalid:\n{errs}", rev.configmap))
            })
            .map(Arc::new)?;
        self.compiled
            .insert(rev.configmap.clone(), (rev.digest.clone(), rt.clone()));
        Ok(rt)
    }

    fn report_wait(&mut self, msg: String) -> Outcome {
        if self.last_report.as_deref() == Some(&msg) {
            return Outcome::Unchanged;
        }
        tracing::warn!(config = %self.config, reason = %msg, "no revision to load yet; the last good one (if any) keeps serving");
        self.last_report = Some(msg.clone());
        Outcome::Waiting(msg)
    }
}

/// Whether a watch event proves the API server answered. `Init` does not: the watcher emits it
/// before it sends the list request.
pub fn proves_contact<K>(ev: &Event<K>) -> bool {
    !matches!(ev, Event::Init)
}

/// Whether a watch error is routine rather than an outage: `410 Gone` (our resource version
/// was compacted away), which the watcher answers with a fresh list by itself.
fn routine(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(s) if s.code == 410)
}

/// Watches the ConfigMaps labelled [`contract::LABEL_CONFIG`]`=config` in `namespace` and keeps
/// `app` on the revision their pointer names. Runs until the task is dropped.
///
/// Errors from the API server (outages, RBAC) are retried with kube-runtime's default
/// exponential backoff; meanwhile the last good revision keeps serving. After a lost watch the
/// watcher starts over with a fresh list, so the reconnection shows (and is logged) as soon as
/// the API server answers, and changes missed meanwhile are reconciled at once.
pub async fn run(client: kube::Client, namespace: String, config: String, app: Arc<App>) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let selector = format!("{}={}", contract::LABEL_CONFIG, config);
    let wc = watcher::Config::default().labels(&selector);
    let mut follower = Follower::new(config);
    tracing::info!(%namespace, %selector, "watching config ConfigMaps");
    loop {
        let stream = watcher::watcher(api.clone(), wc.clone()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let start_over = loop {
            match stream.next().await {
                None => break false,
                Some(Ok(ev)) => {
                    if proves_contact(&ev) {
                        match follower.link.on_event() {
                            Some(LinkChange::Connected) => {
                                tracing::info!(%namespace, "connected to the API server")
                            }
                            Some(LinkChange::Reconnected) => {
                                tracing::info!(%namespace, "reconnected to the API server")
                            }
                            _ => {}
                        }
                    }
                    if follower.observe(ev) {
                        follower.reconcile(&app);
                    }
                }
                Some(Err(e)) if routine(&e) => {
                    tracing::debug!(error = %e, "ConfigMap watch expired; relisting")
                }
                Some(Err(e)) => match follower.link.on_error() {
                    Some(LinkChange::Unreachable) => tracing::warn!(
                        error = %e,
                        "cannot watch ConfigMaps yet; retrying with backoff"
                    ),
                    Some(_) => {
                        tracing::warn!(
                            error = %e,
                            "lost the ConfigMap watch; the last revision keeps serving; retrying with backoff"
                        );
                        break true;
                    }
                    None => tracing::debug!(error = %e, "ConfigMap watch retry failed"),
                },
            }
        };
        if !start_over {
            tracing::error!("the ConfigMap watch ended; config changes are no longer followed");
            return;
        }
    }
}

#[cfg(test)]
mod tests;
