//! Canary analysis providers: where a look's numbers come from (a [`Provider`]: direct
//! scraping of the data-plane pods, or Prometheus), and the evidence each running rollout has
//! gathered ([`Analyzer::with_evidence`]). What the numbers mean is decided in the core
//! ([`vr_operator_core::verdict`]); this module only measures and remembers.
//!
//! One look for the rollout controller:
//! 1. `analyzer.sample(&spec.analysis, &query).await` → a [`Sample`] (a look at the canary and
//!    the stable revision: counts and per-pod latency histograms, or "no look yet"), or a
//!    [`ProviderError`];
//! 2. `look_result` (in the core) adds it to the rollout's evidence and decides sequentially
//!    (`Pass`, `Fail`, `Inconclusive` or `Error` with the evidence that decided);
//! 3. [`Tally::observe`] (restored from and written back to `status.rollout`) says whether to
//!    continue, roll back, or apply `onProviderError`.

pub mod exposition;
pub mod prometheus;
pub mod scrape;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use vr_crds::rollout::{AnalysisSpec, ProviderType};

pub use prometheus::{query_window, PrometheusError, PrometheusProvider};
pub use scrape::{ScrapeError, Snapshot};
pub use vr_operator_core::verdict::{refused_canary, Decision, Sample, Tally, Window};
use vr_verdict::{Counts, Evidence, Look};

/// What to measure: one config's canary against its stable revision.
#[derive(Debug, Clone, Copy)]
pub struct WindowQuery<'a> {
    /// Identity of the rollout's config (`namespace/name`): the scrape provider keeps its
    /// baselines per key.
    pub key: &'a str,
    /// The config's namespace (`${namespace}` in PromQL templates).
    pub namespace: &'a str,
    /// Revision label of the canary (`r<N>`).
    pub canary: &'a str,
    /// Revision label of the stable revision.
    pub stable: &'a str,
    /// Prometheus: the query range, the time since the rollout began (pass [`query_window`]
    /// of it and the scrape interval). Scrape: unused, a look covers the time since the
    /// previous scrape.
    pub window: Duration,
    /// Scrape: `host:port` of the metrics listener of every ready data-plane pod (from the
    /// Service's EndpointSlices). Prometheus: unused.
    pub addresses: &'a [String],
}

/// Why a window could not be measured; counts towards `consecutiveErrorLimit`.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The data-plane Service has no ready endpoint to scrape.
    #[error("no ready data-plane pod to scrape")]
    NoPods,
    /// Every pod failed to answer `/metrics`.
    #[error("none of {pods} data-plane pods could be scraped; first error: {first}")]
    NoPodReadable { pods: usize, first: String },
    /// A Prometheus query failed.
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    /// `provider.type` is `prometheus` without its block (the CRD's validation forbids it).
    #[error("analysis.provider.type is prometheus but analysis.provider.prometheus is missing")]
    MissingPrometheus,
    /// The HTTP client could not be built (TLS back-end).
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A source of analysis windows. Object-safe, so a rollout can hold `&dyn Provider`.
pub trait Provider: Send + Sync {
    /// Measures the canary and stable revisions of `query`.
    fn sample<'a>(
        &'a self,
        query: &'a WindowQuery<'a>,
    ) -> BoxFuture<'a, Result<Sample, ProviderError>>;
}

fn whole_seconds(d: Duration) -> u32 {
    u32::try_from(d.as_millis().saturating_add(500) / 1000)
        .unwrap_or(u32::MAX)
        .max(1)
}

struct Baseline {
    at: Instant,
    pods: BTreeMap<String, Snapshot>,
}

/// The `scrape` provider: reads `/metrics` of every pod and keeps the previous snapshot per pod
/// in memory, per key (the operator is long-running).
///
/// The first call for a key after start only records a baseline and returns
/// [`Sample::Baseline`]; every later call returns the deltas since the previous call (see
/// [`scrape`] for the method). Pods that fail to answer are left out of the window and out of the
/// next baseline (they rejoin baseline-only); if none answers, the call is a
/// [`ProviderError::NoPodReadable`] and the previous baseline is kept.
pub struct ScrapeProvider {
    client: reqwest::Client,
    timeout: Duration,
    baselines: Mutex<HashMap<String, Baseline>>,
}

impl ScrapeProvider {
    /// A provider reading each pod within `timeout`.
    pub fn new(client: reqwest::Client, timeout: Duration) -> Self {
        ScrapeProvider {
            client,
            timeout,
            baselines: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the baseline of `key` (the rollout ended, or the config is gone): the next call
    /// starts with a new baseline.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Baseline>> {
        self.baselines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Scrapes the pods of `query` and returns the window since the previous call for its key.
    pub async fn sample_window(&self, query: &WindowQuery<'_>) -> Result<Sample, ProviderError> {
        if query.addresses.is_empty() {
            return Err(ProviderError::NoPods);
        }
        let read = scrape::fetch(&self.client, query.addresses, self.timeout).await;
        let at = Instant::now();
        let mut notes = Vec::new();
        let mut current = BTreeMap::new();
        let mut first_error = None;
        for (addr, result) in read {
            match result {
                Ok(s) => {
                    current.insert(addr, s);
                }
                Err(e) => {
                    notes.push(format!("pod {addr} unreadable: {e}"));
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        if current.is_empty() {
            return Err(ProviderError::NoPodReadable {
                pods: query.addresses.len(),
                first: first_error.unwrap_or_default(),
            });
        }
        let pods = current.len();
        let previous = self.lock().insert(
            query.key.to_owned(),
            Baseline {
                at,
                pods: current.clone(),
            },
        );
        let Some(previous) = previous else {
            return Ok(Sample::Baseline {
                reason: format!(
                    "first scrape of {pods} data-plane pods since the operator started: baseline recorded, no window yet"
                ),
            });
        };
        let w = scrape::window(&previous.pods, &current);
        if w.counted == 0 {
            return Ok(Sample::Baseline {
                reason: format!(
                    "none of the {pods} data-plane pods read had been read before: baseline recorded, no window yet"
                ),
            });
        }
        if w.baseline_only > 0 {
            notes.push(format!(
                "{} pods read for the first time count from the next window",
                w.baseline_only
            ));
        }
        if w.restarted > 0 {
            notes.push(format!(
                "{} pods restarted since the previous scrape (their counters counted from zero)",
                w.restarted
            ));
        }
        let mut look = Look {
            canary: counts(&w.total, query.canary),
            stable: counts(&w.total, query.stable),
            ..Look::default()
        };
        for (addr, delta) in &w.pods {
            look.latency.extend(scrape::pod_latency(
                addr,
                delta,
                query.canary,
                query.stable,
                &mut notes,
            ));
        }
        let loaded = current
            .values()
            .filter(|s| {
                s.active
                    .contains(&(query.canary.to_owned(), "canary".to_owned()))
            })
            .count();
        Ok(Sample::Window(Window {
            look,
            totals: false,
            window_seconds: whole_seconds(at.saturating_duration_since(previous.at)),
            notes,
            canary_loaded: Some((loaded, pods)),
        }))
    }
}

/// A revision's request counts in summed deltas.
fn counts(total: &Snapshot, revision: &str) -> Counts {
    let n = total.numbers(revision);
    Counts::new(n.requests, n.server_errors, n.client_errors)
}

impl Provider for ScrapeProvider {
    fn sample<'a>(
        &'a self,
        query: &'a WindowQuery<'a>,
    ) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(self.sample_window(query))
    }
}

impl PrometheusProvider {
    /// Queries both revisions' totals over `query.window` (the time since the rollout
    /// began): the core turns them into deltas against the evidence. The latency rules get no
    /// per-pod histograms from Prometheus (see `docs/canary-statistics.md`).
    pub async fn sample_window(&self, query: &WindowQuery<'_>) -> Result<Sample, ProviderError> {
        let (canary, stable) = futures_util::future::try_join(
            self.revision_numbers(query.canary, query.window, query.namespace),
            self.revision_numbers(query.stable, query.window, query.namespace),
        )
        .await?;
        let c = |n: &vr_crds::rollout::RevisionNumbers| {
            Counts::new(n.requests, n.server_errors, n.client_errors)
        };
        Ok(Sample::Window(Window {
            look: Look {
                canary: c(&canary),
                stable: c(&stable),
                ..Look::default()
            },
            totals: true,
            window_seconds: whole_seconds(query.window),
            notes: Vec::new(),
            canary_loaded: None,
        }))
    }
}

impl Provider for PrometheusProvider {
    fn sample<'a>(
        &'a self,
        query: &'a WindowQuery<'a>,
    ) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(self.sample_window(query))
    }
}

/// The operator's analysis entry point: one long-lived scrape provider (its baselines survive
/// between reconciles) and a shared HTTP client for Prometheus queries, dispatching on
/// `analysis.provider.type`.
pub struct Analyzer {
    client: reqwest::Client,
    scrape: ScrapeProvider,
    /// Per config key: the rollout phase the evidence belongs to, and the evidence. Kept in
    /// memory between looks (open latency blocks are not in status).
    evidence: Mutex<HashMap<String, (String, Evidence)>>,
}

impl Analyzer {
    /// An analyzer whose scrapes of one pod take at most `scrape_timeout`. Proxies from the
    /// environment are ignored (pod addresses are cluster-internal).
    pub fn new(scrape_timeout: Duration) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(ProviderError::Client)?;
        Ok(Analyzer {
            scrape: ScrapeProvider::new(client.clone(), scrape_timeout),
            client,
            evidence: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` on the evidence of `key` for the rollout phase `phase` (e.g. the canary
    /// revision and when its rollout began): the evidence kept in memory when it belongs to
    /// `phase`, else `restored` (from status: a new leader, or the phase changed).
    pub fn with_evidence<T>(
        &self,
        key: &str,
        phase: &str,
        restored: impl FnOnce() -> Evidence,
        f: impl FnOnce(&mut Evidence) -> T,
    ) -> T {
        let mut map = self
            .evidence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map
            .entry(key.to_owned())
            .or_insert_with(|| (String::new(), Evidence::default()));
        if entry.0 != phase {
            *entry = (phase.to_owned(), restored());
        }
        f(&mut entry.1)
    }

    /// Forgets the evidence of `key` (a rollout or bake began, or the config is gone).
    pub fn forget_evidence(&self, key: &str) {
        self.evidence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// The scrape provider (to [`ScrapeProvider::forget`] a key).
    pub fn scrape(&self) -> &ScrapeProvider {
        &self.scrape
    }

    /// Measures one window with the provider `spec` names.
    pub async fn sample(
        &self,
        spec: &AnalysisSpec,
        query: &WindowQuery<'_>,
    ) -> Result<Sample, ProviderError> {
        match spec.provider.type_ {
            ProviderType::Scrape => self.scrape.sample_window(query).await,
            ProviderType::Prometheus => {
                let p = spec
                    .provider
                    .prometheus
                    .clone()
                    .ok_or(ProviderError::MissingPrometheus)?;
                PrometheusProvider::new(self.client.clone(), p)?
                    .sample_window(query)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vr_crds::rollout::Verdict;

    /// An in-process `/metrics` endpoint whose page the test sets.
    async fn metrics_server(page: Arc<Mutex<String>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let body = page.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr
    }

    fn page(canary_ok: u64, canary_5xx: u64, stable_ok: u64) -> String {
        format!(
            "vr_requests_total{{status_class=\"2xx\",cache=\"MISS\",revision=\"r2\",role=\"canary\"}} {canary_ok}\n\
             vr_requests_total{{status_class=\"5xx\",cache=\"ERROR\",revision=\"r2\",role=\"canary\"}} {canary_5xx}\n\
             vr_requests_total{{status_class=\"2xx\",cache=\"HIT\",revision=\"r1\",role=\"stable\"}} {stable_ok}\n# EOF\n"
        )
    }

    #[tokio::test]
    async fn first_scrape_is_a_baseline_then_windows_are_deltas() {
        let page_a = Arc::new(Mutex::new(page(10, 0, 100)));
        let page_b = Arc::new(Mutex::new(page(0, 0, 50)));
        let a = metrics_server(page_a.clone()).await;
        let b = metrics_server(page_b.clone()).await;
        let analyzer = Analyzer::new(Duration::from_secs(5)).unwrap();
        let addresses = vec![a, b];
        let q = WindowQuery {
            key: "ns/video",
            namespace: "ns",
            canary: "r2",
            stable: "r1",
            window: Duration::from_secs(5),
            addresses: &addresses,
        };
        let spec = AnalysisSpec::default();
        let first = analyzer.sample(&spec, &q).await;
        assert!(matches!(first, Ok(Sample::Baseline { .. })), "{first:?}");
        let Ok(Sample::Baseline { reason }) = &first else {
            panic!("{first:?}")
        };
        assert!(reason.contains("baseline"));

        *page_a.lock().unwrap() = page(30, 40, 200);
        *page_b.lock().unwrap() = page(20, 0, 150);
        let second = analyzer.sample(&spec, &q).await;
        let Ok(Sample::Window(w)) = &second else {
            panic!("{second:?}")
        };
        assert_eq!(w.look.canary, Counts::new(80, 40, 0));
        assert_eq!(w.look.stable, Counts::new(200, 0, 0));
        assert!(!w.totals, "scrapes are deltas");
        // A look the core decides on: 40 of 80 canary requests failing against none of 200.
        let mut e = Evidence::default();
        let ro = vr_crds::rollout::RolloutStatus {
            revision: "r2".into(),
            started_at: Timestamp::UNIX_EPOCH.to_string(),
            ..Default::default()
        };
        let r = analyzer.with_evidence("ns/video", "r2", Evidence::default, |e| {
            vr_operator_core::verdict::look_result(
                &vr_crds::rollout::RolloutSpec::default(),
                &ro,
                e,
                &second,
                Timestamp::UNIX_EPOCH,
                &mut Vec::new(),
            )
        });
        e.canary = Counts::new(80, 40, 0);
        assert_eq!(r.canary.requests, e.canary.requests);
        assert_eq!(r.verdict, Verdict::Fail, "{:?}", r.reasons);

        analyzer.scrape().forget("ns/video");
        let again = analyzer.sample(&spec, &q).await;
        assert!(matches!(again, Ok(Sample::Baseline { .. })));
    }

    #[tokio::test]
    async fn no_readable_pod_is_a_provider_error_and_keeps_the_baseline() {
        let page_a = Arc::new(Mutex::new(page(10, 0, 100)));
        let a = metrics_server(page_a.clone()).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let analyzer = Analyzer::new(Duration::from_secs(5)).unwrap();
        let both = vec![a.clone(), closed.clone()];
        let only_closed = vec![closed];
        let mut q = WindowQuery {
            key: "ns/video",
            namespace: "ns",
            canary: "r2",
            stable: "r1",
            window: Duration::from_secs(5),
            addresses: &both,
        };
        let spec = AnalysisSpec::default();
        assert!(matches!(
            analyzer.sample(&spec, &q).await,
            Ok(Sample::Baseline { .. })
        ));
        q.addresses = &only_closed;
        let err = analyzer.sample(&spec, &q).await;
        assert!(
            matches!(err, Err(ProviderError::NoPodReadable { pods: 1, .. })),
            "{err:?}"
        );
        q.addresses = &[];
        assert!(matches!(
            analyzer.sample(&spec, &q).await,
            Err(ProviderError::NoPods)
        ));
        *page_a.lock().unwrap() = page(40, 0, 100);
        q.addresses = &both;
        let Ok(Sample::Window(w)) = analyzer.sample(&spec, &q).await else {
            panic!("window expected")
        };
        assert_eq!(w.look.canary.requests, 30);
        assert!(
            w.notes.iter().any(|n| n.contains("unreadable")),
            "{:?}",
            w.notes
        );
    }

    #[test]
    fn a_prometheus_type_without_its_block_is_a_provider_error() {
        let mut spec = AnalysisSpec::default();
        spec.provider.type_ = ProviderType::Prometheus;
        let analyzer = Analyzer::new(Duration::from_secs(1)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let q = WindowQuery {
            key: "k",
            namespace: "ns",
            canary: "r2",
            stable: "r1",
            window: Duration::from_secs(5),
            addresses: &[],
        };
        let r = rt.block_on(analyzer.sample(&spec, &q));
        assert!(matches!(r, Err(ProviderError::MissingPrometheus)));
    }

    #[test]
    fn a_canary_no_pod_loaded_is_reported_as_refused_and_one_loaded_anywhere_is_not() {
        let mut w = Window {
            canary_loaded: Some((0, 3)),
            ..Window::default()
        };
        let why = refused_canary(&w, "r4").expect("refused");
        assert!(why.contains("none of the 3") && why.contains("r4"), "{why}");
        w.canary_loaded = Some((1, 3));
        assert_eq!(refused_canary(&w, "r4"), None);
        w.canary_loaded = None;
        assert_eq!(
            refused_canary(&w, "r4"),
            None,
            "Prometheus says nothing about it"
        );
        w.canary_loaded = Some((0, 0));
        assert_eq!(
            refused_canary(&w, "r4"),
            None,
            "no pod read: a provider error instead"
        );
    }

    #[test]
    fn the_loaded_revisions_and_roles_are_read_from_the_config_active_gauge() {
        let page = "# TYPE vr_config_active gauge\nvr_config_active{revision=\"r3\",role=\"stable\"} 1\nvr_config_active{revision=\"r4\",role=\"canary\"} 1\nvr_config_active{revision=\"r2\",role=\"stable\"} 0\n# EOF\n";
        let s = Snapshot::parse(page).expect("parses");
        assert!(s.active.contains(&("r4".to_owned(), "canary".to_owned())));
        assert!(s.active.contains(&("r3".to_owned(), "stable".to_owned())));
        assert!(!s.active.iter().any(|(r, _)| r == "r2"));
    }
}
