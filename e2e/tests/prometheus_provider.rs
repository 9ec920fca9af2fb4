//! Suite `prometheus`: the operator's `prometheus` analysis provider against a real Prometheus
//! (Debian's) gives the same request counts and sequential verdicts as direct scraping of the
//! same endpoint. Run with `e2e/run prometheus`.
//!
//! The endpoint is an in-test HTTP server on 127.0.0.1 serving a prometheus-client registry
//! shaped like the data plane's (`vr_requests_total`, `vr_request_duration_seconds` with
//! `revision`, `role`, `cache`), fed at steady rates by a background task.

use anyhow::Result;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vr_crds::rollout::{
    AnalysisProvider, AnalysisSpec, PrometheusProviderSpec, ProviderType, RolloutSpec,
    RolloutState, RolloutStatus, Verdict,
};
use vr_e2e::prometheus::{Prometheus, SCRAPE_INTERVAL};
use vr_operator::analysis::{query_window, Analyzer, ProviderError, Sample, WindowQuery};
use vr_operator_core::verdict::look_result;
use vr_verdict::{Counts, Evidence};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status_class: &'static str,
    cache: &'static str,
    revision: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    revision: String,
    role: &'static str,
    cache: &'static str,
}

struct FakeDataPlane {
    /// Transformed requests so far (spreads their latencies over the buckets).
    misses: AtomicU64,
    /// The canary's behaviour: one request in N is a 5xx (0: none), and a latency factor.
    canary: Mutex<(u64, f64)>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl FakeDataPlane {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("vr");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("requests", "Requests served", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Request latency",
            latency.clone(),
        );
        FakeDataPlane {
            misses: AtomicU64::new(0),
            canary: Mutex::new((0, 1.0)),
            registry,
            requests,
            latency,
        }
    }

    fn page(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One tick of traffic for a revision.
    fn serve(
        &self,
        revision: &str,
        role: &'static str,
        tick: u64,
        errors_5xx_every: u64,
        slow: f64,
    ) {
        for i in 0..10u64 {
            let n = tick * 10 + i;
            let (status_class, cache) = if errors_5xx_every > 0 && n % errors_5xx_every == 0 {
                ("5xx", "ERROR")
            } else if n % 10 == 3 {
                ("4xx", "PASS")
            } else if n % 2 == 0 {
                ("2xx", "HIT")
            } else {
                ("2xx", "MISS")
            };
            self.requests
                .get_or_create(&RequestLabels {
                    status_class,
                    cache,
                    revision: revision.to_owned(),
                    role,
                })
                .inc();
            if cache == "MISS" {
                // Latencies spread over several buckets: 20 ms … 2.5 s, times `slow`.
                let k = self.misses.fetch_add(1, Ordering::Relaxed) % 10;
                let base = [0.02, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5, 0.9, 1.5, 2.5][k as usize];
                self.latency
                    .get_or_create(&LatencyLabels {
                        revision: revision.to_owned(),
                        role,
                        cache,
                    })
                    .observe(base * slow);
            } else {
                self.latency
                    .get_or_create(&LatencyLabels {
                        revision: revision.to_owned(),
                        role,
                        cache,
                    })
                    .observe(0.001);
            }
        }
    }
}

/// Serves `/metrics` of `dp` on a free loopback port; returns `host:port`.
async fn serve_metrics(dp: Arc<FakeDataPlane>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let dp = dp.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                // Read the request head (both clients send no body).
                while got < buf.len() {
                    match sock.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = dp.page();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

fn close(what: &str, a: f64, b: f64, rel: f64, abs: f64) {
    let ok = (a - b).abs() <= abs + rel * a.abs().max(b.abs());
    assert!(
        ok,
        "{what}: scrape {a} vs prometheus {b} (tolerance {rel} relative + {abs})"
    );
}

fn compare(role: &str, s: &Counts, p: &Counts) {
    eprintln!("{role}: scrape {s:?}\n{role}: prom   {p:?}");
    close(
        &format!("{role} requests"),
        s.requests as f64,
        p.requests as f64,
        0.15,
        3.0,
    );
    let pct = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
    close(
        &format!("{role} 5xx %"),
        pct(s.server_errors, s.requests),
        pct(p.server_errors, p.requests),
        0.0,
        1.0,
    );
    close(
        &format!("{role} 4xx %"),
        pct(s.client_errors, s.requests),
        pct(p.client_errors, p.requests),
        0.0,
        1.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "external: needs prometheus"]
async fn prometheus_provider_matches_direct_scraping_and_reports_a_stopped_server() -> Result<()> {
    let dp = Arc::new(FakeDataPlane::new());
    // Seed every series so both readers see them from the first scrape.
    dp.serve("r1", "stable", 0, 0, 1.0);
    dp.serve("r2", "canary", 0, 0, 1.0);
    let addr = serve_metrics(dp.clone()).await?;

    // Steady traffic: stable 500 req/s, canary 250 req/s, healthy until the test makes it bad.
    let feeder = {
        let dp = dp.clone();
        tokio::spawn(async move {
            let mut tick = 1u64;
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                dp.serve("r1", "stable", tick, 0, 1.0);
                if tick % 2 == 0 {
                    let (errors_every, slow) = *dp.canary.lock().unwrap_or_else(|e| e.into_inner());
                    dp.serve("r2", "canary", tick, errors_every, slow);
                }
                tick += 1;
            }
        })
    };

    let mut prom = Prometheus::start(std::slice::from_ref(&addr)).await?;
    prom.wait_scraped(3, Duration::from_secs(30)).await?;

    let analyzer = Analyzer::new(Duration::from_secs(2))?;
    let addresses = vec![addr.clone()];
    let interval = Duration::from_secs(10);
    let mut query = WindowQuery {
        key: "ns/video",
        namespace: "ns",
        canary: "r2",
        stable: "r1",
        window: query_window(interval, SCRAPE_INTERVAL),
        addresses: &addresses,
    };
    let scrape_spec = AnalysisSpec::default();
    let prom_spec = AnalysisSpec {
        provider: AnalysisProvider {
            type_: ProviderType::Prometheus,
            prometheus: Some(PrometheusProviderSpec {
                address: prom.url.clone(),
                timeout_seconds: 5,
                requests_query: None,
                server_errors_query: None,
                client_errors_query: None,
                transformed_query: None,
                p95_query: None,
            }),
        },
        ..AnalysisSpec::default()
    };

    let baseline = analyzer.sample(&scrape_spec, &query).await?;
    assert!(matches!(baseline, Sample::Baseline { .. }), "{baseline:?}");
    // The rollout the looks are decided for began with the baseline.
    let ro = RolloutStatus {
        state: RolloutState::Canary,
        revision: "r2".into(),
        previous_revision: "r1".into(),
        started_at: k8s_openapi::jiff::Timestamp::now().to_string(),
        ..RolloutStatus::default()
    };
    let rollout = RolloutSpec::default();
    let (mut scraped_evidence, mut queried_evidence) = (Evidence::default(), Evidence::default());

    // Round 0: a healthy canary passes; round 1: 1 in 7 requests a 5xx and 4× slower transforms.
    for (round, expected) in [Verdict::Pass, Verdict::Fail].into_iter().enumerate() {
        tokio::time::sleep(interval).await;
        // Prometheus: totals since the rollout began (scrape: deltas since the last scrape).
        query.window = query_window(interval * (round as u32 + 1), SCRAPE_INTERVAL);
        // The fake data plane exports no `vr_config_active`: which revisions a pod loaded is not
        // what this suite compares (the canary suite covers a refused canary).
        let scraped = analyzer
            .sample(&scrape_spec, &query)
            .await
            .map(|sample| match sample {
                Sample::Window(mut w) => {
                    w.canary_loaded = None;
                    Sample::Window(w)
                }
                other => other,
            });
        let queried = analyzer.sample(&prom_spec, &query).await;
        let (Ok(Sample::Window(s)), Ok(Sample::Window(p))) = (&scraped, &queried) else {
            panic!("round {round}: scrape {scraped:?}, prometheus {queried:?}");
        };
        eprintln!(
            "round {round}: scrape window {} s, prometheus window {} s",
            s.window_seconds, p.window_seconds
        );
        assert!(!s.totals && p.totals);
        assert!(
            s.look.latency.iter().any(|l| l.kind == "transform"),
            "the scrape gives per-pod transform latencies: {:?}",
            s.look.latency
        );
        let now = k8s_openapi::jiff::Timestamp::now();
        let vs = look_result(
            &rollout,
            &ro,
            &mut scraped_evidence,
            &scraped,
            now,
            &mut Vec::new(),
        );
        let vp = look_result(
            &rollout,
            &ro,
            &mut queried_evidence,
            &queried,
            now,
            &mut Vec::new(),
        );
        compare("canary", &scraped_evidence.canary, &queried_evidence.canary);
        compare("stable", &scraped_evidence.stable, &queried_evidence.stable);
        eprintln!(
            "round {round}: scrape {:?} {:?}\nround {round}: prom   {:?} {:?}",
            vs.verdict, vs.reasons, vp.verdict, vp.reasons
        );
        assert_eq!(vs.verdict, expected, "scrape verdict");
        assert_eq!(vp.verdict, expected, "prometheus verdict");
        assert_eq!(vs.rule, vp.rule, "the same rule decided");
        *dp.canary.lock().unwrap_or_else(|e| e.into_inner()) = (7, 4.0);
    }

    // A revision that served nothing: zero counts from Prometheus, not an error.
    let idle = WindowQuery {
        canary: "r9",
        ..query
    };
    let Sample::Window(w) = analyzer.sample(&prom_spec, &idle).await? else {
        panic!("prometheus always gives a look");
    };
    assert_eq!(w.look.canary, Counts::default());

    prom.stop();
    let stopped = analyzer.sample(&prom_spec, &query).await;
    assert!(
        matches!(stopped, Err(ProviderError::Prometheus(_))),
        "{stopped:?}"
    );
    let r = look_result(
        &rollout,
        &ro,
        &mut queried_evidence,
        &stopped,
        k8s_openapi::jiff::Timestamp::now(),
        &mut Vec::new(),
    );
    assert_eq!(r.verdict, Verdict::Error);
    eprintln!("stopped prometheus: {:?}", r.reasons);
    feeder.abort();
    Ok(())
}
