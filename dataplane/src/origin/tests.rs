//! In-process tests of origins: real HTTP servers on 127.0.0.1:0 and temp directories.

use super::*;
use crate::error::Classify;
use crate::metrics::{Metrics, OriginLabels, SourceLabels};
use ::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vr_crds::DataPlaneConfig;

// ---------- a tiny HTTP/1.1 responder that records every request ----------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    content_length: bool,
    hang: bool,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_length: true,
            hang: false,
        }
    }
    fn ok(body: &[u8]) -> Reply {
        Reply {
            body: body.to_vec(),
            ..Reply::status(200)
        }
    }
    fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::status(200)
        }
    }
    fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn no_length(mut self) -> Reply {
        self.content_length = false;
        self
    }
}

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    fn count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }
}

async fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let handler = Arc::new(handler);
    let task_log = log.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (log, handler) = (task_log.clone(), handler.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let headers = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let req = Req {
                    method,
                    path,
                    headers,
                };
                log.lock().unwrap().push(req.clone());
                let reply = handler(&req);
                if reply.hang {
                    std::future::pending::<()>().await;
                }
                let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                if reply.content_length {
                    head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                }
                head.push_str("\r\n");
                let _ = sock.write_all(head.as_bytes()).await;
                if req.method != "HEAD" {
                    let _ = sock.write_all(&reply.body).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Server { addr, log, task }
}

// ---------- config helpers ----------

fn config(origins: Value, extra: Value) -> DataPlaneConfig {
    let mut doc = json!({
        "origins": origins,
        "resilience": {
            "attempts": 1, "baseDelayMs": 1, "maxDelayMs": 2,
            "failureThreshold": 100, "windowSeconds": 30, "openSeconds": 10
        },
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    let cfg: DataPlaneConfig = serde_json::from_value(doc).unwrap();
    cfg.validate().unwrap();
    cfg
}

fn resilience(attempts: u32, threshold: u32, open_seconds: u32) -> Value {
    json!({
        "attempts": attempts, "baseDelayMs": 1, "maxDelayMs": 2,
        "failureThreshold": threshold, "windowSeconds": 30, "openSeconds": open_seconds
    })
}

fn http_origin(sources: Vec<Value>) -> Value {
    json!([{ "name": "videos", "matcher": "^/v/(?P<name>.+)$", "sources": sources }])
}

fn http_source(name: &str, url: String) -> Value {
    json!({ "kind": "http", "name": name, "url": url })
}

struct Harness {
    origins: Origins,
    metrics: Arc<Metrics>,
    spool: PathBuf,
    _tmp: tempfile::TempDir,
}

fn harness(cfg: &DataPlaneConfig) -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let metrics = Arc::new(Metrics::new());
    let state = OriginState::new(metrics.clone(), spool.clone());
    let origins = Origins::compile(cfg, state).unwrap();
    Harness {
        origins,
        metrics,
        spool,
        _tmp: tmp,
    }
}

impl Harness {
    fn route(&self, path: &str) -> Route {
        self.origins.route(path).expect("route matches")
    }
    fn fetches(&self, source: &str, outcome: &'static str) -> u64 {
        self.metrics
            .origin_fetches
            .get_or_create(&OriginLabels {
                origin: "videos".into(),
                source: source.into(),
                outcome,
            })
            .get()
    }
    fn breaker_gauge(&self, source: &str) -> i64 {
        self.metrics
            .breaker_state
            .get_or_create(&SourceLabels {
                origin: "videos".into(),
                source: source.into(),
            })
            .get()
    }
    fn spool_files(&self) -> usize {
        std::fs::read_dir(&self.spool).map_or(0, |d| d.count())
    }
}

// ---------- routing ----------

#[tokio::test]
async fn route_picks_the_first_matching_origin_with_named_numbered_and_path_captures() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let cfg = config(
        json!([
            { "name": "clips", "matcher": "^/v/(?P<id>[a-z]+)-(\\d+)\\.mp4$",
              "sources": [{ "kind": "local", "name": "disk", "root": root, "path": "${id}/${2}.mp4" }] },
            { "name": "all", "matcher": "^/v/(.+)$",
              "sources": [{ "kind": "local", "name": "disk", "root": root, "path": "${1}" }] }
        ]),
        json!({}),
    );
    let h = harness(&cfg);
    let r = h.route("/v/clip-42.mp4");
    assert_eq!(r.origin, "clips");
    assert_eq!(r.capture("id"), Some("clip"));
    assert_eq!(r.capture("1"), Some("clip"));
    assert_eq!(r.capture("2"), Some("42"));
    assert_eq!(r.capture("path"), Some("v/clip-42.mp4"));
    assert_eq!(h.route("/v/other.webm").origin, "all");
    assert!(h.origins.route("/x/other.webm").is_none());
}

#[tokio::test]
async fn captures_are_percent_encoded_into_the_source_url() {
    let server = serve(|_| Reply::ok(b"x").header("etag", "\"1\"")).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/raw/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let meta = h
        .origins
        .stat(&h.route("/v/dir/a%20b%3Fc%23d.mp4"))
        .await
        .unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "HEAD");
    assert_eq!(seen[0].path, "/raw/dir/a%20b%3Fc%23d.mp4");
    assert_eq!(meta.key, server.url("/raw/dir/a%20b%3Fc%23d.mp4"));
    assert_eq!(meta.validator, "etag:\"1\"");
}

// ---------- fall-through, retries, breaker ----------

#[tokio::test]
async fn not_found_on_the_first_source_falls_through_to_the_second() {
    let s1 = serve(|_| Reply::status(404)).await;
    let s2 = serve(|_| Reply::ok(b"video").header("etag", "\"v2\"")).await;
    let cfg = config(
        http_origin(vec![
            http_source("primary", s1.url("/${name}")),
            http_source("backup", s2.url("/${name}")),
        ]),
        json!({ "resilience": resilience(3, 100, 10) }),
    );
    let h = harness(&cfg);
    let meta = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(meta.source, "backup");
    assert_eq!(meta.length, Some(5));
    assert_eq!(s1.requests().len(), 1, "404 is never retried");
    assert_eq!(s2.requests().len(), 1);
    assert_eq!(h.fetches("primary", "not_found"), 1);
    assert_eq!(h.fetches("backup", "ok"), 1);
}

#[tokio::test]
async fn every_source_not_found_is_a_404() {
    let s1 = serve(|_| Reply::status(404)).await;
    let s2 = serve(|_| Reply::status(410)).await;
    let cfg = config(
        http_origin(vec![
            http_source("a", s1.url("/${name}")),
            http_source("b", s2.url("/${name}")),
        ]),
        json!({ "resilience": resilience(3, 100, 10) }),
    );
    let h = harness(&cfg);
    let err = h.origins.fetch(&h.route("/v/a.mp4")).await.unwrap_err();
    assert!(matches!(err, OriginError::NotFound { .. }), "{err}");
    assert_eq!(err.status(), StatusCode::NOT_FOUND);
    assert_eq!((s1.requests().len(), s2.requests().len()), (1, 1));
}

#[tokio::test]
async fn server_errors_are_retried_attempts_times_then_the_next_source_is_tried() {
    let s1 = serve(|_| Reply::status(500)).await;
    let s2 = serve(|_| Reply::ok(b"ok")).await;
    let cfg = config(
        http_origin(vec![
            http_source("flaky", s1.url("/${name}")),
            http_source("backup", s2.url("/${name}")),
        ]),
        json!({ "resilience": resilience(3, 100, 10) }),
    );
    let h = harness(&cfg);
    let meta = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(meta.source, "backup");
    assert_eq!(s1.requests().len(), 3);
    assert_eq!(s2.requests().len(), 1);
    assert_eq!(h.fetches("flaky", "error"), 3);
}

#[tokio::test]
async fn when_every_source_fails_the_first_failure_is_reported() {
    let s1 = serve(|_| Reply::status(503)).await;
    let s2 = serve(|_| Reply::status(404)).await;
    let cfg = config(
        http_origin(vec![
            http_source("flaky", s1.url("/${name}")),
            http_source("backup", s2.url("/${name}")),
        ]),
        json!({ "resilience": resilience(2, 100, 10) }),
    );
    let h = harness(&cfg);
    let err = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap_err();
    assert!(
        matches!(&err, OriginError::Upstream { source, status: 503, .. } if source == "flaky"),
        "{err}"
    );
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert!(err.retryable());
    assert_eq!((s1.requests().len(), s2.requests().len()), (2, 1));
}

#[tokio::test]
async fn breaker_opens_after_threshold_skips_at_once_and_a_half_open_probe_closes_it() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let server = serve(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok(b"fine")
        } else {
            Reply::status(502)
        }
    })
    .await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({ "resilience": resilience(1, 2, 10) }),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    for _ in 0..2 {
        let err = h.origins.stat(&route).await.unwrap_err();
        assert!(
            matches!(err, OriginError::Upstream { status: 502, .. }),
            "{err}"
        );
    }
    assert_eq!(h.breaker_gauge("web"), 2);
    let err = h.origins.stat(&route).await.unwrap_err();
    assert!(matches!(err, OriginError::BreakerOpen { .. }), "{err}");
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.retry_after(), Some(10));
    assert_eq!(server.requests().len(), 2, "an open breaker sends nothing");
    assert_eq!(h.fetches("web", "breaker_open"), 1);
    assert_eq!(
        h.origins.breakers(),
        vec![("videos".into(), "web".into(), "open")]
    );

    // Jump past openSeconds without sleeping, then let real I/O run again.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::time::resume();
    assert_eq!(h.origins.breakers()[0].2, "half-open");
    healthy.store(true, Ordering::SeqCst);
    let meta = h.origins.stat(&route).await.unwrap();
    assert_eq!(meta.source, "web");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(h.breaker_gauge("web"), 0);
    assert_eq!(h.origins.breakers()[0].2, "closed");
}

#[tokio::test]
async fn a_failing_half_open_probe_reopens_the_breaker() {
    let server = serve(|_| Reply::status(500)).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({ "resilience": resilience(1, 1, 5) }),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    assert!(h.origins.stat(&route).await.is_err());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    let err = h.origins.stat(&route).await.unwrap_err();
    assert!(matches!(err, OriginError::Upstream { .. }), "{err}");
    let err = h.origins.stat(&route).await.unwrap_err();
    assert!(matches!(err, OriginError::BreakerOpen { .. }), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_source_times_out_within_its_configured_timeout() {
    let server = serve(|_| Reply::hang()).await;
    let mut src = http_source("slow", server.url("/${name}"));
    src["timeoutSeconds"] = json!(2);
    let cfg = config(http_origin(vec![src]), json!({}));
    let h = harness(&cfg);
    let started = Instant::now();
    let err = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&err, OriginError::Timeout { source, .. } if source == "slow"),
        "{err}"
    );
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(h.fetches("slow", "timeout"), 1);
}

// ---------- size limits and spooling ----------

#[tokio::test]
async fn content_length_over_the_limit_is_too_large_without_a_get() {
    let server = serve(|_| Reply::ok(&[0u8; 1000])).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({ "limits": { "maxInputBytes": 100 } }),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    let err = h.origins.fetch(&route).await.unwrap_err();
    assert!(
        matches!(
            err,
            OriginError::TooLarge {
                limit: 100,
                size: Some(1000),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err = h.origins.stat(&route).await.unwrap_err();
    assert!(matches!(err, OriginError::TooLarge { .. }), "{err}");
    assert_eq!(server.count("GET"), 0);
    assert_eq!(server.count("HEAD"), 2);
    assert_eq!(h.spool_files(), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_without_content_length_is_too_large_and_leaves_no_temp_file() {
    let server = serve(|_| Reply::ok(&[7u8; 1000]).no_length()).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({ "limits": { "maxInputBytes": 100 } }),
    );
    let h = harness(&cfg);
    let err = h.origins.fetch(&h.route("/v/a.mp4")).await.unwrap_err();
    assert!(
        matches!(
            err,
            OriginError::TooLarge {
                limit: 100,
                size: None,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(server.count("GET"), 1);
    assert_eq!(h.spool_files(), 0);
    assert_eq!(h.fetches("web", "too_large"), 1);
}

#[tokio::test]
async fn fetch_spools_an_http_object_to_a_temp_file_removed_on_drop() {
    let server = serve(|_| {
        Reply::ok(b"hello video")
            .header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            .header("content-type", "video/mp4")
    })
    .await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let fetched = h.origins.fetch(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), b"hello video");
    assert!(fetched.path.starts_with(&h.spool));
    assert_eq!(
        fetched.meta.validator,
        "lm:Wed, 21 Oct 2015 07:28:00 GMT;len:11"
    );
    assert_eq!(fetched.meta.content_type.as_deref(), Some("video/mp4"));
    assert!(fetched.meta.last_modified.is_some());
    let path = fetched.path.clone();
    drop(fetched);
    assert!(!path.exists());
    assert_eq!(h.spool_files(), 0);
}

#[tokio::test]
async fn open_streams_the_http_original_without_spooling() {
    let server = serve(|_| Reply::ok(&[3u8; 300_000]).no_length()).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({ "limits": { "maxInputBytes": 100 } }),
    );
    let h = harness(&cfg);
    let (meta, body) = h.origins.open(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(meta.source, "web");
    let bytes = body.collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len(), 300_000);
    assert_eq!(server.count("HEAD"), 0);
    assert_eq!(h.spool_files(), 0);
}

/// A server that honours single `Range: bytes=a-b` headers over `data` (206 with
/// `Content-Range`), or ignores them when `ranges` is false (200 with everything).
async fn ranged(data: Vec<u8>, ranges: bool) -> Server {
    serve(move |req| {
        let range = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        match range {
            Some((a, b)) if ranges && req.method == "GET" => Reply {
                body: data[a..=b].to_vec(),
                ..Reply::status(206)
            }
            .header("content-range", &format!("bytes {a}-{b}/{}", data.len())),
            _ if req.method == "HEAD" => Reply::status(200)
                .header("content-length", &data.len().to_string())
                .no_length(),
            _ => Reply::ok(&data),
        }
        .header("etag", "\"v1\"")
    })
    .await
}

#[tokio::test]
async fn open_range_asks_the_origin_for_exactly_the_range() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let server = ranged(data.clone(), true).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    let meta = h.origins.stat(&route).await.unwrap();
    assert_eq!(meta.length, Some(200_000));
    assert!(h.origins.is_remote(&route, &meta));
    let body = h.origins.open_range(&route, 0, 1, 200_000).await.unwrap();
    assert_eq!(
        body.collect().await.unwrap().to_bytes().as_ref(),
        &data[..1]
    );
    let body = h
        .origins
        .open_range(&route, 150_000, 50_000, 200_000)
        .await
        .unwrap();
    assert_eq!(
        body.collect().await.unwrap().to_bytes().as_ref(),
        &data[150_000..]
    );
    let gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.header("range").unwrap_or("").to_string())
        .collect();
    assert_eq!(gets, ["bytes=0-0", "bytes=150000-199999"]);
    // A size that no longer matches the metadata is an upstream error, not wrong bytes.
    let err = h.origins.open_range(&route, 0, 1, 999).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{err}");
    assert_eq!(h.spool_files(), 0);
}

#[tokio::test]
async fn open_range_cuts_the_range_out_of_an_origin_that_ignores_ranges() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let server = ranged(data.clone(), false).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    let body = h
        .origins
        .open_range(&route, 70_000, 10, 100_000)
        .await
        .unwrap();
    assert_eq!(
        body.collect().await.unwrap().to_bytes().as_ref(),
        &data[70_000..70_010]
    );
}

// ---------- metadata cache ----------

#[tokio::test]
async fn source_answers_are_cached_for_the_revalidate_window() {
    let s1 = serve(|_| Reply::status(404)).await;
    let s2 = serve(|_| Reply::ok(b"abc").header("etag", "\"e\"")).await;
    let cfg = config(
        http_origin(vec![
            http_source("a", s1.url("/${name}")),
            http_source("b", s2.url("/${name}")),
        ]),
        json!({ "cache": { "sourceRevalidateSeconds": 30 } }),
    );
    let h = harness(&cfg);
    let route = h.route("/v/a.mp4");
    let first = h.origins.stat(&route).await.unwrap();
    let second = h.origins.stat(&route).await.unwrap();
    assert_eq!(first, second);
    assert_eq!((s1.requests().len(), s2.requests().len()), (1, 1));
    // fetch skips the source known not to have the object, and reads the one stat chose.
    let fetched = h.origins.fetch(&route).await.unwrap();
    assert_eq!(fetched.meta.source, "b");
    assert_eq!(s1.requests().len(), 1);
    assert_eq!((s2.count("HEAD"), s2.count("GET")), (2, 1));
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::time::resume();
    h.origins.stat(&route).await.unwrap();
    assert_eq!((s1.requests().len(), s2.count("HEAD")), (2, 3));
}

// ---------- auth ----------

#[tokio::test]
async fn bearer_and_header_auth_are_sent_and_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let key = dir.path().join("key");
    std::fs::write(&token, "s3cr3t-token\n").unwrap();
    std::fs::write(&key, "k3y-value").unwrap();
    let bearer = serve(|r| {
        if r.header("authorization") == Some("Bearer s3cr3t-token") {
            Reply::ok(b"ok")
        } else {
            Reply::status(401)
        }
    })
    .await;
    let keyed = serve(|_| Reply::status(500)).await;
    let mut a = http_source("bearer", bearer.url("/${name}"));
    a["auth"] = json!({ "type": "bearer", "tokenFile": token.to_str().unwrap() });
    let mut b = http_source("keyed", keyed.url("/${name}"));
    b["auth"] =
        json!({ "type": "header", "name": "X-Api-Key", "valueFile": key.to_str().unwrap() });
    let cfg = config(
        json!([
            { "name": "videos", "matcher": "^/v/(?P<name>.+)$", "sources": [a] },
            { "name": "keyed", "matcher": "^/k/(?P<name>.+)$", "sources": [b] },
        ]),
        json!({}),
    );
    let h = harness(&cfg);
    h.origins.stat(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(
        bearer.requests()[0].header("authorization"),
        Some("Bearer s3cr3t-token")
    );
    let err = h.origins.fetch(&h.route("/k/a.mp4")).await.unwrap_err();
    assert_eq!(keyed.requests()[0].header("x-api-key"), Some("k3y-value"));
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("k3y-value") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_naming_the_source_and_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "wrong-token").unwrap();
    let s1 = serve(|_| Reply::status(401)).await;
    let s2 = serve(|_| Reply::ok(b"x")).await;
    let mut a = http_source("private", s1.url("/${name}"));
    a["auth"] = json!({ "type": "bearer", "tokenFile": token.to_str().unwrap() });
    let cfg = config(
        http_origin(vec![a, http_source("public", s2.url("/${name}"))]),
        json!({ "resilience": resilience(3, 100, 10) }),
    );
    let h = harness(&cfg);
    let err = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap_err();
    assert!(
        matches!(&err, OriginError::Auth { source, status: 401, .. } if source == "private"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"private\"") && msg.contains("credentials"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-token"));
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(err.code(), "source_auth");
    assert_eq!(s1.requests().len(), 1);
    assert_eq!(s2.requests().len(), 0);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = serve(|_| Reply::ok(b"elsewhere")).await;
    let location = target.url("/x");
    let server = serve(move |_| Reply::status(302).header("location", &location)).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let err = h.origins.fetch(&h.route("/v/a.mp4")).await.unwrap_err();
    assert!(
        matches!(err, OriginError::Upstream { status: 302, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("redirect"));
    assert_eq!(target.requests().len(), 0);
}

// ---------- compile errors ----------

#[tokio::test]
async fn compile_errors_name_the_config_path_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "line-one\nline-two").unwrap();
    let missing = dir.path().join("missing");
    let cfg = config(
        json!([{ "name": "videos", "matcher": "^/v/(?P<name>.+)$", "sources": [
            { "kind": "local", "name": "disk", "root": dir.path().join("nope").to_str().unwrap(), "path": "${name}" },
            { "kind": "http", "name": "a", "url": "http://127.0.0.1:9/${name}",
              "auth": { "type": "bearer", "tokenFile": missing.to_str().unwrap() } },
            { "kind": "http", "name": "b", "url": "http://127.0.0.1:9/${name}",
              "auth": { "type": "header", "name": "X-Key", "valueFile": bad.to_str().unwrap() } },
            { "kind": "http", "name": "c", "url": "http://user:pw@127.0.0.1:9/${name}" },
            { "kind": "http", "name": "d", "url": "http://h${name}/x" },
        ]}]),
        json!({}),
    );
    let state = OriginState::new(Arc::new(Metrics::new()), dir.path().join("spool"));
    let Err(errs) = Origins::compile(&cfg, state) else {
        panic!("compile must fail");
    };
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "origins[0].sources[0].root",
            "origins[0].sources[1].auth.tokenFile",
            "origins[0].sources[2].auth.valueFile",
            "origins[0].sources[3].url",
            "origins[0].sources[4].url",
        ]
    );
    let text = errs.to_string();
    assert!(
        !text.contains("line-one") && !text.contains("pw@"),
        "{text}"
    );
}

// ---------- local sources and traversal ----------

fn local_harness(root: &std::path::Path) -> Harness {
    let cfg = config(
        json!([{ "name": "videos", "matcher": "^/v/(?P<name>.+)$", "sources": [
            { "kind": "local", "name": "disk", "root": root.to_str().unwrap(), "path": "${name}" }
        ]}]),
        json!({ "limits": { "maxInputBytes": 1000 } }),
    );
    harness(&cfg)
}

#[tokio::test]
async fn local_files_are_found_with_a_size_and_mtime_validator() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/a.mp4"), b"12345").unwrap();
    let h = local_harness(dir.path());
    let route = h.route("/v/sub/a.mp4");
    let meta = h.origins.stat(&route).await.unwrap();
    assert_eq!(meta.key, "sub/a.mp4");
    assert_eq!(meta.length, Some(5));
    assert!(meta.validator.starts_with("5-"), "{}", meta.validator);
    assert_eq!(meta.content_type.as_deref(), Some("video/mp4"));
    let fetched = h.origins.fetch(&route).await.unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), b"12345");
    let (_, body) = h.origins.open(&route).await.unwrap();
    assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"12345");
    let err = h
        .origins
        .stat(&h.route("/v/sub/missing.mp4"))
        .await
        .unwrap_err();
    assert!(matches!(err, OriginError::NotFound { .. }), "{err}");
    let err = h.origins.stat(&h.route("/v/sub")).await.unwrap_err();
    assert!(
        matches!(err, OriginError::NotFound { .. }),
        "a directory is not a file: {err}"
    );
}

#[tokio::test]
async fn local_files_over_the_limit_are_too_large() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.mp4"), vec![0u8; 1001]).unwrap();
    let h = local_harness(dir.path());
    let route = h.route("/v/big.mp4");
    for err in [
        h.origins.stat(&route).await.unwrap_err(),
        h.origins.fetch(&route).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                OriginError::TooLarge {
                    size: Some(1001),
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn every_traversal_attempt_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(outer.path().join("secret.mp4"), b"secret").unwrap();
    std::fs::write(root.join("inside.mp4"), b"inside").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.mp4"), root.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink(outer.path(), root.join("up")).unwrap();
    std::os::unix::fs::symlink(root.join("inside.mp4"), root.join("alias.mp4")).unwrap();
    let h = local_harness(&root);

    // Refused while decoding the request path.
    for raw in [
        "/v/../secret.mp4",
        "/v/%2e%2e/secret.mp4",
        "/v/%2E%2E/secret.mp4",
        "/v/..%2Fsecret.mp4",
        "/v/%252e%252e/secret.mp4",
        "/v/a\\..\\secret.mp4",
        "/v/a%00.mp4",
    ] {
        let err = h.origins.try_route(raw).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{raw}");
        assert!(h.origins.route(raw).is_none(), "{raw}");
    }

    // Refused by the local source even when a capture carries it.
    let mut route = h.route("/v/inside.mp4");
    for capture in ["../secret.mp4", "/etc/passwd", "a/../../secret.mp4", "a\\b"] {
        route.captures = vec![("name".into(), capture.into())];
        let err = h.origins.stat(&route).await.unwrap_err();
        assert!(
            matches!(err, OriginError::BadPath { .. }),
            "{capture}: {err}"
        );
        let err = h.origins.fetch(&route).await.unwrap_err();
        assert!(
            matches!(err, OriginError::BadPath { .. }),
            "{capture}: {err}"
        );
    }

    // Symlinks that leave the root are refused; one inside the root works.
    for path in ["/v/escape.mp4", "/v/up/secret.mp4"] {
        let err = h.origins.fetch(&h.route(path)).await.unwrap_err();
        assert!(matches!(err, OriginError::BadPath { .. }), "{path}: {err}");
        assert!(!err.to_string().contains(outer.path().to_str().unwrap()));
        assert!(h.origins.open(&h.route(path)).await.is_err());
    }
    let fetched = h.origins.fetch(&h.route("/v/alias.mp4")).await.unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), b"inside");
}

#[tokio::test]
async fn http_captures_cannot_climb_out_of_the_url_prefix() {
    let server = serve(|_| Reply::ok(b"x")).await;
    let cfg = config(
        http_origin(vec![http_source("web", server.url("/raw/${name}"))]),
        json!({}),
    );
    let h = harness(&cfg);
    let mut route = h.route("/v/a.mp4");
    route.captures = vec![("name".into(), "a/../../admin".into())];
    let err = h.origins.stat(&route).await.unwrap_err();
    assert!(matches!(err, OriginError::BadPath { .. }), "{err}");
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn errors_map_to_statuses_and_codes() {
    let o = || "videos".to_string();
    let s = || "web".to_string();
    let cases: Vec<(OriginError, u16, &str, bool)> = vec![
        (OriginError::BadPath { reason: "x" }, 400, "bad_path", false),
        (
            OriginError::NotFound { origin: o() },
            404,
            "source_not_found",
            false,
        ),
        (
            OriginError::TooLarge {
                origin: o(),
                source: s(),
                limit: 1,
                size: None,
            },
            413,
            "source_too_large",
            false,
        ),
        (
            OriginError::Timeout {
                origin: o(),
                source: s(),
                after: Duration::from_secs(1),
            },
            504,
            "source_timeout",
            true,
        ),
        (
            OriginError::Upstream {
                origin: o(),
                source: s(),
                status: 400,
            },
            502,
            "source_error",
            false,
        ),
        (
            OriginError::Network {
                origin: o(),
                source: s(),
                detail: "refused".into(),
            },
            502,
            "source_unreachable",
            true,
        ),
        (
            OriginError::BreakerOpen {
                origin: o(),
                source: s(),
                retry_after: 3,
            },
            503,
            "source_breaker_open",
            true,
        ),
    ];
    for (err, status, code, retryable) in cases {
        assert_eq!(err.status().as_u16(), status, "{err}");
        assert_eq!(err.code(), code);
        assert_eq!(err.retryable(), retryable, "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_source_is_a_network_error_then_the_next_source_serves() {
    // Bind then drop a listener to get a port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let backup = serve(|_| Reply::ok(b"x")).await;
    let cfg = config(
        http_origin(vec![
            http_source("down", format!("http://127.0.0.1:{port}/${{name}}")),
            http_source("backup", backup.url("/${name}")),
        ]),
        json!({ "resilience": resilience(2, 100, 10) }),
    );
    let h = harness(&cfg);
    let meta = h.origins.stat(&h.route("/v/a.mp4")).await.unwrap();
    assert_eq!(meta.source, "backup");
    assert_eq!(h.fetches("down", "error"), 2);
}
