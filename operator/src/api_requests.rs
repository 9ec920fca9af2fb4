//! Counts the operator's own requests to the Kubernetes API, by verb and resource: a tower
//! layer on the kube client, so every request (controller watches, reads, applies, status
//! writes, events, the lease) is counted where it leaves the process.
//!
//! The verb follows the API server's own request info (`get`, `list`, `watch`, `create`,
//! `update`, `patch`, `delete`, `deletecollection`); the resource is the plural name with its
//! subresource (`configmaps`, `videoresizerconfigs/status`). Both are derived from the method
//! and the URL only, so the classification is a pure function ([`classify`]).

use http::{Method, Request, Uri};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::task::{Context, Poll};

/// Labels of one counted request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// Plural resource name, with `/subresource` when there is one; `non-resource` for paths
    /// such as `/version`.
    pub resource: String,
}

/// The verb and resource of a request to the Kubernetes API, from its method and URL.
pub fn classify(method: &Method, uri: &Uri) -> ApiRequestLabels {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // `/api/v1/...` (core group) or `/apis/<group>/<version>/...`.
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // Namespaced paths carry `namespaces/<ns>` first; `namespaces` alone is the resource.
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("non-resource".to_string(), true),
        [plural] => ((*plural).to_string(), false),
        [plural, _name] => ((*plural).to_string(), true),
        [plural, _name, sub, ..] => (format!("{plural}/{sub}"), true),
    };
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    ApiRequestLabels { verb, resource }
}

/// A tower layer counting every request into `counter` (a family registered in the
/// operator's metrics).
#[derive(Clone)]
pub struct CountLayer {
    counter: Family<ApiRequestLabels, Counter>,
}

impl CountLayer {
    pub fn new(counter: Family<ApiRequestLabels, Counter>) -> Self {
        CountLayer { counter }
    }
}

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.counter.clone(),
        }
    }
}

/// The service [`CountLayer`] wraps around the client's stack.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: Family<ApiRequestLabels, Counter>,
}

impl<S, B> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.counter
            .get_or_create(&classify(req.method(), req.uri()))
            .inc();
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, uri: &str) -> (&'static str, String) {
        let l = classify(&method, &uri.parse().expect("uri"));
        (l.verb, l.resource)
    }

    #[test]
    fn collections_are_lists_and_watches_and_items_are_gets() {
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/namespaces/media/configmaps?labelSelector=a%3Db"
            ),
            ("list", "configmaps".into())
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion=5"
            ),
            ("watch", "endpointslices".into())
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/videoresizer.io/v1alpha1/namespaces/media/videoresizerconfigs/web"
            ),
            ("get", "videoresizerconfigs".into())
        );
        assert_eq!(c(Method::GET, "/api/v1/pods"), ("list", "pods".into()));
    }

    #[test]
    fn writes_are_named_by_method_and_subresources_are_kept() {
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/videoresizer.io/v1alpha1/namespaces/media/videoresizerconfigs/web/status?fieldManager=x&force=true"
            ),
            ("patch", "videoresizerconfigs/status".into())
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/media/configmaps"),
            ("create", "configmaps".into())
        );
        assert_eq!(
            c(
                Method::DELETE,
                "/api/v1/namespaces/media/configmaps/web-r1-abc"
            ),
            ("delete", "configmaps".into())
        );
        assert_eq!(
            c(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/vr-system/leases/op"
            ),
            ("update", "leases".into())
        );
    }

    #[test]
    fn namespaces_themselves_and_non_resource_paths_are_classified() {
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/media"),
            ("get", "namespaces".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces"),
            ("list", "namespaces".into())
        );
        assert_eq!(c(Method::GET, "/version"), ("get", "non-resource".into()));
    }
}
