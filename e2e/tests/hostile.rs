//! Suite `hostile` (issue 15): every attack of the threat model (`docs/SECURITY.md`) replayed
//! against the release `vr-dataplane` with real ffmpeg, and the operator rows against a real
//! kube-apiserver. Run with `e2e/run hostile`.
//!
//! One test per row of the issue; each runs all of its scenarios, prints one line per scenario
//!
//! `HOSTILE <name> outcome=… safe=yes|NO peak_rss=… dp_rss=… bytes=… normal=ok/n p50 p95 max | …`
//!
//! and fails at the end if any scenario still reaches the unsafe outcome. `peak_rss` is the
//! largest ffmpeg/ffprobe child, `dp_rss` the data plane; `bytes` is what the row is about (origin
//! bytes, output bytes, audit-log growth, disk); `normal` times requests a well-behaved client
//! made during the attack. Every attack is bounded in count and time, runs against 127.0.0.1
//! only, and the data plane sits in a 6 GiB memory cgroup with a watchdog
//! (`vr_e2e::hostile`).

use anyhow::{ensure, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vr_e2e::hostile::*;
use vr_e2e::*;

const ADMIN_TOKEN: &str = "hostile-admin-token-0123456789";

/// Media made once per test with ffmpeg lavfi.
struct Media {
    dir: tempfile::TempDir,
}

impl Media {
    /// `names`: any of `tiny` (2×2), `tall` (16×48), `sample` (640×360 with audio, 4 s),
    /// `long` (640×360, 20 s).
    fn make(names: &[&str]) -> Result<Media> {
        let dir = tempfile::Builder::new()
            .prefix("vr-hostile-media-")
            .tempdir()?;
        for n in names {
            let out = dir.path().join(format!("{n}.mp4"));
            match *n {
                "tiny" => lavfi_video(&out, "2x2", 3, false, &[])?,
                "tall" => lavfi_video(&out, "16x48", 3, false, &[])?,
                "sample" => lavfi_video(&out, "640x360", 4, true, &[])?,
                "long" => lavfi_video(&out, "640x360", 20, true, &[])?,
                other => anyhow::bail!("unknown medium {other}"),
            }
        }
        Ok(Media { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.path().join(format!("{name}.mp4")))?)
    }
}

/// The sections of a data-plane config; `render` writes the admin token next to it.
struct Cfg {
    media: PathBuf,
    origin_port: u16,
    params: String,
    limits: String,
    cache: String,
    signing: String,
    extra_origins: String,
}

impl Cfg {
    fn new(media: &Media, origin_port: u16) -> Cfg {
        Cfg {
            media: media.path().to_path_buf(),
            origin_port,
            params: "{ validation: strict, allowArbitrary: true }".into(),
            limits: "{ maxConcurrentTransforms: 2, queueDepth: 8, transformTimeoutSeconds: 60 }"
                .into(),
            cache: "{ memory: { maxBytes: 67108864, maxObjectBytes: 16777216 } }".into(),
            signing: String::new(),
            extra_origins: String::new(),
        }
    }

    fn render(&self, dir: &Path) -> Result<String> {
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets)?;
        let token = secrets.join("admin-token");
        if !token.exists() {
            std::fs::write(&token, ADMIN_TOKEN)?;
        }
        Ok(format!(
            r#"revision: hostile
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[A-Za-z0-9_-]+)\.(?P<ext>[a-z0-9]{{2,4}})$'
    sources:
      - kind: local
        name: media
        root: {media}
        path: '${{name}}.${{ext}}'
  - name: web
    matcher: '^/web/(?P<name>[A-Za-z0-9_-]+)\.(?P<ext>[a-z0-9]{{2,4}})$'
    sources:
      - kind: http
        name: origin
        url: 'http://127.0.0.1:{port}/${{name}}.${{ext}}'
{extra}derivatives:
  thumb: {{ mode: frame, width: 160, height: 90, format: jpg, time: 1s }}
  mobile: {{ width: 320, height: 180, quality: low }}
params: {params}
limits: {limits}
cache: {cache}
{signing}admin:
  tokens:
    - name: ops
      tokenFile: {token}
      scopes: [admin]
"#,
            media = self.media.display(),
            port = self.origin_port,
            extra = self.extra_origins,
            params = self.params,
            limits = self.limits,
            cache = self.cache,
            signing = self.signing,
            token = token.display(),
        ))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A reply, its body counted (not kept beyond 64 KiB: some attacks answer with GiBs).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    len: u64,
    head: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.head)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Result<Reply> {
    let mut r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let mut len = 0u64;
    let mut head = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        len += chunk.len() as u64;
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 * 1024 - head.len())]);
        }
    }
    Ok(Reply {
        status,
        headers,
        len,
        head,
    })
}

async fn get(url: &str) -> Result<Reply> {
    send(client().get(url)).await
}

/// A data plane with `sample.mp4`'s thumbnail warmed as the normal request.
async fn dataplane(dir: &Path, cfg: &Cfg, extra: &[String]) -> Result<(DataPlane, String)> {
    let dp = DataPlane::file(dir, &cfg.render(dir)?, extra).await?;
    let normal = dp.url("/videos/sample.mp4?derivative=thumb");
    let r = get(&normal).await?;
    ensure!(r.status == 200, "warming the normal request: {}", r.status);
    Ok((dp, normal))
}

fn tempdir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("vr-hostile-").tempdir()?)
}

// =============================================================================================
// Row 1: unbounded output

/// Runs `uri` against a fresh data plane, sampling memory; safe when refused with 400/422 naming
/// one of `params` before any ffmpeg ran big (child peak < 512 MiB).
async fn output_attack(media: &Media, name: &str, uri: &str, params: &[&str]) -> Result<Finding> {
    let dir = tempdir()?;
    let (dp, normal) = dataplane(dir.path(), &Cfg::new(media, 1), &[]).await?;
    let sampler = Sampler::start(dp.pid());
    let prober = Prober::start(normal);
    let t = Instant::now();
    let r = get(&dp.url(uri)).await;
    let secs = t.elapsed().as_secs_f64();
    let normal = prober.stop().await;
    let usage = sampler.stop();
    let mut f = Finding::new(name).usage(&usage);
    f.normal = Some(normal);
    match r {
        Ok(r) => {
            let named = params.iter().any(|p| r.text().contains(p));
            f.bytes = r.len;
            f.outcome = format!(
                "{}:{}",
                r.status,
                if r.code().is_empty() {
                    "output"
                } else {
                    "json"
                }
            );
            f.safe =
                (r.status == 400 || r.status == 422) && named && usage.peak_child_rss < 512 << 20;
            let ffmpeg = usage
                .children
                .values()
                .filter(|c| c.name == "ffmpeg")
                .count();
            f.detail = format!(
                "{uri} answered {} {} in {secs:.1}s, {} output bytes, ffmpeg runs={ffmpeg}",
                r.status,
                r.code(),
                r.len,
            );
        }
        Err(e) => {
            f.outcome = "response-cut".into();
            f.detail = format!("{uri} failed after {secs:.1}s: {e:#}");
        }
    }
    f.detail = format!(
        "{} [{}{}]; safe: 400/422 naming {params:?} before ffmpeg starts",
        f.detail,
        dp.cap_report(),
        if usage.watchdog {
            ",WATCHDOG killed children above 6 GiB"
        } else {
            ""
        }
    );
    Ok(f)
}

/// Whether every ffmpeg/ffprobe child seen had a finite address-space and CPU-time limit.
async fn child_limits(media: &Media) -> Result<Finding> {
    let dir = tempdir()?;
    let (dp, _) = dataplane(dir.path(), &Cfg::new(media, 1), &[]).await?;
    let mut f = Finding::new("1-child-rlimits");
    // Sample the limits of the ffmpeg child of an ordinary transform while it runs.
    let url = dp.url("/videos/sample.mp4?width=320&height=180");
    let task = tokio::spawn(async move { get(&url).await });
    let mut limits = None;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) && !task.is_finished() {
        for c in children(dp.pid()) {
            // Only once the child is ffmpeg/ffprobe itself (a wrapper may still be setting up).
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if !matches!(comm.trim(), "ffmpeg" | "ffprobe") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{c}/limits")) {
                limits = Some(text);
            }
        }
        if limits.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = task.await;
    let Some(text) = limits else {
        f.outcome = "child-not-observed".into();
        f.detail = "no ffmpeg/ffprobe child was seen to read its limits".into();
        return Ok(f);
    };
    let limit = |key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(key))
            .map(|l| {
                l[key.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("?")
                    .to_owned()
            })
            .unwrap_or_else(|| "?".into())
    };
    let (cpu, addr) = (limit("Max cpu time"), limit("Max address space"));
    f.outcome = format!("cpu={cpu},as={addr}");
    f.safe = cpu != "unlimited" && addr != "unlimited" && cpu != "?" && addr != "?";
    f.detail = "RLIMIT_CPU and RLIMIT_AS of an ffmpeg child (/proc/PID/limits); safe: both finite (or a per-child memory cgroup)".into();
    Ok(f)
}

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row1_unbounded_output() {
    let mut row = Row::new("1 unbounded output");
    let media = Media::make(&["tiny", "tall", "sample"]).expect("media");
    for (name, uri, params) in [
        (
            "1-derived-side-2x2-to-8192",
            "/videos/tiny.mp4?width=8192&duration=1",
            &["width", "height"][..],
        ),
        (
            "1-frame-png-16x48-to-8192",
            "/videos/tall.mp4?mode=frame&format=png&width=8192",
            &["width", "height"][..],
        ),
        (
            "1-cover-8192x8192",
            "/videos/sample.mp4?width=8192&height=8192&fit=cover&duration=1",
            &["width", "height", "fit"][..],
        ),
        (
            "1-spritesheet-16384",
            "/videos/sample.mp4?mode=spritesheet&width=8192&height=8192&fit=cover&imageCount=4",
            &["width", "height", "imageCount"][..],
        ),
    ] {
        let r = output_attack(&media, name, uri, params).await;
        row.record_result(name, r);
    }
    let r = child_limits(&media).await;
    row.record_result("1-child-rlimits", r);
    row.finish();
}

// =============================================================================================
// Row 2: originals downloaded whole for a byte

/// A 40 MiB original: 8 s of H.264 lavfi noise (~45 Mbit/s), resized to exactly 40 MiB.
/// Originals are relayed as bytes, never decoded, so only the size matters.
fn big_file(media: &Media) -> Result<Vec<u8>> {
    let out = media.path().join("big.mp4");
    lavfi_video(
        &out,
        "640x360",
        8,
        false,
        &[
            "-vf",
            "noise=alls=60:allf=t",
            "-b:v",
            "45M",
            "-maxrate",
            "45M",
            "-bufsize",
            "90M",
        ],
    )?;
    let mut bytes = std::fs::read(&out)?;
    bytes.resize(40 << 20, 0);
    Ok(bytes)
}

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row2_originals_downloaded_whole_for_a_byte() {
    let mut row = Row::new("2 originals downloaded whole");
    let media = Media::make(&["sample"]).expect("media");
    let big = big_file(&media).expect("big file");
    let size = big.len() as u64;
    for (name, parallel, head) in [
        ("2-range-0-0-x10", 10usize, false),
        ("2-head-original", 1, true),
    ] {
        let r: Result<Finding> = async {
            let origin = Origin::start().await?;
            origin.put("big.mp4", big.clone());
            let dir = tempdir()?;
            let (dp, normal) = dataplane(dir.path(), &Cfg::new(&media, origin.port), &[]).await?;
            let sampler = Sampler::start(dp.pid());
            let prober = Prober::start(normal);
            let mut tasks = Vec::new();
            for _ in 0..parallel {
                let url = dp.url("/web/big.mp4");
                tasks.push(tokio::spawn(async move {
                    let c = client();
                    if head {
                        send(c.head(&url)).await
                    } else {
                        send(c.get(&url).header("range", "bytes=0-0")).await
                    }
                }));
            }
            let mut statuses = Vec::new();
            let mut client_bytes = 0;
            for t in tasks {
                let r = t.await??;
                statuses.push(r.status);
                client_bytes += r.len;
            }
            let normal = prober.stop().await;
            let usage = sampler.stop();
            let mut f = Finding::new(name).usage(&usage);
            f.normal = Some(normal);
            f.bytes = origin.bytes();
            let budget = parallel as u64 * (256 << 10);
            f.safe = f.bytes <= budget
                && statuses.iter().all(|s| if head { *s == 200 } else { *s == 206 });
            f.outcome = format!("status={statuses:?},origin_bytes={}", f.bytes).replace(' ', "");
            f.detail = format!(
                "{} {}x /web/big.mp4 ({size} B at an HTTP origin): client got {client_bytes} B, origin sent {} B in {} requests; safe: origin bytes <= {budget} (range forwarded, HEAD from metadata)",
                if head { "HEAD" } else { "GET Range: bytes=0-0" },
                parallel,
                f.bytes,
                origin.requests()
            );
            Ok(f)
        }
        .await;
        row.record_result(name, r);
    }
    let r = s3_original_ranges(&media, &big).await;
    row.record_result("2-range-0-0-x10-s3-no-presign", r);
    row.finish();
}

/// Row 2 for an S3 source without presigning: 10 parallel 1-byte ranges of a 40 MiB object,
/// the S3 bytes counted by a proxy in front of s3s-fs.
async fn s3_original_ranges(media: &Media, big: &[u8]) -> Result<Finding> {
    use vr_e2e::s3::{CountingProxy, S3Server, ACCESS_KEY, SECRET_KEY};
    ensure!(
        vr_e2e::s3::s3s_fs().exists(),
        "s3s-fs is not installed (e2e/s3/install.sh)"
    );
    let dir = tempdir()?;
    let s3 = S3Server::start(dir.path()).await?;
    s3.bucket("media")?;
    let obj = dir.path().join("big.mp4");
    std::fs::write(&obj, big)?;
    s3.put_file("media", "raw/big.mp4", &obj)?;
    let proxy = CountingProxy::start(s3.port).await?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets)?;
    std::fs::write(secrets.join("s3-id"), ACCESS_KEY)?;
    std::fs::write(secrets.join("s3-secret"), SECRET_KEY)?;
    let mut cfg = Cfg::new(media, 1);
    cfg.extra_origins = format!(
        "  - name: bucket\n    matcher: '^/s3/(?P<name>[a-z0-9]+)\\.mp4$'\n    sources:\n      - kind: s3\n        name: store\n        bucket: media\n        endpoint: http://127.0.0.1:{}\n        forcePathStyle: true\n        key: 'raw/${{name}}.mp4'\n        credentials: {{ accessKeyIdFile: {}, secretAccessKeyFile: {} }}\n        presign: {{ transformInput: false, redirectOriginals: false }}\n",
        proxy.port,
        secrets.join("s3-id").display(),
        secrets.join("s3-secret").display()
    );
    let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
    let sampler = Sampler::start(dp.pid());
    let prober = Prober::start(normal);
    let before = proxy.bytes();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let url = dp.url("/s3/big.mp4");
        tasks.push(tokio::spawn(async move {
            send(client().get(&url).header("range", "bytes=0-0")).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await??.status);
    }
    let normal = prober.stop().await;
    let usage = sampler.stop();
    let mut f = Finding::new("2-range-0-0-x10-s3-no-presign").usage(&usage);
    f.normal = Some(normal);
    f.bytes = proxy.bytes() - before;
    f.safe = f.bytes <= 10 * (256 << 10) && statuses.iter().all(|s| *s == 206);
    f.outcome = format!("status={statuses:?},s3_bytes={}", f.bytes).replace(' ', "");
    f.detail = format!(
        "GET Range: bytes=0-0 10x /s3/big.mp4 ({} B object, S3 source without presigning, s3s-fs): S3 sent {} B; safe: <= 2621440 (range forwarded as a ranged GetObject)",
        big.len(),
        f.bytes
    );
    Ok(f)
}

// =============================================================================================
// Row 3 (and the workload parts of row 9): escalation through the operator

const HOSTILE_IMAGE: &str = "registry.invalid/attacker/miner:1";

fn vrc(ns: &str, name: &str, origins: &str, workload: &str) -> String {
    format!(
        r#"apiVersion: videoresizer.io/v1alpha1
kind: VideoResizerConfig
metadata:
  name: {name}
  namespace: {ns}
spec:
  origins:
{origins}  rollout:
    steps: []
  workload:
    minReplicas: 1
    maxReplicas: 2
{workload}"#
    )
}

fn local_origin(root: &str) -> String {
    format!(
        r#"    - name: files
      matcher: '^/files/(?P<name>[A-Za-z0-9_./-]+)$'
      sources:
        - name: disk
          kind: local
          local:
            root: {root}
            path: '${{name}}'
"#
    )
}

fn operator(cp: &ControlPlane) -> Result<Proc> {
    let port = free_port()?;
    Proc::spawn(
        "vr-operator",
        &binary("vr-operator"),
        &[
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
            "--lease-namespace".into(),
            "vr-system".into(),
            "--identity".into(),
            "hostile-op".into(),
            "--log-format".into(),
            "text".into(),
        ],
        &[
            ("KUBECONFIG", cp.operator_kubeconfig().display().to_string()),
            ("RUST_LOG", "info".into()),
        ],
        cp.dir().join("operator.log"),
    )
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let out = cp.kubectl_raw(&a).ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Applies a config and waits until its Deployment exists or its status says why not;
/// returns (apply error, Deployment, status conditions text).
async fn apply_and_settle(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    yaml: &str,
) -> (Option<String>, Option<Value>, String) {
    if let Err(e) = cp.apply(yaml) {
        return (Some(format!("{e:#}")), None, String::new());
    }
    let deploy = format!("{name}-dataplane");
    let t = Instant::now();
    loop {
        let d = get_json(cp, &["deployment", &deploy, "-n", ns]);
        let v = get_json(cp, &["videoresizerconfig", name, "-n", ns]);
        let conds = v
            .as_ref()
            .map(|v| v["status"]["conditions"].to_string())
            .unwrap_or_default();
        let settled_without = conds.contains("\"False\"") && t.elapsed() > Duration::from_secs(5);
        if d.is_some() || settled_without || t.elapsed() > Duration::from_secs(60) {
            // Give a just-created Deployment's first apply a moment to complete.
            return (None, d, conds);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn short(s: &str) -> String {
    s.chars().take(300).collect::<String>().replace('\n', " ")
}

#[tokio::test]
#[ignore = "external: kube-apiserver, helm (e2e/run hostile)"]
async fn row3_escalation_through_the_operator() {
    let mut row = Row::new("3 escalation through the operator");
    let cp = ControlPlane::start().expect("control plane");
    let ns = cp.namespace().expect("namespace");
    let _op = operator(&cp).expect("operator");

    // 3-operator-cluster-rbac: what the operator's identity may do outside its namespaces.
    let r: Result<Finding> = (|| {
        let sa = "system:serviceaccount:vr-system:vr-operator";
        let mut yes = Vec::new();
        for (verb, res) in [
            ("patch", "deployments"),
            ("create", "rolebindings"),
            ("delete", "configmaps"),
            ("create", "serviceaccounts"),
        ] {
            let out =
                cp.kubectl_raw(&["auth", "can-i", verb, res, "-n", "kube-system", "--as", sa])?;
            if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
                yes.push(format!("{verb}-{res}"));
            }
        }
        let helm = Command::new(cp.k8s_bin("helm"))
            .args(["template", "vr"])
            .arg(repo().join("charts/video-resizer"))
            .args(["--namespace", "vr-system"])
            .env("HELM_CACHE_HOME", cp.dir().join("helm/cache"))
            .env("HELM_CONFIG_HOME", cp.dir().join("helm/config"))
            .env("HELM_DATA_HOME", cp.dir().join("helm/data"))
            .output()?;
        ensure!(
            helm.status.success(),
            "helm template: {}",
            String::from_utf8_lossy(&helm.stderr)
        );
        let rendered = String::from_utf8_lossy(&helm.stdout);
        let chart_cluster_role = rendered
            .split("\n---")
            .any(|d| d.contains("kind: ClusterRole\n") && d.contains("deployments"));
        let mut f = Finding::new("3-operator-cluster-rbac");
        f.safe = yes.is_empty() && !chart_cluster_role;
        f.outcome = format!(
            "kube-system:{},chart-default:{}",
            if yes.is_empty() {
                "none".to_string()
            } else {
                yes.join("+")
            },
            if chart_cluster_role {
                "ClusterRole"
            } else {
                "Role"
            }
        );
        f.detail = "kubectl auth can-i as the operator's ServiceAccount in kube-system (deploy/operator-rbac.yaml), and the kind the chart's default values grant; safe: nothing in kube-system, namespace-scoped Role by default".into();
        Ok(f)
    })();
    row.record_result("3-operator-cluster-rbac", r);

    // The configs of each attack, all applied before any is judged (one reconcile wait).
    cp.kubectl(&[
        "create",
        "secret",
        "generic",
        "db-credentials",
        "-n",
        &ns,
        "--from-literal=password=hunter2",
    ])
    .expect("secret");
    cp.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: theirs-dataplane
  namespace: {ns}
  labels: {{ app: theirs }}
spec:
  replicas: 1
  selector: {{ matchLabels: {{ app: theirs }} }}
  template:
    metadata: {{ labels: {{ app: theirs }} }}
    spec:
      containers: [{{ name: app, image: "example.invalid/their-app:1" }}]
---
apiVersion: v1
kind: Service
metadata:
  name: theirs-dataplane
  namespace: {ns}
  labels: {{ app: theirs }}
spec:
  selector: {{ app: theirs }}
  ports: [{{ name: db, port: 5432, targetPort: 5432 }}]
"#
    ))
    .expect("foreign deployment");
    let safe_root = "/srv/media";
    let plain = vrc(&ns, "plain", &local_origin(safe_root), "");
    let img = vrc(
        &ns,
        "img",
        &local_origin(safe_root),
        &format!("    image: {HOSTILE_IMAGE}\n"),
    );
    let sec = vrc(
        &ns,
        "sec",
        r#"    - name: api
      matcher: '^/api/(?P<name>[a-z0-9]+)\.mp4$'
      sources:
        - name: upstream
          kind: http
          http:
            url: 'http://media.invalid/${name}.mp4'
            auth:
              type: bearer
              secretRef: { name: db-credentials, key: password }
"#,
        "",
    );
    let root = vrc(&ns, "root", &local_origin("/etc/video-resizer/secrets"), "");
    let theirs = vrc(&ns, "theirs", &local_origin(safe_root), "");

    let (plain_err, plain_d, _) = apply_and_settle(&cp, &ns, "plain", &plain).await;
    if let Some(e) = &plain_err {
        eprintln!("plain config refused: {e}");
    }

    // 3-image-from-cr
    let (err, d, conds) = apply_and_settle(&cp, &ns, "img", &img).await;
    let image = d.as_ref().map(|d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    });
    let mut f = Finding::new("3-image-from-cr");
    f.safe = image.as_deref() != Some(HOSTILE_IMAGE);
    f.outcome = match (&err, &image) {
        (Some(_), _) => "apply-refused".into(),
        (None, Some(i)) if i == HOSTILE_IMAGE => "deployment-runs-cr-image".into(),
        (None, Some(_)) => "operator-image-kept".into(),
        (None, None) => "no-deployment".into(),
    };
    f.detail = format!(
        "spec.workload.image={HOSTILE_IMAGE} → Deployment image {image:?}; apply: {}; conditions: {}; safe: the image comes from the operator's configuration only",
        err.as_deref().map(short).unwrap_or_else(|| "ok".into()),
        short(&conds)
    );
    row.record(f);

    // 3-secret-mount-from-cr
    let (err, d, conds) = apply_and_settle(&cp, &ns, "sec", &sec).await;
    let mounted = d.as_ref().is_some_and(|d| {
        d["spec"]["template"]["spec"]["volumes"]
            .to_string()
            .contains("db-credentials")
    });
    let mut f = Finding::new("3-secret-mount-from-cr");
    f.safe = !mounted;
    f.outcome = match (&err, mounted) {
        (Some(_), _) => "apply-refused".into(),
        (None, true) => "unlabelled-secret-mounted".into(),
        (None, false) => "not-mounted".into(),
    };
    f.detail = format!(
        "an http source's auth.secretRef names Secret db-credentials (not meant for the data plane) → mounted in the pod: {mounted}; conditions: {}; safe: only Secrets the operator's configuration allows (e.g. labelled videoresizer.io/mountable) are mounted, others refused naming the field",
        short(&conds)
    );
    row.record(f);

    // 3-local-root-at-secrets: what the operator renders (the data plane half is row 9-…).
    let (err, _, conds) = apply_and_settle(&cp, &ns, "root", &root).await;
    let rendered = get_json(
        &cp,
        &[
            "configmaps",
            "-n",
            &ns,
            "-l",
            "videoresizer.io/config=root,videoresizer.io/role=revision",
        ],
    )
    .map(|v| v["items"].to_string())
    .unwrap_or_default();
    let reaches = rendered.contains("/etc/video-resizer/secrets");
    let mut f = Finding::new("3-local-root-at-secrets-mount");
    f.safe = !reaches;
    f.outcome = match (&err, reaches) {
        (Some(_), _) => "apply-refused".into(),
        (None, true) => "rendered-into-revision".into(),
        (None, false) => "not-rendered".into(),
    };
    f.detail = format!(
        "local.root=/etc/video-resizer/secrets (where Secrets are mounted) rendered into a revision ConfigMap: {reaches}; conditions: {}; safe: refused naming spec.origins[0].sources[0].local.root",
        short(&conds)
    );
    row.record(f);

    // 3-foreign-object-adopted: a Deployment and a Service the operator did not create, under
    // the names it uses. (The Deployment's selector is immutable, so the API server itself
    // refuses a takeover of it; the Service has no such protection.)
    let _ = apply_and_settle(&cp, &ns, "theirs", &theirs).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = get_json(&cp, &["deployment", "theirs-dataplane", "-n", &ns]);
    let (image, owners) = d
        .as_ref()
        .map(|d| {
            (
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                d["metadata"]["ownerReferences"].to_string(),
            )
        })
        .unwrap_or_default();
    let svc = get_json(&cp, &["service", "theirs-dataplane", "-n", &ns]).unwrap_or(Value::Null);
    let svc_selector = svc["spec"]["selector"].to_string();
    let svc_owners = svc["metadata"]["ownerReferences"].to_string();
    let deploy_taken =
        image != "example.invalid/their-app:1" || owners.contains("VideoResizerConfig");
    let svc_taken = !svc_selector.contains("theirs\"")
        || svc_selector.contains("video-resizer")
        || svc_owners.contains("VideoResizerConfig");
    let mut f = Finding::new("3-foreign-object-adopted");
    f.safe = !deploy_taken && !svc_taken;
    f.outcome = format!(
        "deployment:{},service:{}",
        if deploy_taken {
            "overwritten"
        } else {
            "kept(immutable-selector)"
        },
        if svc_taken { "overwritten" } else { "kept" }
    );
    f.detail = format!(
        "objects of the namespace's own app named theirs-dataplane, after config `theirs` applied: Deployment image={image} owners={}; Service selector={} owners={}; safe: both untouched, the config reports a name conflict",
        short(&owners),
        short(&svc_selector),
        short(&svc_owners)
    );
    row.record(f);

    // 3-vrctl-patches-spec: the chart's vrctl ClusterRole bound in the namespace.
    let r: Result<Finding> = (|| {
        let helm = Command::new(cp.k8s_bin("helm"))
            .args(["template", "vr"])
            .arg(repo().join("charts/video-resizer"))
            .args([
                "--namespace",
                "vr-system",
                "--show-only",
                "templates/cli-rbac.yaml",
            ])
            .env("HELM_CACHE_HOME", cp.dir().join("helm/cache"))
            .env("HELM_CONFIG_HOME", cp.dir().join("helm/config"))
            .env("HELM_DATA_HOME", cp.dir().join("helm/data"))
            .output()?;
        ensure!(
            helm.status.success(),
            "helm template: {}",
            String::from_utf8_lossy(&helm.stderr)
        );
        let role_yaml = String::from_utf8_lossy(&helm.stdout).into_owned();
        cp.apply(&role_yaml)?;
        cp.kubectl(&["create", "serviceaccount", "ci-bot", "-n", &ns])?;
        cp.kubectl(&[
            "create",
            "rolebinding",
            "ci-bot-vrctl",
            "-n",
            &ns,
            "--clusterrole",
            "vr-video-resizer-vrctl",
            &format!("--serviceaccount={ns}:ci-bot"),
        ])?;
        let kc = cp.service_account_kubeconfig(&ns, "ci-bot")?;
        let out = Command::new(cp.k8s_bin("kubectl"))
            .args([
                "patch",
                "videoresizerconfig",
                "plain",
                "-n",
                &ns,
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"workload":{"maxReplicas":1}}}"#,
            ])
            .env("KUBECONFIG", &kc)
            .output()?;
        let patched = out.status.success();
        let mut f = Finding::new("3-vrctl-patches-spec");
        f.safe = !patched;
        f.outcome = if patched {
            "spec-patched".into()
        } else {
            "refused".into()
        };
        f.detail = format!(
            "a ServiceAccount bound to the chart's vrctl ClusterRole merge-patches spec.workload.maxReplicas: {}; safe: refused (vrctl may only set the request annotations)",
            short(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        );
        Ok(f)
    })();
    row.record_result("3-vrctl-patches-spec", r);

    // Row 9's workload holes, on the clean config's children.
    let mut f = Finding::new("9-work-emptydir-unbounded");
    let vols = plain_d
        .as_ref()
        .map(|d| d["spec"]["template"]["spec"]["volumes"].clone())
        .unwrap_or(Value::Null);
    let unbounded: Vec<String> = vols
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v.get("emptyDir").is_some() && v["emptyDir"].get("sizeLimit").is_none())
                .map(|v| v["name"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    f.safe = plain_d.is_some() && unbounded.is_empty();
    f.outcome = if plain_d.is_none() {
        "no-deployment".into()
    } else if unbounded.is_empty() {
        "all-emptydirs-sized".into()
    } else {
        format!("emptydir-without-sizeLimit:{}", unbounded.join("+"))
    };
    f.detail = "the rendered Deployment's emptyDir volumes (no kubelet here: the pod spec is checked, not eviction); safe: every emptyDir has a sizeLimit".into();
    row.record(f);

    let mut f = Finding::new("9-admin-port-in-public-service");
    let svc = get_json(&cp, &["service", "plain-dataplane", "-n", &ns]);
    let ports = svc
        .as_ref()
        .map(|s| s["spec"]["ports"].to_string())
        .unwrap_or_default();
    let admin_exposed = ports.contains("admin") || ports.contains("9090");
    f.safe = svc.is_some() && !admin_exposed;
    f.outcome = if svc.is_none() {
        "no-service".into()
    } else if admin_exposed {
        "admin-port-in-service".into()
    } else {
        "http-only".into()
    };
    f.detail = format!("ports of Service plain-dataplane: {}; safe: the public Service carries http only (the admin port in a separate, headless metrics Service)", short(&ports));
    row.record(f);

    row.finish();
}

// =============================================================================================
// Row 4: SSRF to the node and the cluster

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row4_ssrf_to_the_node_and_the_cluster() {
    let mut row = Row::new("4 SSRF");
    let media = Media::make(&["sample"]).expect("media");
    // The in-process origin stands for an internal service (node metadata, kubelet, a
    // cluster-internal API): it is on loopback, which the fix must deny unless allow-listed.
    for (name, host) in [
        ("4-ssrf-loopback-ip", "127.0.0.1"),
        ("4-ssrf-loopback-name", "localhost"),
    ] {
        let r: Result<Finding> = async {
            let internal = Origin::start().await?;
            internal.put("latest/meta-data.txt", b"iam-role-credentials: AKIA-SECRET\n".to_vec());
            let mut cfg = Cfg::new(&media, 1);
            cfg.extra_origins = format!(
                "  - name: internal\n    matcher: '^/internal/(?P<p>[a-z-]+)\\.txt$'\n    sources:\n      - kind: http\n        name: meta\n        url: 'http://{host}:{}/latest/${{p}}.txt'\n",
                internal.port
            );
            let dir = tempdir()?;
            let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
            let prober = Prober::start(normal);
            let r = get(&dp.url("/internal/meta-data.txt")).await?;
            let mut f = Finding::new(name);
            f.normal = Some(prober.stop().await);
            f.bytes = internal.bytes();
            let leaked = r.text().contains("AKIA-SECRET");
            f.safe = internal.requests() == 0 && !leaked;
            f.outcome = format!("{}{}", r.status, if leaked { ":internal-body-served" } else { "" });
            f.detail = format!(
                "http origin http://{host}:PORT/… (loopback, no allow-list) → data plane answered {} {} and the internal service saw {} request(s); safe: refused at connect time (resolved address checked), 0 requests, unless the origin allow-lists the CIDR",
                r.status,
                r.code(),
                internal.requests()
            );
            Ok(f)
        }
        .await;
        row.record_result(name, r);
    }
    row.finish();
}

// =============================================================================================
// Row 5: slow connections

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row5_slow_connections() {
    let mut row = Row::new("5 slow connections");
    let r: Result<Finding> = async {
        let media = Media::make(&["sample"])?;
        let dir = tempdir()?;
        let (dp, normal) = dataplane(dir.path(), &Cfg::new(&media, 1), &[]).await?;
        let fds_before = fd_count(dp.pid());
        let sampler = Sampler::start(dp.pid());
        let prober = Prober::start(normal);
        let start = Instant::now();
        // 200 connections: silent, a partial HTTP/2 preface, a complete preface then idle.
        let mut tasks = Vec::new();
        for i in 0..200usize {
            let port = dp.http;
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let kind = i % 3;
                let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    return (kind, None);
                };
                let _ = match kind {
                    0 => Ok(()),
                    1 => s.write_all(b"PRI * HTTP/2.0\r\n").await,
                    _ => {
                        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                            .await
                    }
                };
                let mut buf = [0u8; 1024];
                // Read (and drop) whatever the server sends until it closes, at most 50 s.
                let closed = tokio::time::timeout(Duration::from_secs(50), async {
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await
                .is_ok();
                (kind, closed.then(|| start.elapsed()))
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fds_during = fd_count(dp.pid());
        let mut closed_at: Vec<(usize, Option<Duration>)> = Vec::new();
        for t in tasks {
            closed_at.push(t.await?);
        }
        let normal = prober.stop().await;
        let usage = sampler.stop();
        let fds_after = fd_count(dp.pid());
        let count = |kind: usize, within: u64| {
            closed_at
                .iter()
                .filter(|(k, c)| *k == kind && c.is_some_and(|d| d <= Duration::from_secs(within)))
                .count()
        };
        let totals: Vec<usize> = (0..3).map(|k| closed_at.iter().filter(|(x, _)| *x == k).count()).collect();
        let (silent15, partial15, idle45) = (count(0, 15), count(1, 15), count(2, 45));
        let mut f = Finding::new("5-slow-connections-200").usage(&usage);
        f.normal = Some(normal);
        f.bytes = 0;
        f.safe = silent15 == totals[0] && partial15 == totals[1] && idle45 == totals[2];
        f.outcome = format!(
            "closed:silent={silent15}/{}@15s,partial-preface={partial15}/{}@15s,idle-h2={idle45}/{}@45s,fds={fds_before}->{fds_during}->{fds_after}",
            totals[0], totals[1], totals[2]
        );
        f.detail = format!(
            "200 connections held for up to 50 s (peak fds {}); safe: silent and partial-preface connections closed by a ≤10 s first-bytes timeout, idle HTTP/2 by a ≤30 s idle timeout, and a connection cap",
            usage.peak_fds
        );
        Ok(f)
    }
    .await;
    row.record_result("5-slow-connections-200", r);
    row.finish();
}

// =============================================================================================
// Row 6: rotated secrets not revoked

fn hup(dp: &DataPlane) {
    let _ = Command::new("kill")
        .args(["-HUP", &dp.pid().to_string()])
        .status();
}

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row6_rotated_secrets_not_revoked() {
    use vr_dataplane::guard::signing::{key_from_file_contents, Signer};
    let mut row = Row::new("6 rotated secrets");
    let media = Media::make(&["sample"]).expect("media");
    const WITHIN: Duration = Duration::from_secs(10);

    // Admin token.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let (dp, _) = dataplane(dir.path(), &Cfg::new(&media, 1), &["--config-poll-ms".into(), "200".into()]).await?;
        let stats = dp.admin_url("/admin/cache/stats");
        let with = |tok: &'static str| {
            let stats = stats.clone();
            async move { send(client().get(&stats).bearer_auth(tok)).await.map(|r| r.status).unwrap_or(0) }
        };
        ensure!(with(ADMIN_TOKEN).await == 200, "the first token works");
        const NEW: &str = "rotated-admin-token-9876543210";
        std::fs::write(dir.path().join("secrets/admin-token"), NEW)?;
        hup(&dp);
        let t = Instant::now();
        let (mut old, mut new) = (0, 0);
        while t.elapsed() < WITHIN {
            old = with(ADMIN_TOKEN).await;
            new = with(NEW).await;
            if old == 401 && new == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut f = Finding::new("6-admin-token-rotation");
        f.safe = old == 401 && new == 200;
        f.outcome = format!("old={old},new={new}");
        f.detail = format!(
            "token file replaced + SIGHUP; after {:.1}s the old token got {old} and the new {new}; safe: old 401, new 200 within {}s, no new revision",
            t.elapsed().as_secs_f64(),
            WITHIN.as_secs()
        );
        Ok(f)
    }
    .await;
    row.record_result("6-admin-token-rotation", r);

    // Signing key.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let key_file = dir.path().join("secrets/signing-key");
        std::fs::create_dir_all(dir.path().join("secrets"))?;
        let (k1, k2) = ("a1".repeat(32), "b2".repeat(32));
        std::fs::write(&key_file, &k1)?;
        let mut cfg = Cfg::new(&media, 1);
        cfg.signing = format!("signing:\n  required: true\n  keyFiles: [{}]\n", key_file.display());
        let dp = DataPlane::file(dir.path(), &cfg.render(dir.path())?, &["--config-poll-ms".into(), "200".into()]).await?;
        let signed = |key: &str| -> Result<String> {
            let s = Signer::new(vec![key_from_file_contents(key.as_bytes())?])?;
            let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 600;
            Ok(dp.url(&format!("/videos/sample.mp4?{}", s.sign("/videos/sample.mp4", "derivative=thumb", Some(exp)))))
        };
        let (u1, u2) = (signed(&k1)?, signed(&k2)?);
        ensure!(get(&u1).await?.status == 200, "a URL signed with the first key works");
        std::fs::write(&key_file, &k2)?;
        hup(&dp);
        let t = Instant::now();
        let (mut old, mut new) = (0, 0);
        while t.elapsed() < WITHIN {
            old = get(&u1).await?.status;
            new = get(&u2).await?.status;
            if old == 403 && new == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut f = Finding::new("6-signing-key-rotation");
        f.safe = old == 403 && new == 200;
        f.outcome = format!("old-key={old},new-key={new}");
        f.detail = format!(
            "signing key file replaced + SIGHUP; after {:.1}s a URL signed with the old key got {old}, the new key {new}; safe: 403/200 within {}s",
            t.elapsed().as_secs_f64(),
            WITHIN.as_secs()
        );
        Ok(f)
    }
    .await;
    row.record_result("6-signing-key-rotation", r);

    // HTTP origin credentials.
    let r: Result<Finding> = async {
        let origin = Origin::start().await?;
        for i in 0..40 {
            origin.put(&format!("clip{i}.mp4"), media.bytes("sample")?);
        }
        let dir = tempdir()?;
        std::fs::create_dir_all(dir.path().join("secrets"))?;
        let auth = dir.path().join("secrets/origin-token");
        std::fs::write(&auth, "old-origin-token")?;
        let mut cfg = Cfg::new(&media, origin.port);
        cfg.extra_origins = format!(
            "  - name: authed\n    matcher: '^/authed/(?P<name>[a-z0-9]+)\\.mp4$'\n    sources:\n      - kind: http\n        name: upstream\n        url: 'http://127.0.0.1:{}/${{name}}.mp4'\n        auth: {{ type: bearer, tokenFile: {} }}\n",
            origin.port,
            auth.display()
        );
        let dp = DataPlane::file(dir.path(), &cfg.render(dir.path())?, &["--config-poll-ms".into(), "200".into()]).await?;
        get(&dp.url("/authed/clip0.mp4")).await?;
        let before = origin.last_authorization().unwrap_or_default();
        std::fs::write(&auth, "new-origin-token")?;
        hup(&dp);
        let t = Instant::now();
        let mut seen = String::new();
        let mut i = 1;
        while t.elapsed() < WITHIN && i < 40 {
            get(&dp.url(&format!("/authed/clip{i}.mp4"))).await?;
            seen = origin.last_authorization().unwrap_or_default();
            if seen.contains("new-origin-token") {
                break;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut f = Finding::new("6-origin-auth-rotation");
        f.safe = seen.contains("new-origin-token");
        f.outcome = if f.safe { "new-token-sent".into() } else { "old-token-still-sent".into() };
        f.detail = format!(
            "origin bearer token file replaced + SIGHUP; before: {before:?}, after {:.1}s: {seen:?}; safe: the new value is sent within {}s",
            t.elapsed().as_secs_f64(),
            WITHIN.as_secs()
        );
        Ok(f)
    }
    .await;
    row.record_result("6-origin-auth-rotation", r);
    row.finish();
}

// =============================================================================================
// Row 7: steering the canary

/// The routing bucket any client can compute: the public, unkeyed hash of the path and the
/// sorted query (what an attacker reads in the source code).
fn public_bucket(path: &str, query: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split('=').next().unwrap_or("");
            k != "sig" && k != "exp"
        })
        .collect();
    pairs.sort_unstable();
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    for p in pairs {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (n % 10_000) as u32
}

fn revision_configmap(ns: &str, name: &str, revision: u32, doc: &str) -> String {
    let indented: String = doc.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    videoresizer.io/config: web\n    videoresizer.io/revision: \"{revision}\"\n    videoresizer.io/role: revision\ndata:\n  config.yaml: |\n{indented}"
    )
}

#[tokio::test]
#[ignore = "external: kube-apiserver, release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row7_steering_the_canary() {
    let mut row = Row::new("7 steering the canary");
    let r: Result<(Finding, Finding)> = async {
        let media = Media::make(&["sample"])?;
        let cp = ControlPlane::start_empty()?;
        let ns = cp.namespace()?;
        let dir = tempdir()?;
        let base = Cfg::new(&media, 1).render(dir.path())?;
        let r1 = base.replace("revision: hostile", "revision: r1");
        let r2 = base.replace("revision: hostile", "revision: r2");
        cp.apply(&revision_configmap(&ns, "web-r1-aaaaaaaaaa", 1, &r1))?;
        cp.apply(&revision_configmap(&ns, "web-r2-bbbbbbbbbb", 2, &r2))?;
        let weight = 1000u32;
        cp.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-active\n  namespace: {ns}\n  labels:\n    videoresizer.io/config: web\n    videoresizer.io/role: pointer\ndata:\n  stable: web-r1-aaaaaaaaaa\n  canary: web-r2-bbbbbbbbbb\n  canaryWeightBasisPoints: \"{weight}\"\n"
        ))?;
        let dp = DataPlane::spawn(
            dir.path(),
            vec!["--kube-config-name".into(), "web".into(), "--namespace".into(), ns.clone()],
            &[("KUBECONFIG", cp.admin_kubeconfig().display().to_string())],
        )
        .await?;
        // Wait until the canary serves (the gauge, or the header).
        let t = Instant::now();
        while dp.metric("vr_canary_weight_basis_points", &[]).await < f64::from(weight)
            && t.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let path = "/videos/sample.mp4";
        // The attacker: 40 URLs whose public hash lands below the weight (a harmless,
        // allowed parameter varied), each sent once. The control: 40 URLs in sequence.
        let chosen: Vec<String> = (0..100_000)
            .map(|i| format!("derivative=thumb&filename=a{i}"))
            .filter(|q| public_bucket(path, q) < weight)
            .take(40)
            .collect();
        let control: Vec<String> = (0..40).map(|i| format!("derivative=thumb&filename=c{i}")).collect();
        let count = |qs: Vec<String>| {
            let url = dp.url(path);
            async move {
                let (mut canary, mut header_seen) = (0, 0);
                for q in qs {
                    let r = get(&format!("{url}?{q}")).await?;
                    if let Some(h) = r.header("x-config-revision") {
                        header_seen += 1;
                        if h == "r2" {
                            canary += 1;
                        }
                    }
                }
                anyhow::Ok((canary, header_seen))
            }
        };
        let before = dp.metric("vr_requests_total", &[("role", "canary")]).await;
        let (hdr_canary, headers) = count(chosen.clone()).await?;
        let by_metric = dp.metric("vr_requests_total", &[("role", "canary")]).await - before;
        let (control_canary, _) = count(control).await?;
        let share = f64::max(by_metric, f64::from(hdr_canary)) / chosen.len() as f64;
        let mut steer = Finding::new("7-canary-steering");
        steer.safe = share <= 0.4;
        steer.outcome = format!("chosen-urls-on-canary={:.0}%,control={control_canary}/40", share * 100.0);
        steer.detail = format!(
            "canary at {}%: 40 URLs picked offline with the public routing hash landed on the canary {:.0}% of the time (metric vr_requests_total role=canary +{by_metric}); safe: ≈ the weight (≤40%), the hash keyed by a per-rollout secret",
            weight / 100,
            share * 100.0
        );
        let mut header = Finding::new("7-revision-header-public");
        header.safe = headers == 0;
        header.outcome = format!("x-config-revision-on={headers}/40");
        header.detail = "public responses name the serving revision (X-Config-Revision), telling a client which URLs hit the canary; safe: absent unless configured".into();
        Ok((steer, header))
    }
    .await;
    match r {
        Ok((a, b)) => {
            row.record(a);
            row.record(b);
        }
        Err(e) => row.record_result("7-canary-steering", Err(e)),
    }
    row.finish();
}

// =============================================================================================
// Row 8: cache busting and cache bloat

fn disk_usage(dir: &Path) -> (u64, u64, u64) {
    // (files, apparent bytes, allocated bytes) with du: what the disk really holds.
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .ok();
    let allocated = out
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let mut files = 0;
    let mut apparent = 0;
    fn walk(d: &Path, files: &mut u64, apparent: &mut u64) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, files, apparent);
                } else if let Ok(m) = p.metadata() {
                    *files += 1;
                    *apparent += m.len();
                }
            }
        }
    }
    walk(dir, &mut files, &mut apparent);
    (files, apparent, allocated)
}

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row8_cache_busting_and_bloat() {
    let mut row = Row::new("8 cache busting and bloat");
    let media = Media::make(&["sample", "tall"]).expect("media");

    // Bypass parameters honoured for anyone.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let (dp, normal) = dataplane(dir.path(), &Cfg::new(&media, 1), &[]).await?;
        let before = dp.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]).await;
        let prober = Prober::start(normal);
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(get(&dp.url("/videos/sample.mp4?derivative=thumb&nocache=1")).await?.status);
        }
        let runs = dp.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]).await - before;
        let mut f = Finding::new("8-anonymous-nocache");
        f.normal = Some(prober.stop().await);
        f.safe = runs == 0.0;
        f.outcome = format!("ffmpeg-runs={runs},status={statuses:?}").replace(' ', "");
        f.detail = "5 anonymous requests for a cached variant with ?nocache=1; safe: 0 ffmpeg runs (bypass needs an admin token or a signed URL; otherwise ignored or 403 naming nocache)".into();
        Ok(f)
    }
    .await;
    row.record_result("8-anonymous-nocache", r);

    // Millisecond overrides mint variants even with allowArbitrary: false.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let mut cfg = Cfg::new(&media, 1);
        cfg.params = "{ validation: strict, allowArbitrary: false }".into();
        let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
        let before = dp.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]).await;
        let prober = Prober::start(normal);
        let mut ok = 0;
        for i in 1..=20 {
            let r = get(&dp.url(&format!("/videos/sample.mp4?derivative=thumb&time={}ms", 1000 + i))).await?;
            if r.status == 200 {
                ok += 1;
            }
        }
        let runs = dp.metric("vr_processes_spawned_total", &[("program", "ffmpeg")]).await - before;
        let mut f = Finding::new("8-override-precision");
        f.normal = Some(prober.stop().await);
        f.safe = runs <= 1.0;
        f.outcome = format!("variants-minted={runs},answered={ok}/20");
        f.detail = "allowArbitrary: false; derivative=thumb with time=1001ms…1020ms (time is overridable by default); safe: overrides quantized (e.g. to whole seconds) so ≤1 new ffmpeg run".into();
        Ok(f)
    }
    .await;
    row.record_result("8-override-precision", r);

    // Accounting of tiny variants on disk.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let cache_dir = dir.path().join("variants");
        let mut cfg = Cfg::new(&media, 1);
        cfg.cache = format!(
            "{{ memory: {{ maxBytes: 67108864, maxObjectBytes: 16777216 }}, disk: {{ path: {}, maxBytes: 1073741824 }} }}",
            cache_dir.display()
        );
        let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
        let (files0, _, alloc0) = disk_usage(&cache_dir);
        let prober = Prober::start(normal);
        let mut tasks = Vec::new();
        let n = 150;
        for chunk in (0..n).collect::<Vec<u32>>().chunks(n as usize / 2) {
            let urls: Vec<String> = chunk
                .iter()
                .map(|i| dp.url(&format!("/videos/tall.mp4?mode=frame&format=jpg&width={}", 10 + i)))
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for u in urls {
                    if get(&u).await.map(|r| r.status == 200).unwrap_or(false) {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await?;
        }
        // Let the disk layer finish writing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let normal = prober.stop().await;
        let (files, apparent, alloc) = disk_usage(&cache_dir);
        let accounted = dp.metric("vr_cache_bytes", &[("layer", "disk")]).await;
        let objects = dp.metric("vr_cache_objects", &[("layer", "disk")]).await;
        let real = alloc.saturating_sub(alloc0);
        let mut f = Finding::new("8-cache-accounting-150-tiny");
        f.normal = Some(normal);
        f.bytes = real;
        f.safe = accounted >= 0.9 * real as f64;
        f.outcome = format!("accounted={accounted:.0},on-disk={real},objects={objects}");
        f.detail = format!(
            "{ok}/{n} tiny frame variants: the disk layer accounts {accounted:.0} B for {objects} objects while the directory holds {} files, {apparent} B apparent, {real} B allocated; safe: accounting ≥ what the disk holds (blocks, sidecars) and an entry cap",
            files - files0
        );
        Ok(f)
    }
    .await;
    row.record_result("8-cache-accounting-150-tiny", r);
    row.finish();
}

// =============================================================================================
// Row 9: smaller holes (the workload ones are checked in row 3's test)

/// A script that logs its arguments to `log` and runs `real`.
fn wrapper(dir: &Path, name: &str, real: &str, log: &Path, exit: Option<i32>) -> Result<PathBuf> {
    let path = dir.join(name);
    let body = match exit {
        Some(code) => format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\necho 'simulated crash' >&2\nexit {code}\n",
            log.display()
        ),
        None => format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\nexec {real} \"$@\"\n",
            log.display()
        ),
    };
    std::fs::write(&path, body)?;
    let _ = Command::new("chmod").arg("+x").arg(&path).status();
    Ok(path)
}

fn which(prog: &str) -> String {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("/usr/bin/{prog}"))
}

#[tokio::test]
#[ignore = "external: release vr-dataplane, ffmpeg (e2e/run hostile)"]
async fn row9_smaller_holes() {
    let mut row = Row::new("9 smaller holes");
    let media = Media::make(&["sample", "long"]).expect("media");

    // Audit log growth from anonymous denied admin requests.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let (dp, normal) = dataplane(dir.path(), &Cfg::new(&media, 1), &[]).await?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let before = size(&dp.audit_log);
        let prober = Prober::start(normal);
        let junk = "x".repeat(60_000);
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..200 {
            let s = send(client().post(dp.admin_url(&format!("/admin/purge?tag={junk}")))).await.map(|r| r.status).unwrap_or(0);
            *statuses.entry(s).or_insert(0) += 1;
        }
        let grown = size(&dp.audit_log) - before;
        let mut f = Finding::new("9-audit-log-growth");
        f.normal = Some(prober.stop().await);
        f.bytes = grown;
        f.safe = grown <= 200 * 1024;
        f.outcome = format!("audit+{:.1}MiB,status={statuses:?}", grown as f64 / 1048576.0).replace(' ', "");
        f.detail = "200 anonymous POST /admin/purge with a 60 KB query; safe: ≤1 KiB per denied request (query truncated or not logged for anonymous callers, rate-limited)".into();
        Ok(f)
    }
    .await;
    row.record_result("9-audit-log-growth", r);

    // ffprobe's argument vector: is there a codec whitelist?
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let log = dir.path().join("ffprobe-argv.log");
        let probe = wrapper(dir.path(), "ffprobe-wrapper", &which("ffprobe"), &log, None)?;
        let (_dp, _) = dataplane(
            dir.path(),
            &Cfg::new(&media, 1),
            &["--ffprobe".into(), probe.display().to_string()],
        )
        .await?;
        let argv = std::fs::read_to_string(&log).unwrap_or_default();
        let has = argv.contains("-codec_whitelist");
        let mut f = Finding::new("9-ffprobe-codec-whitelist");
        f.safe = !argv.is_empty() && has;
        f.outcome = if argv.is_empty() {
            "ffprobe-not-run".into()
        } else if has {
            "whitelisted".into()
        } else {
            "no-codec-whitelist".into()
        };
        f.detail = format!(
            "ffprobe argv: {}; safe: -codec_whitelist limited to the accepted codecs",
            short(argv.lines().next().unwrap_or(""))
        );
        Ok(f)
    }
    .await;
    row.record_result("9-ffprobe-codec-whitelist", r);

    // ffmpeg children outlive a killed data plane.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let (mut dp, _) = dataplane(dir.path(), &Cfg::new(&media, 1), &[]).await?;
        let url = dp.url("/videos/long.mp4?width=1920&height=1080&quality=high");
        let req = tokio::spawn(async move { get(&url).await });
        let mut ffmpeg = None;
        let t = Instant::now();
        while ffmpeg.is_none() && t.elapsed() < Duration::from_secs(20) {
            for c in children(dp.pid()) {
                let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
                if comm.trim() == "ffmpeg" {
                    ffmpeg = Some(c);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(pid) = ffmpeg else {
            anyhow::bail!("no ffmpeg child appeared");
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        dp.kill_only_the_data_plane();
        let killed = Instant::now();
        let gone = eventually(Duration::from_secs(30), || !alive(pid)).await;
        let lived = killed.elapsed();
        if !gone {
            kill_pid(pid);
        }
        let _ = req.await;
        let mut f = Finding::new("9-ffmpeg-outlives-data-plane");
        f.safe = lived <= Duration::from_secs(1);
        f.outcome = format!("ffmpeg-lived={:.1}s", lived.as_secs_f64());
        f.detail = "SIGKILL of the data plane mid-transform (a 20 s 640x360 source to 1920x1080 high); safe: the ffmpeg child dies within 1 s (parent-death signal or a cgroup that dies with the pod)".into();
        Ok(f)
    }
    .await;
    row.record_result("9-ffmpeg-outlives-data-plane", r);

    // Cache-Control of a non-retryable 5xx (an ffmpeg that crashes).
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let log = dir.path().join("ffmpeg-argv.log");
        let crash = wrapper(dir.path(), "ffmpeg-crash", &which("ffmpeg"), &log, Some(1))?;
        let dp = DataPlane::file(
            dir.path(),
            &Cfg::new(&media, 1).render(dir.path())?,
            &["--ffmpeg".into(), crash.display().to_string()],
        )
        .await?;
        let r = get(&dp.url("/videos/sample.mp4?width=320&height=180")).await?;
        let cc = r.header("cache-control").unwrap_or_default();
        let mut f = Finding::new("9-5xx-cache-control");
        f.safe = r.status >= 500 && (cc.contains("no-store") || cc.contains("private"));
        f.outcome = format!("{}:{}:{}", r.status, r.code(), cc.replace(' ', ""));
        f.detail = "a transform whose ffmpeg crashes (exit 1); safe: 5xx answers are never shared-cacheable (no-store)".into();
        Ok(f)
    }
    .await;
    row.record_result("9-5xx-cache-control", r);

    // Signed URLs without exp never expire.
    let r: Result<Finding> = async {
        use vr_dataplane::guard::signing::{key_from_file_contents, Signer};
        let dir = tempdir()?;
        std::fs::create_dir_all(dir.path().join("secrets"))?;
        let key_file = dir.path().join("secrets/signing-key");
        let key = "c3".repeat(32);
        std::fs::write(&key_file, &key)?;
        let mut cfg = Cfg::new(&media, 1);
        cfg.signing = format!("signing:\n  required: true\n  keyFiles: [{}]\n", key_file.display());
        let dp = DataPlane::file(dir.path(), &cfg.render(dir.path())?, &[]).await?;
        let s = Signer::new(vec![key_from_file_contents(key.as_bytes())?])?;
        let q = s.sign("/videos/sample.mp4", "derivative=thumb", None);
        let r = get(&dp.url(&format!("/videos/sample.mp4?{q}"))).await?;
        let mut f = Finding::new("9-signed-url-without-exp");
        f.safe = r.status == 403 && r.text().contains("exp");
        f.outcome = format!("{}:{}", r.status, r.code());
        f.detail = "a URL signed without exp; safe: 403 naming exp (a maximum lifetime, e.g. signing.maxLifetimeSeconds, default 7 days)".into();
        Ok(f)
    }
    .await;
    row.record_result("9-signed-url-without-exp", r);

    // 10 000 distinct 404s flush the source-metadata cache.
    let r: Result<Finding> = async {
        let origin = Origin::start().await?;
        origin.put("small.mp4", media.bytes("sample")?);
        let dir = tempdir()?;
        let mut cfg = Cfg::new(&media, origin.port);
        cfg.cache = "{ memory: { maxBytes: 67108864, maxObjectBytes: 16777216 }, sourceRevalidateSeconds: 600 }".into();
        let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
        let warm = dp.url("/web/small.mp4?derivative=thumb");
        ensure!(get(&warm).await?.status == 200, "warm variant");
        ensure!(get(&warm).await?.status == 200, "hit");
        let n0 = origin.requests_for("/small.mp4");
        let prober = Prober::start(normal);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8u32 {
            let base = dp.url("/web/");
            tasks.push(tokio::spawn(async move {
                let c = client();
                let mut n404 = 0;
                for i in 0..1250u32 {
                    if let Ok(r) = c.get(format!("{base}missing{w}x{i}.mp4?derivative=thumb")).send().await {
                        if r.status() == 404 {
                            n404 += 1;
                        }
                    }
                }
                n404
            }));
        }
        let mut n404 = 0;
        for t in tasks {
            n404 += t.await?;
        }
        let secs = t.elapsed().as_secs_f64();
        ensure!(get(&warm).await?.status == 200, "hit after");
        let n1 = origin.requests_for("/small.mp4");
        let mut f = Finding::new("9-metadata-cache-flush-10k-404");
        f.normal = Some(prober.stop().await);
        f.bytes = origin.bytes();
        f.safe = n1 == n0;
        f.outcome = format!("origin-rechecks={},404s={n404}", n1 - n0);
        f.detail = format!(
            "10 000 distinct missing paths in {secs:.1}s, then the warm variant again: the origin saw {} new request(s) for it; safe: 0 (negative entries bounded separately, LRU instead of clear-all)",
            n1 - n0
        );
        Ok(f)
    }
    .await;
    row.record_result("9-metadata-cache-flush-10k-404", r);

    // Presigned URLs in ffmpeg's argv and in logged stderr.
    let r = presigned_in_argv(&media).await;
    row.record_result("9-presigned-url-in-argv", r);

    // The data-plane half of row 3's local root: a root over the credential files.
    let r: Result<Finding> = async {
        let dir = tempdir()?;
        let mut cfg = Cfg::new(&media, 1);
        cfg.extra_origins = format!(
            "  - name: files\n    matcher: '^/files/(?P<name>[a-z-]+)$'\n    sources:\n      - kind: local\n        name: disk\n        root: {}\n        path: '${{name}}'\n",
            dir.path().join("secrets").display()
        );
        let rendered = cfg.render(dir.path())?;
        let cfg_path = dir.path().join("config.yaml");
        std::fs::write(&cfg_path, &rendered)?;
        let mut f = Finding::new("3-local-root-over-credentials-dataplane");
        match DataPlane::file(dir.path(), &rendered, &[]).await {
            Ok(dp) => {
                let r = get(&dp.url("/files/admin-token")).await?;
                let leaked = r.text().contains(ADMIN_TOKEN);
                f.safe = !leaked;
                f.outcome = format!("{}{}", r.status, if leaked { ":admin-token-served" } else { "" });
                f.bytes = r.len;
            }
            Err(e) => {
                f.safe = true;
                f.outcome = "config-refused".into();
                f.detail = short(&format!("{e:#}"));
            }
        }
        f.detail = format!(
            "a local source whose root is the directory of admin.tokens[0].tokenFile, GET /files/admin-token; safe: the config is refused (exit 64 naming origins[2].sources[0].root) {}",
            f.detail
        );
        Ok(f)
    }
    .await;
    row.record_result("3-local-root-over-credentials-dataplane", r);
    row.finish();
}

async fn presigned_in_argv(media: &Media) -> Result<Finding> {
    use vr_e2e::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
    ensure!(
        vr_e2e::s3::s3s_fs().exists(),
        "s3s-fs is not installed (e2e/s3/install.sh)"
    );
    let dir = tempdir()?;
    let s3 = S3Server::start(dir.path()).await?;
    s3.bucket("media")?;
    s3.put_file("media", "raw/long.mp4", &media.path().join("long.mp4"))?;
    // A truncated object: ffprobe reads its header, ffmpeg fails reading the rest.
    let cut = dir.path().join("cut.mp4");
    let bytes = media.bytes("long")?;
    std::fs::write(&cut, &bytes[..bytes.len() / 3])?;
    s3.put_file("media", "raw/cut.mp4", &cut)?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets)?;
    std::fs::write(secrets.join("s3-id"), ACCESS_KEY)?;
    std::fs::write(secrets.join("s3-secret"), SECRET_KEY)?;
    let mut cfg = Cfg::new(media, 1);
    cfg.extra_origins = format!(
        "  - name: bucket\n    matcher: '^/s3/(?P<name>[a-z0-9]+)\\.mp4$'\n    sources:\n      - kind: s3\n        name: store\n        bucket: media\n        endpoint: {}\n        forcePathStyle: true\n        key: 'raw/${{name}}.mp4'\n        credentials: {{ accessKeyIdFile: {}, secretAccessKeyFile: {} }}\n        presign: {{ transformInput: true, lifetimeSeconds: 3600 }}\n",
        s3.endpoint(),
        secrets.join("s3-id").display(),
        secrets.join("s3-secret").display()
    );
    let (dp, normal) = dataplane(dir.path(), &cfg, &[]).await?;
    let sampler = Sampler::start(dp.pid());
    let prober = Prober::start(normal);
    let ok = get(&dp.url("/s3/long.mp4?width=320&height=180&duration=2")).await?;
    let failed = get(&dp.url("/s3/cut.mp4?width=320&height=180")).await?;
    let normal = prober.stop().await;
    let usage = sampler.stop();
    let in_argv = usage
        .children
        .values()
        .filter(|c| c.cmdline.contains("X-Amz-Signature"))
        .count();
    let log = std::fs::read_to_string(dir.path().join("dataplane.log")).unwrap_or_default();
    let in_log = log.matches("X-Amz-Signature").count();
    let mut f = Finding::new("9-presigned-url-in-argv-and-logs").usage(&usage);
    f.normal = Some(normal);
    f.safe = in_argv == 0 && in_log == 0;
    f.outcome = format!("children-with-signed-url={in_argv},log-lines-with-signature={in_log}");
    f.detail = format!(
        "S3 source with presign.transformInput: a transform ({}) and a failing one ({} {}); safe: no presigned URL in any child's argv (/proc/PID/cmdline) nor in logs",
        ok.status,
        failed.status,
        failed.code()
    );
    Ok(f)
}
