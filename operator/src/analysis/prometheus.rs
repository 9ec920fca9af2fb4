//! The `prometheus` analysis provider: instant PromQL queries (`GET <address>/api/v1/query`)
//! that measure one revision over one window.
//!
//! Each query of [`PrometheusProviderSpec`] is a template: `${revision}` becomes the revision
//! label value, `${window}` the window as a PromQL duration (`10s`) and `${namespace}` the
//! config's namespace. Values are escaped for use inside a double-quoted PromQL string, so a
//! template's `revision="${revision}"` is safe whatever the value. Omitted queries use the
//! `DEFAULT_*` constants below.
//!
//! Reading results: a vector with several series is summed for counts and its largest value
//! taken for p95 (a template without `sum` must not hide a slow series); an empty vector or NaN
//! is 0 for counts and `None` for p95 (no traffic is "no data", never a failure — Flagger's most
//! reported problem). Counts from `increase()` are extrapolated floats; they are rounded.
//!
//! **Window**: `increase()` needs two samples inside its range, so the caller should pass
//! `max(intervalSeconds, 2 × scrape interval)` (e.g. 5 s with a 1 s scrape, 60 s with the usual
//! 30 s scrape); [`query_window`] computes it.

use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Deserialize;
use vr_crds::rollout::{PrometheusProviderSpec, RevisionNumbers};

/// Default requests query.
pub const DEFAULT_REQUESTS_QUERY: &str =
    r#"sum(increase(vr_requests_total{revision="${revision}"}[${window}]))"#;
/// Default 5xx query.
pub const DEFAULT_SERVER_ERRORS_QUERY: &str =
    r#"sum(increase(vr_requests_total{revision="${revision}",status_class="5xx"}[${window}]))"#;
/// Default 4xx query.
pub const DEFAULT_CLIENT_ERRORS_QUERY: &str =
    r#"sum(increase(vr_requests_total{revision="${revision}",status_class="4xx"}[${window}]))"#;
/// Default transformed (cache-miss) requests query.
pub const DEFAULT_TRANSFORMED_QUERY: &str =
    r#"sum(increase(vr_requests_total{revision="${revision}",cache="MISS"}[${window}]))"#;
/// Default p95 query (seconds) over transformed requests.
pub const DEFAULT_P95_QUERY: &str = r#"histogram_quantile(0.95, sum by (le) (increase(vr_request_duration_seconds_bucket{revision="${revision}",cache="MISS"}[${window}])))"#;

/// The window to query: `max(interval, 2 × scrape_interval)`, in whole seconds (at least 1).
pub fn query_window(interval: Duration, scrape_interval: Duration) -> Duration {
    let w = interval.max(scrape_interval.saturating_mul(2));
    let secs = w.as_secs() + u64::from(w.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// A PromQL duration for `window` (whole seconds, rounded up, at least `1s`).
pub fn promql_duration(window: Duration) -> String {
    let secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    format!("{}s", secs.max(1))
}

/// Escapes `value` for the inside of a double-quoted PromQL string.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Fills a query template.
pub fn render_query(template: &str, revision: &str, window: Duration, namespace: &str) -> String {
    template
        .replace("${revision}", &escape_label_value(revision))
        .replace("${window}", &promql_duration(window))
        .replace("${namespace}", &escape_label_value(namespace))
}

/// Which query of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Requests,
    ServerErrors,
    ClientErrors,
    Transformed,
    P95,
}

impl QueryKind {
    const ALL: [QueryKind; 5] = [
        QueryKind::Requests,
        QueryKind::ServerErrors,
        QueryKind::ClientErrors,
        QueryKind::Transformed,
        QueryKind::P95,
    ];

    /// The spec field that holds this query.
    pub fn field(self) -> &'static str {
        match self {
            QueryKind::Requests => "requestsQuery",
            QueryKind::ServerErrors => "serverErrorsQuery",
            QueryKind::ClientErrors => "clientErrorsQuery",
            QueryKind::Transformed => "transformedQuery",
            QueryKind::P95 => "p95Query",
        }
    }

    fn template(self, spec: &PrometheusProviderSpec) -> &str {
        let (custom, default) = match self {
            QueryKind::Requests => (&spec.requests_query, DEFAULT_REQUESTS_QUERY),
            QueryKind::ServerErrors => (&spec.server_errors_query, DEFAULT_SERVER_ERRORS_QUERY),
            QueryKind::ClientErrors => (&spec.client_errors_query, DEFAULT_CLIENT_ERRORS_QUERY),
            QueryKind::Transformed => (&spec.transformed_query, DEFAULT_TRANSFORMED_QUERY),
            QueryKind::P95 => (&spec.p95_query, DEFAULT_P95_QUERY),
        };
        custom.as_deref().unwrap_or(default)
    }
}

/// Why a query gave no number. Always a provider error (counted towards
/// `consecutiveErrorLimit`), never a failed window.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// Unreachable, refused, timed out, or the body could not be read.
    #[error("prometheus {field} query: {}", super::scrape::error_chain(source))]
    Http {
        field: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// Prometheus answered with an error (bad query, overloaded, …).
    #[error("prometheus {field} query: HTTP {status}: {error_type}: {message}")]
    Status {
        field: &'static str,
        status: u16,
        error_type: String,
        message: String,
    },
    /// The answer is not the JSON of the query API.
    #[error("prometheus {field} query: unreadable answer: {problem}")]
    Body {
        field: &'static str,
        problem: String,
    },
    /// The answer is a matrix or string, not an instant vector or scalar.
    #[error("prometheus {field} query: result type {result_type} (an instant vector or scalar is needed)")]
    ResultType {
        field: &'static str,
        result_type: String,
    },
    /// The `address` is not an http(s) URL.
    #[error("prometheus address {address:?} is not an http(s) URL")]
    Address { address: String },
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    value: (serde_json::Value, String),
}

/// Values of an instant query answer: one per series (a scalar is one value).
pub fn parse_answer(
    field: &'static str,
    status: u16,
    body: &[u8],
) -> Result<Vec<f64>, PrometheusError> {
    let parsed: Result<ApiResponse, _> = serde_json::from_slice(body);
    let resp = match parsed {
        Ok(r) => r,
        Err(e) if !(200..300).contains(&status) => {
            return Err(PrometheusError::Status {
                field,
                status,
                error_type: "unknown".to_owned(),
                message: format!("non-API body ({e})"),
            })
        }
        Err(e) => {
            return Err(PrometheusError::Body {
                field,
                problem: e.to_string(),
            })
        }
    };
    if resp.status != "success" || !(200..300).contains(&status) {
        return Err(PrometheusError::Status {
            field,
            status,
            error_type: resp.error_type.unwrap_or_else(|| "unknown".to_owned()),
            message: resp.error.unwrap_or_default(),
        });
    }
    let data = resp.data.ok_or_else(|| PrometheusError::Body {
        field,
        problem: "no data".to_owned(),
    })?;
    let value = |text: &str| -> Result<f64, PrometheusError> {
        match text {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => text.parse().map_err(|_| PrometheusError::Body {
                field,
                problem: format!("value {text:?} is not a number"),
            }),
        }
    };
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> =
                serde_json::from_value(data.result).map_err(|e| PrometheusError::Body {
                    field,
                    problem: e.to_string(),
                })?;
            samples.iter().map(|s| value(&s.value.1)).collect()
        }
        "scalar" => {
            let (_, v): (serde_json::Value, String) =
                serde_json::from_value(data.result).map_err(|e| PrometheusError::Body {
                    field,
                    problem: e.to_string(),
                })?;
            Ok(vec![value(&v)?])
        }
        other => Err(PrometheusError::ResultType {
            field,
            result_type: other.to_owned(),
        }),
    }
}

/// A count from query values: the finite, positive sum, rounded; 0 without data.
pub fn count_of(values: &[f64]) -> u64 {
    let sum: f64 = values.iter().filter(|v| v.is_finite() && **v > 0.0).sum();
    sum.round() as u64
}

/// A p95 in milliseconds from query values in seconds: the largest finite one; `None` without.
pub fn p95_of(values: &[f64]) -> Option<f64> {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .map(|s| s * 1000.0)
}

/// Queries one Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusProvider {
    client: reqwest::Client,
    spec: PrometheusProviderSpec,
}

impl PrometheusProvider {
    /// A provider for `spec`, sharing `client`.
    pub fn new(
        client: reqwest::Client,
        spec: PrometheusProviderSpec,
    ) -> Result<Self, PrometheusError> {
        let a = spec.address.trim();
        if !(a.starts_with("http://") || a.starts_with("https://")) {
            return Err(PrometheusError::Address {
                address: spec.address.clone(),
            });
        }
        Ok(PrometheusProvider { client, spec })
    }

    /// The numbers of `revision` over the `window` ending now (five queries, concurrently).
    pub async fn revision_numbers(
        &self,
        revision: &str,
        window: Duration,
        namespace: &str,
    ) -> Result<RevisionNumbers, PrometheusError> {
        let queries = QueryKind::ALL.map(|kind| {
            let q = render_query(kind.template(&self.spec), revision, window, namespace);
            async move { self.query(kind.field(), &q).await }
        });
        let values = try_join_all(queries).await?;
        Ok(RevisionNumbers {
            requests: count_of(&values[0]),
            server_errors: count_of(&values[1]),
            client_errors: count_of(&values[2]),
            transformed: count_of(&values[3]),
            p95_milliseconds: p95_of(&values[4]),
        })
    }

    /// Runs one instant query; the values of its series.
    pub async fn query(
        &self,
        field: &'static str,
        query: &str,
    ) -> Result<Vec<f64>, PrometheusError> {
        let url = format!(
            "{}/api/v1/query",
            self.spec.address.trim().trim_end_matches('/')
        );
        let http = |source| PrometheusError::Http { field, source };
        let resp = self
            .client
            .get(&url)
            .query(&[("query", query)])
            .timeout(Duration::from_secs(u64::from(
                self.spec.timeout_seconds.max(1),
            )))
            .send()
            .await
            .map_err(http)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(http)?;
        parse_answer(field, status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_templates_with_escaped_values() {
        let q = render_query(
            DEFAULT_SERVER_ERRORS_QUERY,
            "r\"7\\",
            Duration::from_millis(4500),
            "ns",
        );
        assert_eq!(
            q,
            r#"sum(increase(vr_requests_total{revision="r\"7\\",status_class="5xx"}[5s]))"#
        );
        assert_eq!(
            render_query(
                "x{namespace=\"${namespace}\"}",
                "r1",
                Duration::ZERO,
                "a\nb"
            ),
            "x{namespace=\"a\\nb\"}"
        );
    }

    #[test]
    fn query_window_covers_two_scrapes() {
        let s = Duration::from_secs;
        assert_eq!(query_window(s(5), s(1)), s(5));
        assert_eq!(query_window(s(5), s(30)), s(60));
        assert_eq!(query_window(Duration::from_millis(1500), s(0)), s(2));
    }

    #[test]
    fn reads_vectors_scalars_and_empty_results() {
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1700000000.5,"12.4"]},{"metric":{"a":"b"},"value":[1,"3"]}]}}"#;
        let values = parse_answer("requestsQuery", 200, v).unwrap();
        assert_eq!(count_of(&values), 15);
        assert_eq!(p95_of(&values), Some(12400.0));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let values = parse_answer("p95Query", 200, empty).unwrap();
        assert_eq!((count_of(&values), p95_of(&values)), (0, None));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        let values = parse_answer("p95Query", 200, scalar).unwrap();
        assert_eq!((count_of(&values), p95_of(&values)), (0, None));
    }

    #[test]
    fn api_errors_name_the_query_and_the_reason() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let err = parse_answer("p95Query", 400, body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prometheus p95Query query: HTTP 400: bad_data: parse error at char 5"
        );
        let err = parse_answer("requestsQuery", 502, b"<html>bad gateway</html>").unwrap_err();
        assert!(matches!(err, PrometheusError::Status { status: 502, .. }));
        let err = parse_answer("requestsQuery", 200, b"{").unwrap_err();
        assert!(matches!(err, PrometheusError::Body { .. }));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let err = parse_answer("requestsQuery", 200, matrix).unwrap_err();
        assert!(matches!(err, PrometheusError::ResultType { .. }));
    }

    #[test]
    fn refuses_an_address_that_is_not_http() {
        let spec = PrometheusProviderSpec {
            address: "prometheus:9090".to_owned(),
            timeout_seconds: 5,
            requests_query: None,
            server_errors_query: None,
            client_errors_query: None,
            transformed_query: None,
            p95_query: None,
        };
        assert!(PrometheusProvider::new(reqwest::Client::new(), spec).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_provider_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let spec = PrometheusProviderSpec {
            address: format!("http://127.0.0.1:{port}"),
            timeout_seconds: 2,
            requests_query: None,
            server_errors_query: None,
            client_errors_query: None,
            transformed_query: None,
            p95_query: None,
        };
        let p = PrometheusProvider::new(reqwest::Client::new(), spec).unwrap();
        let err = p
            .revision_numbers("r1", Duration::from_secs(5), "ns")
            .await
            .unwrap_err();
        assert!(matches!(err, PrometheusError::Http { .. }), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
