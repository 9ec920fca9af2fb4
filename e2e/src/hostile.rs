//! Harness of the `hostile` suite: the release data plane under a memory cap, an in-process
//! HTTP origin on 127.0.0.1 that counts what it sends, a /proc sampler of peak RSS and file
//! descriptors (data plane and its ffmpeg/ffprobe children), a prober timing normal requests
//! made during an attack, and the `HOSTILE …` report line.
//!
//! Every attack is bounded: the data plane runs in a memory cgroup of its own where the kernel
//! lets us make one (v1 or v2), and a watchdog SIGKILLs its children by pid if the tree passes
//! [`MEMORY_CAP`] anyway. All traffic goes to 127.0.0.1.

use crate::{free_port, Proc};
use anyhow::{bail, Context as _, Result};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Hard cap on the data plane and its children (cgroup limit and watchdog threshold).
pub const MEMORY_CAP: u64 = 6 << 30;

const MIB: f64 = 1024.0 * 1024.0;

/// A release binary of the workspace (`e2e/run hostile` builds it with `--release`).
/// `VR_HOSTILE_DATAPLANE` overrides the data plane's path (e.g. to try a debug build).
pub fn release_binary(name: &str) -> PathBuf {
    if name == "vr-dataplane" {
        if let Some(p) = std::env::var_os("VR_HOSTILE_DATAPLANE") {
            return PathBuf::from(p);
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo().join("target"));
    target.join("release").join(name)
}

/// Makes `out` with ffmpeg from lavfi `testsrc2` of `size` for `seconds` (H.264, with a sine
/// audio track when `audio`), plus `extra` output options.
pub fn lavfi_video(
    out: &Path,
    size: &str,
    seconds: u32,
    audio: bool,
    extra: &[&str],
) -> Result<()> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25:duration={seconds}"),
        ]);
    if audio {
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:duration={seconds}"),
            "-c:a",
            "aac",
        ]);
    }
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ])
    .args(extra)
    .arg(out)
    .stdin(Stdio::null());
    let o = cmd.output().context("running ffmpeg")?;
    if !o.status.success() {
        bail!(
            "ffmpeg could not make {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The origin

/// What the origin saw and sent.
#[derive(Default)]
pub struct OriginStats {
    pub requests: AtomicU64,
    pub heads: AtomicU64,
    pub gets: AtomicU64,
    pub not_found: AtomicU64,
    /// Body bytes actually written to sockets (a client that hangs up stops the count).
    pub bytes: AtomicU64,
    /// Requests per path.
    pub per_path: Mutex<HashMap<String, u64>>,
    /// `Authorization` header of the last request.
    pub last_authorization: Mutex<Option<String>>,
}

/// An HTTP/1.1 origin on 127.0.0.1 serving in-memory files (HEAD, GET, single ranges,
/// `Connection: close`), counting every request and byte. Stopped on drop.
pub struct Origin {
    pub port: u16,
    pub stats: Arc<OriginStats>,
    files: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Result<Origin> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(OriginStats::default());
        let files: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>> = Arc::default();
        let (s, f) = (stats.clone(), files.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, f) = (s.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = serve_one(sock, &s, &f).await;
                });
            }
        });
        Ok(Origin {
            port,
            stats,
            files,
            task,
        })
    }

    /// Serves `bytes` at `/name`.
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("/{name}"), Arc::new(bytes));
    }

    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    pub fn requests_for(&self, path: &str) -> u64 {
        self.stats
            .per_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn last_authorization(&self) -> Option<String> {
        self.stats
            .last_authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut sock: tokio::net::TcpStream,
    stats: &OriginStats,
    files: &Mutex<HashMap<String, Arc<Vec<u8>>>>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("header timeout"))??;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts
        .next()
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let mut range = None;
    let mut auth = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "range" {
                range = Some(v.trim().to_owned());
            } else if k == "authorization" {
                auth = Some(v.trim().to_owned());
            }
        }
    }
    stats.requests.fetch_add(1, Ordering::SeqCst);
    *stats
        .per_path
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(path.clone())
        .or_default() += 1;
    *stats
        .last_authorization
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = auth;
    let is_head = method == "HEAD";
    if is_head {
        stats.heads.fetch_add(1, Ordering::SeqCst);
    } else {
        stats.gets.fetch_add(1, Ordering::SeqCst);
    }
    let file = files
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&path)
        .cloned();
    let Some(file) = file else {
        stats.not_found.fetch_add(1, Ordering::SeqCst);
        sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    let len = file.len() as u64;
    let (status, start, end) = match range.as_deref().and_then(|r| parse_range(r, len)) {
        Some((s, e)) => ("206 Partial Content", s, e),
        None => ("200 OK", 0, len.saturating_sub(1)),
    };
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    let ctype = if path.ends_with(".mp4") {
        "video/mp4"
    } else {
        "application/octet-stream"
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {body_len}\r\nContent-Type: {ctype}\r\nETag: \"{len:x}-e2e\"\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\nAccept-Ranges: bytes\r\nConnection: close\r\n"
    );
    if status.starts_with("206") {
        resp.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n"));
    }
    resp.push_str("\r\n");
    sock.write_all(resp.as_bytes()).await?;
    if is_head || body_len == 0 {
        return Ok(());
    }
    let body = &file[start as usize..=end as usize];
    for chunk in body.chunks(64 * 1024) {
        sock.write_all(chunk).await?;
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    sock.flush().await?;
    Ok(())
}

/// A single `bytes=a-b` / `a-` / `-n` range within `len`.
fn parse_range(r: &str, len: u64) -> Option<(u64, u64)> {
    let spec = r.strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return Some((len.saturating_sub(n), len - 1));
    }
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        len - 1
    } else {
        b.parse::<u64>().ok()?.min(len - 1)
    };
    (a <= b).then_some((a, b))
}

// ---------------------------------------------------------------------------------------------
// Memory cap

/// A memory cgroup holding one data plane (and so its children); removed on drop.
pub struct MemCap {
    dir: PathBuf,
    v2: bool,
}

impl MemCap {
    /// Puts `pid` in a new child of this process's memory cgroup limited to `limit` bytes.
    /// `None` (with the reason on stderr) where the kernel or the sandbox does not allow it.
    pub fn place(pid: u32, limit: u64) -> Option<MemCap> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mut v1 = None;
        let mut v2 = None;
        for l in text.lines() {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            if ctrl.split(',').any(|c| c == "memory") {
                v1 = Some(path.to_owned());
            } else if ctrl.is_empty() {
                v2 = Some(path.to_owned());
            }
        }
        let name = format!("vr-hostile-{}-{pid}", std::process::id());
        let (dir, is_v2) = match (v1, v2) {
            (Some(p), _) => (
                PathBuf::from(format!("/sys/fs/cgroup/memory{p}")).join(&name),
                false,
            ),
            (None, Some(p)) if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => (
                PathBuf::from(format!("/sys/fs/cgroup{p}")).join(&name),
                true,
            ),
            _ => return None,
        };
        let attempt = || -> std::io::Result<()> {
            std::fs::create_dir(&dir)?;
            let limit_file = if is_v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            std::fs::write(dir.join(limit_file), limit.to_string())?;
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
            Ok(())
        };
        match attempt() {
            Ok(()) => Some(MemCap { dir, v2: is_v2 }),
            Err(e) => {
                eprintln!(
                    "hostile: no memory cgroup ({}: {e}); the watchdog alone caps memory",
                    dir.display()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// Peak memory of the group (RSS + page cache), when the kernel reports it.
    pub fn peak(&self) -> Option<u64> {
        let f = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Processes the kernel OOM-killed in the group (v1 `memory.oom_control`, v2
    /// `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let f = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(f))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A short description for reports: `cgroup-peak=…MiB,oom-kills=N`.
    pub fn describe(&self) -> String {
        format!(
            "cgroup-peak={:.0}MiB,oom-kills={}",
            self.peak().unwrap_or(0) as f64 / MIB,
            self.oom_kills()
        )
    }

    /// Pids still in the group.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for MemCap {
    fn drop(&mut self) {
        for _ in 0..50 {
            for pid in self.pids() {
                kill_pid(pid);
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// SIGKILL to one pid (a process this suite started, directly or through the data plane).
pub fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------------------------
// /proc

/// `VmRSS`/`VmHWM` and such from `/proc/PID/status`, in bytes.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Direct children of `pid` (every thread's `children` list).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A child seen by the sampler.
#[derive(Debug, Clone, Default)]
pub struct ChildSeen {
    pub name: String,
    pub cmdline: String,
    pub peak_rss: u64,
}

/// What the sampler measured.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Largest `VmHWM` of any child (ffmpeg/ffprobe).
    pub peak_child_rss: u64,
    /// Largest RSS of the data plane itself while sampled.
    pub peak_dp_rss: u64,
    /// Most open file descriptors of the data plane.
    pub peak_fds: usize,
    pub children: BTreeMap<u32, ChildSeen>,
    /// The watchdog killed children above [`MEMORY_CAP`].
    pub watchdog: bool,
}

/// Samples a data plane and its children every 20 ms on a thread of its own until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Usage>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut u = Usage::default();
            loop {
                let done = s.load(Ordering::SeqCst);
                let dp_rss = proc_status_kb(pid, "VmRSS").unwrap_or(0);
                u.peak_dp_rss = u.peak_dp_rss.max(dp_rss);
                u.peak_fds = u.peak_fds.max(fd_count(pid));
                let mut total = dp_rss;
                let kids = children(pid);
                for c in &kids {
                    let hwm = proc_status_kb(*c, "VmHWM").unwrap_or(0);
                    total += proc_status_kb(*c, "VmRSS").unwrap_or(0);
                    let e = u.children.entry(*c).or_default();
                    // Re-read until the child has exec'd: between fork and exec it still
                    // carries the data plane's name and arguments.
                    let name = std::fs::read_to_string(format!("/proc/{c}/comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    if !name.is_empty() && name != e.name {
                        e.name = name;
                        e.cmdline = cmdline(*c);
                    }
                    e.peak_rss = e.peak_rss.max(hwm);
                    u.peak_child_rss = u.peak_child_rss.max(hwm);
                }
                if total > MEMORY_CAP {
                    u.watchdog = true;
                    for c in &kids {
                        kill_pid(*c);
                    }
                }
                if done {
                    return u;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> Usage {
        self.finish()
    }

    fn finish(&mut self) -> Usage {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// The data plane

/// A release `vr-dataplane` process in its own directory, capped, stopped (with every child it
/// left) on drop.
pub struct DataPlane {
    pub proc: Proc,
    pub http: u16,
    pub admin: u16,
    pub dir: PathBuf,
    pub audit_log: PathBuf,
    pub work_dir: PathBuf,
    pub cap: Option<MemCap>,
}

impl DataPlane {
    /// Starts the data plane on `config.yaml` in `dir` (written from `config`) with `extra`
    /// flags, and waits for `/readyz`.
    pub async fn file(dir: &Path, config: &str, extra: &[String]) -> Result<DataPlane> {
        let path = dir.join("config.yaml");
        std::fs::write(&path, config)?;
        let mut args = vec!["--config".to_string(), path.display().to_string()];
        args.extend_from_slice(extra);
        Self::spawn(dir, args, &[]).await
    }

    /// Starts the data plane with `args` (plus ports, work dir, audit log, text logs) and `env`.
    pub async fn spawn(
        dir: &Path,
        mut args: Vec<String>,
        env: &[(&str, String)],
    ) -> Result<DataPlane> {
        let (http, admin) = (free_port()?, free_port()?);
        let work_dir = dir.join("work");
        let audit_log = dir.join("audit.log");
        args.extend([
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--work-dir".into(),
            work_dir.display().to_string(),
            "--audit-log".into(),
            audit_log.display().to_string(),
            "--log-format".into(),
            "text".into(),
        ]);
        let mut env: Vec<(&str, String)> = env.to_vec();
        env.push(("RUST_LOG", "warn".into()));
        let proc = Proc::spawn(
            "vr-dataplane",
            &release_binary("vr-dataplane"),
            &args,
            &env,
            dir.join("dataplane.log"),
        )?;
        let cap = MemCap::place(proc.pid(), MEMORY_CAP);
        let mut dp = DataPlane {
            proc,
            http,
            admin,
            dir: dir.to_path_buf(),
            audit_log,
            work_dir,
            cap,
        };
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{admin}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status() == 200 {
                    return Ok(dp);
                }
            }
            if dp.proc.exited() || start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the data plane did not become ready:\n{}",
                    dp.proc.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.http)
    }

    pub fn admin_url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.admin)
    }

    /// A metric's value from `/metrics`: the sum over series whose labels include `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let Ok(r) = reqwest::get(self.admin_url("/metrics")).await else {
            return f64::NAN;
        };
        let text = r.text().await.unwrap_or_default();
        metric_sum(&text, name, labels)
    }

    /// Kills the data plane (SIGKILL) without touching its children.
    pub fn kill_only_the_data_plane(&mut self) {
        self.proc.kill();
    }

    /// The memory cap's figures, or `no-cgroup` (then only the watchdog capped it).
    pub fn cap_report(&self) -> String {
        self.cap
            .as_ref()
            .map(MemCap::describe)
            .unwrap_or_else(|| "no-cgroup".into())
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let kids = children(self.proc.pid());
        self.proc.kill();
        // Children in their own process groups outlive a killed parent: stop them by pid.
        for k in kids {
            kill_pid(k);
        }
        if std::thread::panicking() {
            eprintln!("--- data plane log\n{}", self.proc.log_tail(40));
        }
    }
}

/// Sum of `name{…}` samples in Prometheus text whose labels include every `labels` pair.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for l in text.lines() {
        if l.starts_with('#') {
            continue;
        }
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let (n, rest) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// Normal traffic during an attack

/// What normal requests saw during an attack.
#[derive(Debug, Clone, Default)]
pub struct Normal {
    pub ok: usize,
    pub total: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// Sends one normal request every 200 ms (10 s timeout each) until stopped.
pub struct Prober {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<(bool, f64)>>,
}

impl Prober {
    pub fn start(url: String) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let mut out = Vec::new();
            while !s.load(Ordering::SeqCst) && out.len() < 3000 {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => {
                        let st = r.status().as_u16();
                        r.bytes().await.is_ok() && (st == 200 || st == 206 || st == 304)
                    }
                    Err(_) => false,
                };
                out.push((ok, t.elapsed().as_secs_f64() * 1000.0));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out
        });
        Prober { stop, handle }
    }

    pub async fn stop(self) -> Normal {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.handle.await.unwrap_or_default();
        let mut ms: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let ok = samples.iter().filter(|s| s.0).count();
        let total = samples.len();
        Normal {
            ok,
            total,
            p50_ms: crate::percentile(&mut ms, 50.0),
            p95_ms: crate::percentile(&mut ms, 95.0),
            max_ms: ms.iter().copied().fold(0.0, f64::max),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Findings

/// One attack's result: the `HOSTILE` line.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    pub name: String,
    /// What happened (status, code, counts), short, no spaces.
    pub outcome: String,
    /// Whether the outcome is the safe one the fix must reach.
    pub safe: bool,
    /// Peak RSS of any ffmpeg/ffprobe child.
    pub peak_rss: u64,
    /// Peak RSS of the data plane.
    pub dp_rss: u64,
    /// Bytes: from the origin, written to disk or to the audit log (the row says which).
    pub bytes: u64,
    pub normal: Option<Normal>,
    /// Free text (the expected safe outcome, what was seen).
    pub detail: String,
}

impl Finding {
    pub fn new(name: &str) -> Finding {
        Finding {
            name: name.into(),
            ..Finding::default()
        }
    }

    pub fn usage(mut self, u: &Usage) -> Finding {
        self.peak_rss = u.peak_child_rss;
        self.dp_rss = u.peak_dp_rss;
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.1}MiB", b as f64 / MIB)
            }
        };
        write!(
            f,
            "HOSTILE {} outcome={} safe={} peak_rss={} dp_rss={} bytes={}",
            self.name,
            self.outcome.replace(' ', "_"),
            if self.safe { "yes" } else { "NO" },
            mib(self.peak_rss),
            mib(self.dp_rss),
            self.bytes
        )?;
        match &self.normal {
            Some(n) => write!(
                f,
                " normal={}/{} p50={:.0}ms p95={:.0}ms max={:.0}ms",
                n.ok, n.total, n.p50_ms, n.p95_ms, n.max_ms
            )?,
            None => write!(f, " normal=-")?,
        }
        write!(f, " | {}", self.detail)
    }
}

/// The findings of one row: each printed as it is made; [`Row::finish`] fails the test if any
/// is unsafe, after all of them ran.
pub struct Row {
    pub row: &'static str,
    findings: Vec<Finding>,
}

impl Row {
    pub fn new(row: &'static str) -> Row {
        Row {
            row,
            findings: Vec::new(),
        }
    }

    pub fn record(&mut self, f: Finding) {
        println!("{f}");
        if let Some(path) = std::env::var_os("VR_HOSTILE_REPORT") {
            use std::io::Write;
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(file, "{f}");
            }
        }
        self.findings.push(f);
    }

    /// Records a scenario that could not be run (harness failure) as unsafe.
    pub fn record_result(&mut self, name: &str, r: Result<Finding>) {
        match r {
            Ok(f) => self.record(f),
            Err(e) => {
                let mut f = Finding::new(name);
                f.outcome = "harness-error".into();
                f.detail = format!("{e:#}").replace('\n', " ");
                self.record(f);
            }
        }
    }

    /// Fails the row when an attack that is not in [`OPEN`] succeeds, when a scenario could
    /// not be run at all, or when an attack listed in [`OPEN`] is now stopped (the list and
    /// `docs/SECURITY.md` must then say so: the ratchet only turns one way).
    pub fn finish(self) {
        let bad: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| {
                !f.safe && (!OPEN.contains(&f.name.as_str()) || f.outcome == "harness-error")
            })
            .map(|f| f.name.as_str())
            .collect();
        let closed_but_listed: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.safe && OPEN.contains(&f.name.as_str()))
            .map(|f| f.name.as_str())
            .collect();
        let open: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| !f.safe && OPEN.contains(&f.name.as_str()))
            .map(|f| f.name.as_str())
            .collect();
        if !open.is_empty() {
            println!(
                "HOSTILE_OPEN row={:?} still open (documented in docs/SECURITY.md): {open:?}",
                self.row
            );
        }
        assert!(
            bad.is_empty(),
            "row {}: {} of {} attacks succeed that are not documented as open: {bad:?}",
            self.row,
            bad.len(),
            self.findings.len()
        );
        assert!(
            closed_but_listed.is_empty(),
            "row {}: now stopped but still listed in vr_e2e::hostile::OPEN: {closed_but_listed:?} (remove them there and in docs/SECURITY.md)",
            self.row
        );
    }
}

/// Attacks of issue 15 that are still open (not fixed yet): they are replayed and printed like
/// every other (`safe=NO`), but do not fail the suite, so `e2e/run hostile` guards every
/// closed row against regressions. `docs/SECURITY.md` lists the same names.
pub const OPEN: &[&str] = &[
    // Row 3: escalation through the operator.
    "3-operator-cluster-rbac",
    "3-image-from-cr",
    "3-secret-mount-from-cr",
    "3-foreign-object-adopted",
    "3-vrctl-patches-spec",
    // Row 4: SSRF.
    "4-ssrf-loopback-ip",
    "4-ssrf-loopback-name",
    // Row 5: slow connections.
    "5-slow-connections-200",
    // Row 6: rotated secrets.
    "6-admin-token-rotation",
    "6-signing-key-rotation",
    "6-origin-auth-rotation",
    // Row 7: canary steering.
    "7-canary-steering",
    "7-revision-header-public",
    // Row 8: cache accounting.
    "8-cache-accounting-150-tiny",
    // Row 9: the holes not closed yet.
    "9-presigned-url-in-argv-and-logs",
    "9-ffprobe-codec-whitelist",
    "9-work-emptydir-unbounded",
    "9-admin-port-in-public-service",
];

/// Waits until `f` holds or `deadline` passes; returns whether it held.
pub async fn eventually<F: FnMut() -> bool>(deadline: Duration, mut f: F) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
