//! What every reconcile shares ([`Context`]: the client, settings, metrics, the event
//! recorder, the analysis providers, the stores and the retry backoff) and what can go wrong
//! while acting ([`Error`]).

use super::backoff;
use super::stores::Stores;
use crate::analysis::Analyzer;
use crate::metrics::Metrics;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use std::sync::Arc;
use vr_crds::contract;
use vr_operator_core::Settings;

/// What can go wrong while acting (reported, retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what} failed: {source}")]
    Observe {
        what: &'static str,
        source: kube::Error,
    },
    #[error("the operator's view of the cluster is not ready: {0}")]
    NotSynced(&'static str),
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
    pub(super) fn code(&self) -> &'static str {
        match self {
            Error::Observe { .. } | Error::NotSynced(_) => "observe_failed",
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
    /// What the watches have seen (set once the controller runs).
    stores: std::sync::OnceLock<Stores>,
    /// Failures in a row per config, for the retry delay.
    backoff: backoff::Backoff,
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
            stores: std::sync::OnceLock::new(),
            backoff: backoff::Backoff::default(),
        }
    }
}

impl Context {
    /// The stores, once the controller runs.
    pub(super) fn stores(&self) -> Option<&Stores> {
        self.stores.get()
    }

    /// Sets the stores (once; a second call gives them back).
    pub(super) fn set_stores(&self, stores: Stores) -> Result<(), Stores> {
        self.stores.set(stores)
    }

    /// Failures in a row per config.
    pub(super) fn backoff(&self) -> &backoff::Backoff {
        &self.backoff
    }
}
