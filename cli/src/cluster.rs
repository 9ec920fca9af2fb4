//! The cluster side of the CLI: read a `VideoResizerConfig`'s status and history, and ask the
//! operator for rollout actions by annotating it (JSON merge patches of the annotations in
//! [`vr_crds::contract`]; the operator consumes request annotations once it has acted).
//!
//! The client honours `KUBECONFIG`, `--context` and `-n` like kubectl; inside a pod it uses the
//! pod's ServiceAccount.

use crate::exit::{self, CliError};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use std::time::{Duration, Instant};
use vr_crds::contract;
use vr_crds::resources::VideoResizerConfig;

/// A connected client and the namespace commands act in.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

/// Connects with the kubeconfig (`kubeconfig`, else `KUBECONFIG` or `~/.kube/config`; context
/// `context` or the current one), or in-cluster when there is no kubeconfig. The namespace is `namespace`, else
/// the context's, else `default`.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Cluster, CliError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    if let Some(path) = kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("--kubeconfig {}: {e}", path.display()),
            )
        })?;
        let config = Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("kubeconfig: {e}")))?;
        return Cluster::new(config, namespace);
    }
    let config = match Kubeconfig::read() {
        Ok(kc) => Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("kubeconfig: {e}")))?,
        Err(read_err) if context.is_none() => Config::incluster().map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("no kubeconfig ({read_err}) and not in a cluster ({e})"),
            )
        })?,
        Err(e) => return Err(CliError::new(exit::UNAVAILABLE, format!("kubeconfig: {e}"))),
    };
    Cluster::new(config, namespace)
}

impl Cluster {
    fn new(config: Config, namespace: Option<&str>) -> Result<Cluster, CliError> {
        let ns = namespace
            .map(str::to_owned)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("Kubernetes client: {e}")))?;
        Ok(Cluster {
            client,
            namespace: ns,
        })
    }
}

/// A rollout request: one annotation set (or removed, for resume) on the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Promote,
    Abort,
    Pause,
    Resume,
    Retry,
    RollbackTo(u64),
}

impl Request {
    /// The annotation this request writes.
    pub fn annotation(self) -> &'static str {
        match self {
            Request::Promote => contract::ANNOTATION_PROMOTE,
            Request::Abort => contract::ANNOTATION_ABORT,
            Request::Pause | Request::Resume => contract::ANNOTATION_PAUSED,
            Request::Retry => contract::ANNOTATION_RETRY,
            Request::RollbackTo(_) => contract::ANNOTATION_ROLLBACK_TO,
        }
    }

    /// The annotation's value (`None` removes it). One-shot requests carry a timestamp, so
    /// asking twice is a new request even when the old one was not consumed yet.
    pub fn value(self, now: &str) -> Option<String> {
        match self {
            Request::Pause => Some("true".into()),
            Request::Resume => None,
            Request::RollbackTo(n) => Some(n.to_string()),
            Request::Promote | Request::Abort | Request::Retry => Some(now.to_owned()),
        }
    }

    /// Whether the operator removes the annotation once it has acted (pause is state).
    pub fn consumed(self) -> bool {
        !matches!(self, Request::Pause | Request::Resume)
    }

    /// The JSON merge patch that makes this request.
    pub fn patch(self, now: &str) -> serde_json::Value {
        json!({"metadata": {"annotations": {self.annotation(): self.value(now)}}})
    }
}

impl Cluster {
    fn api(&self) -> Api<VideoResizerConfig> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The config `name`.
    pub async fn get(&self, name: &str) -> Result<VideoResizerConfig, CliError> {
        self.api()
            .get(name)
            .await
            .map_err(|e| CliError::from_kube(&self.what(name), e))
    }

    fn what(&self, name: &str) -> String {
        format!("VideoResizerConfig {}/{name}", self.namespace)
    }

    /// Makes `request` on config `name`. A rollback target must be a revision the config still
    /// has: in its history, or as a revision ConfigMap when the history does not list it.
    pub async fn request(
        &self,
        name: &str,
        request: Request,
        now: &str,
    ) -> Result<VideoResizerConfig, CliError> {
        let current = self.get(name).await?;
        if let Request::RollbackTo(n) = request {
            self.check_revision(name, &current, n).await?;
        }
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(request.patch(now)),
            )
            .await
            .map_err(|e| CliError::from_kube(&self.what(name), e))
    }

    async fn check_revision(
        &self,
        name: &str,
        cfg: &VideoResizerConfig,
        n: u64,
    ) -> Result<(), CliError> {
        let status = cfg.status.clone().unwrap_or_default();
        if status.history.iter().any(|r| r.number == n) {
            return Ok(());
        }
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!(
            "{}={name},{}={n}",
            contract::LABEL_CONFIG,
            contract::LABEL_REVISION
        );
        match cms.list(&ListParams::default().labels(&selector)).await {
            Ok(list) if !list.items.is_empty() => Ok(()),
            Ok(_) => {
                let mut known: Vec<u64> = status.history.iter().map(|r| r.number).collect();
                known.sort_unstable();
                Err(CliError::new(
                    exit::NOT_FOUND,
                    format!(
                        "{}: revision {n} is not kept (history: {known:?}, last revision {})",
                        self.what(name),
                        status.last_revision
                    ),
                ))
            }
            // Without the right to list ConfigMaps, let the operator judge the request.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
            Err(e) => Err(CliError::from_kube("revision ConfigMaps", e)),
        }
    }

    /// Waits until the operator has consumed `request`'s annotation on `name`.
    pub async fn wait_consumed(
        &self,
        name: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<VideoResizerConfig, CliError> {
        let start = Instant::now();
        loop {
            let cfg = self.get(name).await?;
            let present = cfg
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(request.annotation()));
            if !present {
                return Ok(cfg);
            }
            if start.elapsed() > timeout {
                return Err(CliError::new(
                    exit::UNAVAILABLE,
                    format!(
                        "{}: the operator did not act on {} within {timeout:?} (is it running?)",
                        self.what(name),
                        request.annotation()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_patch_the_contract_annotations() {
        let now = "2025-01-01T00:00:00Z";
        assert_eq!(
            Request::RollbackTo(3).patch(now),
            json!({"metadata": {"annotations": {"videoresizer.io/rollback-to": "3"}}})
        );
        assert_eq!(
            Request::Pause.patch(now),
            json!({"metadata": {"annotations": {"videoresizer.io/paused": "true"}}})
        );
        // Resume removes the pause annotation (null in a merge patch deletes the key).
        assert_eq!(
            Request::Resume.patch(now),
            json!({"metadata": {"annotations": {"videoresizer.io/paused": null}}})
        );
        assert_eq!(
            Request::Retry.patch(now),
            json!({"metadata": {"annotations": {"videoresizer.io/retry": now}}})
        );
        assert!(Request::Promote.consumed() && !Request::Pause.consumed());
    }
}
