//! Shared harness of the in-process service tests: an [`App`] built from a YAML config in a
//! temp dir, requests driven straight into `service::handle` / `admin::handle`, an in-process
//! HTTP origin that counts and can hold requests, metric parsing, and checks that nothing
//! (files, cache objects, child processes) is left behind.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vr_dataplane::body::{self, Body};
use vr_dataplane::control::app::{App, Settings};
use vr_dataplane::control::runtime::Runtime;
use vr_dataplane::control::sources::file as config;
use vr_dataplane::edge::{admin, service};
use vr_dataplane::fixtures::{self, Fixture};

pub const FFMPEG: &str = "/usr/bin/ffmpeg";
pub const FFPROBE: &str = "/usr/bin/ffprobe";

/// A peer inside the debug network of the test configs.
pub fn local_peer() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

/// A peer outside every configured network (TEST-NET-3).
pub fn remote_peer() -> SocketAddr {
    "203.0.113.9:40000".parse().expect("addr")
}

/// One data plane over a temp dir: `config.yaml`, `media/` (local source root), `work/`
/// (`Settings.work_dir`) and `audit.log`.
pub struct Harness {
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
    pub media: PathBuf,
    pub work: PathBuf,
    pub audit: PathBuf,
}

impl Harness {
    /// Builds the app from `yaml` (relative paths resolve against the temp dir) with
    /// `files` written first, relative to the temp dir (e.g. `media/a.mp4`, `read.token`).
    pub async fn new(yaml: &str, files: &[(&str, &[u8])]) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let media = dir.path().join("media");
        std::fs::create_dir_all(&media).expect("media dir");
        for (name, bytes) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("parent dir");
            }
            std::fs::write(&p, bytes).expect("write file");
        }
        let work = dir.path().join("work");
        let audit = dir.path().join("audit.log");
        let doc = parse(dir.path(), yaml);
        let app = App::new(
            Settings {
                ffmpeg: FFMPEG.into(),
                ffprobe: FFPROBE.into(),
                work_dir: work.clone(),
                audit_log: Some(audit.clone()),
            },
            &doc.config,
            &doc.base,
        )
        .await
        .expect("app builds");
        let rt = Runtime::compile(doc, app.origin_state.clone()).expect("config compiles");
        app.install(rt);
        Harness {
            app,
            dir,
            media,
            work,
            audit,
        }
    }

    /// Compiles `yaml` (against the same temp dir) and swaps it in.
    pub fn install(&self, yaml: &str) {
        let doc = parse(self.dir.path(), yaml);
        let rt = Runtime::compile(doc, self.app.origin_state.clone()).expect("config compiles");
        self.app.install(rt);
    }

    /// Compiles `stable` and `canary` and serves them side by side, the canary taking
    /// `weight_bp` basis points of traffic.
    pub fn install_canary(&self, stable: &str, canary: &str, weight_bp: u32) {
        let compile = |yaml: &str| {
            std::sync::Arc::new(
                Runtime::compile(parse(self.dir.path(), yaml), self.app.origin_state.clone())
                    .expect("config compiles"),
            )
        };
        self.app.install_live(vr_dataplane::control::app::Live {
            stable: compile(stable),
            canary: Some((compile(canary), weight_bp)),
        });
    }

    /// Copies a file into `media/` under `name`.
    pub fn add_media(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.media.join(name);
        std::fs::copy(from, &to).expect("copy fixture");
        to
    }

    /// `GET uri` from the local peer, body read whole.
    pub async fn get(&self, uri: &str) -> Reply {
        self.send(request(Method::GET, uri, &[])).await
    }

    /// Sends `req` from the local peer and reads the body whole.
    pub async fn send(&self, req: Request<()>) -> Reply {
        Reply::read(self.respond(req, local_peer()).await).await
    }

    /// Sends `req` from `peer` and reads the body whole.
    pub async fn send_from(&self, req: Request<()>, peer: SocketAddr) -> Reply {
        Reply::read(self.respond(req, peer).await).await
    }

    /// The service's response with its body unread.
    pub async fn respond(&self, req: Request<()>, peer: SocketAddr) -> Response<Body> {
        service::handle(&self.app, req, peer).await
    }

    /// Sends `req` to the admin handler from the local peer.
    pub async fn admin(&self, req: Request<()>) -> Reply {
        Reply::read(admin::handle(&self.app, req, local_peer()).await).await
    }

    /// The Prometheus text.
    pub fn metrics(&self) -> String {
        self.app.metrics.encode()
    }

    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels)
    }

    /// Objects held by every cache layer together.
    pub fn cache_objects(&self) -> u64 {
        self.app.cache.stats().iter().map(|l| l.objects).sum()
    }

    /// Entries in the work dir (spooled sources and outputs).
    pub fn work_entries(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.work) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The audit log as JSON records.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Waits (with a deadline) until the work dir is empty, no ffmpeg/ffprobe child of this
    /// process remains and no flight is in progress; panics naming what is left.
    pub async fn assert_nothing_left(&self) {
        let ok = wait_until(Duration::from_secs(10), || {
            self.work_entries().is_empty()
                && media_children().is_empty()
                && self.app.flights.is_empty()
        })
        .await;
        assert!(
            ok,
            "left behind: work files {:?}, children {:?}, flights {}",
            self.work_entries(),
            media_children(),
            self.app.flights.len()
        );
    }
}

fn parse(base: &Path, yaml: &str) -> config::Document {
    config::parse(yaml.as_bytes(), &base.join("config.yaml")).expect("config parses")
}

/// A request with headers.
pub fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request")
}

/// A response with its body read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn read(resp: Response<Body>) -> Reply {
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .expect("body reads without error")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn cache_status(&self) -> &str {
        self.header("x-cache-status").unwrap_or_default()
    }
}

/// Sum of every sample of `name` in an OpenMetrics text whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let all = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if all {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; whether it held.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ffmpeg and ffprobe processes whose parent is this test process, as `(pid, comm)`.
pub fn media_children() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(me) && (comm == "ffmpeg" || comm == "ffprobe") {
            out.push((pid, comm.to_owned()));
        }
    }
    out
}

/// Serializes tests that count child processes or metrics shared by a whole binary.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

/// A media fixture, generated once per target dir and reused (tests copy it into their own
/// media dir).
pub async fn fixture(f: Fixture) -> PathBuf {
    static GEN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    let _g = GEN.get_or_init(|| tokio::sync::Mutex::new(())).lock().await;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vr-fixtures");
    let name = format!("{f:?}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>();
    let done = root.join(&name);
    if let Some(existing) = std::fs::read_dir(&done)
        .ok()
        .and_then(|mut rd| rd.next())
        .and_then(|e| e.ok())
    {
        return existing.path();
    }
    std::fs::create_dir_all(&root).expect("fixture root");
    let tmp = tempfile::tempdir_in(&root).expect("fixture temp dir");
    let made = fixtures::generate(Path::new(FFMPEG), tmp.path(), f)
        .await
        .expect("fixture generates");
    let file_name = made.file_name().expect("file name").to_owned();
    // Keep only the fixture itself, then move the directory into place in one step.
    for e in std::fs::read_dir(tmp.path()).expect("read").flatten() {
        if e.file_name() != file_name {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &done).is_err() {
        // Another test binary put the same fixture in place first; use that one.
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(done.join(&file_name).is_file(), "fixture {name} in place");
    }
    done.join(file_name)
}

/// ffprobe's JSON for a file's streams and format.
pub async fn ffprobe(path: &Path) -> serde_json::Value {
    let out = tokio::process::Command::new(FFPROBE)
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// ffprobe's JSON for bytes (written to a temp file first).
pub async fn ffprobe_bytes(bytes: &[u8]) -> serde_json::Value {
    let f = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(f.path(), bytes).expect("write");
    ffprobe(f.path()).await
}

/// The first stream of `kind` (`video`/`audio`) in ffprobe JSON.
pub fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    probe["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == kind)
}

/// How the test origin answers a request.
#[derive(Clone)]
pub enum Behavior {
    /// 200 with these bytes and an ETag; `length` sends `Content-Length` (else chunked, and
    /// HEAD gives no length).
    Serve { body: Bytes, length: bool },
    /// Accept the request and never answer.
    Hang,
}

/// An in-process HTTP origin on 127.0.0.1 that counts requests per method and can hold GETs
/// until released.
pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<OriginInner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct OriginInner {
    behavior: std::sync::Mutex<Behavior>,
    gets: AtomicUsize,
    heads: AtomicUsize,
    gate: tokio::sync::watch::Sender<bool>,
}

struct OriginHandler(Arc<OriginInner>);

impl vr_dataplane::edge::server::Handler for OriginHandler {
    async fn handle(&self, req: Request<()>, _peer: SocketAddr) -> Response<Body> {
        let s = &self.0;
        let head = req.method() == Method::HEAD;
        if head {
            s.heads.fetch_add(1, Ordering::SeqCst);
        } else {
            s.gets.fetch_add(1, Ordering::SeqCst);
        }
        let behavior = s.behavior.lock().expect("lock").clone();
        match behavior {
            Behavior::Hang => std::future::pending().await,
            Behavior::Serve {
                body: bytes,
                length,
            } => {
                if !head {
                    let mut open = s.gate.subscribe();
                    let _ = open.wait_for(|o| *o).await;
                }
                let mut b = Response::builder()
                    .header("content-type", "video/mp4")
                    .header("etag", "\"origin-v1\"");
                if length {
                    b = b.header("content-length", bytes.len().to_string());
                }
                let out = if head {
                    body::empty()
                } else if length {
                    body::full(bytes)
                } else {
                    // No length: a chunked stream of 1 KiB pieces.
                    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
                        .chunks(1024)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    body::stream(futures_util::stream::iter(chunks))
                };
                b.body(out).expect("response")
            }
        }
    }
}

impl Origin {
    /// Starts an origin answering every request with `behavior`; GETs flow (gate open).
    pub async fn start(behavior: Behavior) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (gate, _) = tokio::sync::watch::channel(true);
        let state = Arc::new(OriginInner {
            behavior: std::sync::Mutex::new(behavior),
            gets: AtomicUsize::new(0),
            heads: AtomicUsize::new(0),
            gate,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handler = Arc::new(OriginHandler(state.clone()));
        tokio::spawn(vr_dataplane::edge::server::serve(
            listener,
            handler,
            async move {
                let _ = stopped.await;
            },
        ));
        Origin {
            addr,
            state,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn gets(&self) -> usize {
        self.state.gets.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> usize {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// Holds every GET (after counting it) until [`Origin::release`].
    pub fn hold(&self) {
        self.state.gate.send_replace(false);
    }

    pub fn release(&self) {
        self.state.gate.send_replace(true);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.release();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A TCP listener on 127.0.0.1 that only counts connection attempts (for SSRF checks).
pub struct Tripwire {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    pub async fn start() -> Tripwire {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((_conn, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        Tripwire { addr, hits, task }
    }

    pub fn connections(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config with the local origin `videos` over `media/` (`/videos/<file>`), the origin
/// `fallback` over the same files with `onTransformError: serveOriginal` (`/fallback/<file>`),
/// an HTTP origin `remote` (`/remote/<file>` → `<base>/raw/<file>`) when `remote` is given,
/// the derivative `mobile` (320×180), then `extra` (top-level YAML).
pub fn media_config(remote: Option<&str>, extra: &str) -> String {
    let remote = remote
        .map(|base| {
            format!(
                "  - name: remote\n    matcher: '^/remote/(?P<file>[A-Za-z0-9_.-]+)$'\n    sources:\n      - kind: http\n        name: web\n        url: '{base}/raw/${{file}}'\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"revision: r1
origins:
  - name: videos
    matcher: '^/videos/(?P<file>[A-Za-z0-9_.-]+)$'
    sources:
      - kind: local
        name: media
        root: media
        path: '${{file}}'
  - name: fallback
    matcher: '^/fallback/(?P<file>[A-Za-z0-9_.-]+)$'
    onTransformError: serveOriginal
    sources:
      - kind: local
        name: media
        root: media
        path: '${{file}}'
{remote}derivatives:
  mobile: {{ width: 320, height: 180, quality: low }}
{extra}"#
    )
}
