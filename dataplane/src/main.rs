//! `vr-dataplane`: parse flags, load and compile the config (exit 64 if it is bad, before any
//! port is bound), build the app, serve the public and admin ports, watch the config — a file
//! (`--config`) or, in Kubernetes, the ConfigMaps of a config (`--kube-config-name`).

use anyhow::Context;
use clap::{ArgGroup, Parser};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vr_dataplane::control::app::{App, DiskSizing, Settings, Sizing, DEFAULT_DISK_CACHE_BYTES};
use vr_dataplane::control::{runtime::Runtime, sources::file as config};
use vr_dataplane::edge::{admin, server, service};
use vr_dataplane::telemetry;

/// On-the-fly video transformation server.
#[derive(Parser, Debug)]
#[command(name = "vr-dataplane", version)]
#[command(group(ArgGroup::new("source").required(true).args(["config", "kube_config_name"])))]
struct Flags {
    /// Config file (YAML or JSON; the document the operator puts in ConfigMaps).
    #[arg(long, env = "VR_CONFIG")]
    config: Option<PathBuf>,
    /// Kubernetes mode: follow the ConfigMaps of this config (labelled
    /// `videoresizer.io/config=NAME`); uses the in-cluster service account or KUBECONFIG.
    #[arg(long, env = "VR_KUBE_CONFIG_NAME", value_name = "NAME")]
    kube_config_name: Option<String>,
    /// Namespace of the ConfigMaps (kube mode); default: the pod's or the kubeconfig's.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    sizing: SizingFlags,
    /// Public address.
    #[arg(long, env = "VR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
    /// Admin address (probes, metrics, admin API).
    #[arg(long, env = "VR_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    admin_listen: String,
    /// Scratch directory for spooled sources and outputs being streamed.
    #[arg(long, env = "VR_WORK_DIR", default_value_os_t = std::env::temp_dir().join("vr-dataplane"))]
    work_dir: PathBuf,
    /// ffmpeg binary.
    #[arg(long, env = "VR_FFMPEG", default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    /// ffprobe binary.
    #[arg(long, env = "VR_FFPROBE", default_value = "ffprobe")]
    ffprobe: PathBuf,
    /// Append-only audit log of admin actions (JSON lines); always also logged.
    #[arg(long, env = "VR_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// How often the config file is checked for changes, in milliseconds.
    #[arg(long, env = "VR_CONFIG_POLL_MS", default_value_t = 1000)]
    config_poll_ms: u64,
    /// Log format.
    #[arg(long, env = "VR_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

/// Process-level sizes in kube mode (in file mode they come from the config file).
#[derive(clap::Args, Debug)]
struct SizingFlags {
    /// Memory cache layer size in bytes, 0 = off (kube mode).
    #[arg(long, env = "VR_MEMORY_CACHE_BYTES", default_value_t = Sizing::default().memory_cache_bytes)]
    memory_cache_bytes: u64,
    /// Largest object held in the memory cache, in bytes (kube mode).
    #[arg(long, env = "VR_MEMORY_CACHE_OBJECT_BYTES", default_value_t = Sizing::default().memory_cache_object_bytes)]
    memory_cache_object_bytes: u64,
    /// Disk cache layer directory; off when not given (kube mode).
    #[arg(long, env = "VR_DISK_CACHE_DIR")]
    disk_cache_dir: Option<PathBuf>,
    /// Disk cache layer size in bytes (kube mode, with --disk-cache-dir).
    #[arg(long, env = "VR_DISK_CACHE_BYTES", default_value_t = DEFAULT_DISK_CACHE_BYTES)]
    disk_cache_bytes: u64,
    /// Concurrent transforms, 0 = number of CPUs (kube mode).
    #[arg(long, env = "VR_TRANSFORM_SLOTS", default_value_t = Sizing::default().transform_slots)]
    transform_slots: u32,
    /// Transforms that may wait for a slot (kube mode).
    #[arg(long, env = "VR_TRANSFORM_QUEUE", default_value_t = Sizing::default().transform_queue)]
    transform_queue: u32,
    /// Longest wait for a transform slot, in seconds (kube mode).
    #[arg(long, env = "VR_TRANSFORM_QUEUE_TIMEOUT_SECONDS", default_value_t = Sizing::default().transform_queue_timeout.as_secs())]
    transform_queue_timeout_seconds: u64,
}

impl SizingFlags {
    /// The sizes, or every problem with them (each names its flag).
    fn sizing(&self) -> Result<Sizing, Vec<String>> {
        let mut errs = Vec::new();
        if self.memory_cache_bytes > 0 && self.memory_cache_object_bytes > self.memory_cache_bytes {
            errs.push("--memory-cache-object-bytes must not exceed --memory-cache-bytes".into());
        }
        if self.disk_cache_dir.is_some() && self.disk_cache_bytes == 0 {
            errs.push("--disk-cache-bytes must be positive".into());
        }
        if self.transform_slots > 1024 {
            errs.push("--transform-slots must be at most 1024".into());
        }
        if self.transform_queue > 100_000 {
            errs.push("--transform-queue must be at most 100000".into());
        }
        if !(1..=3600).contains(&self.transform_queue_timeout_seconds) {
            errs.push("--transform-queue-timeout-seconds must be between 1 and 3600".into());
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Sizing {
            memory_cache_bytes: self.memory_cache_bytes,
            memory_cache_object_bytes: self.memory_cache_object_bytes,
            disk_cache: self.disk_cache_dir.as_ref().map(|d| DiskSizing {
                dir: std::path::absolute(d).unwrap_or_else(|_| d.clone()),
                max_bytes: self.disk_cache_bytes,
            }),
            transform_slots: self.transform_slots,
            transform_queue: self.transform_queue,
            transform_queue_timeout: Duration::from_secs(self.transform_queue_timeout_seconds),
            ..Sizing::default()
        })
    }
}

/// Exit status for an unusable config (EX_DATAERR-like, as in sysexits' EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let _log = telemetry::init_logging(flags.log_format == "json");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(flags))
}

async fn run(flags: Flags) -> ExitCode {
    match (&flags.config, &flags.kube_config_name) {
        (Some(path), _) => run_file(path.clone(), flags).await,
        (None, Some(name)) => run_kube(name.clone(), flags).await,
        // clap's required group rules this out.
        (None, None) => ExitCode::from(EXIT_BAD_CONFIG),
    }
}

/// The settings from flags, or `None` (after saying why) if ffmpeg cannot be found.
fn settings(flags: &Flags) -> Option<Settings> {
    let (Some(ffmpeg), Some(ffprobe)) = (find_program(&flags.ffmpeg), find_program(&flags.ffprobe))
    else {
        eprintln!(
            "cannot find {} and {} (install ffmpeg, or pass --ffmpeg/--ffprobe)",
            flags.ffmpeg.display(),
            flags.ffprobe.display()
        );
        return None;
    };
    Some(Settings {
        ffmpeg,
        ffprobe,
        work_dir: flags.work_dir.clone(),
        audit_log: flags.audit_log.clone(),
    })
}

/// File mode: the config file is read and compiled before any port is bound, then watched.
async fn run_file(path: PathBuf, flags: Flags) -> ExitCode {
    let doc = match config::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let Some(settings) = settings(&flags) else {
        return ExitCode::FAILURE;
    };
    let app = match App::new(settings, &doc.config, &doc.base).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let digest = doc.digest.clone();
    match Runtime::compile(doc, app.origin_state.clone()) {
        Ok(r) => app.install(r),
        Err(errs) => {
            eprintln!("{}: config is invalid:\n{errs}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    let watcher = {
        let app = app.clone();
        let state = app.origin_state.clone();
        config::watch(
            path,
            Duration::from_millis(flags.config_poll_ms.max(50)),
            digest,
            move |doc| match doc.map(|d| Runtime::compile(d, state.clone())) {
                Ok(Ok(r)) => {
                    app.install(r);
                    Ok(())
                }
                Ok(Err(errs)) => {
                    let reason = errs.to_string();
                    app.refused(&reason);
                    Err(reason)
                }
                // A file that does not parse is refused (and counted) like an invalid one.
                Err(reason) => {
                    app.refused(&reason);
                    Err(reason)
                }
            },
        )
    };
    finish(serve(app, flags, watcher).await)
}

/// Kube mode: ports are bound at once and answer 503 (`/readyz` too) until the first revision
/// named by the pointer ConfigMap is loaded; `/healthz` answers 200 from the start.
async fn run_kube(name: String, flags: Flags) -> ExitCode {
    if !vr_dataplane::control::sources::configmaps::valid_config_name(&name) {
        eprintln!(
            "--kube-config-name {name:?}: must be a lowercase DNS label of at most 56 characters"
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    let sizing = match flags.sizing.sizing() {
        Ok(s) => s,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let Some(settings) = settings(&flags) else {
        return ExitCode::FAILURE;
    };
    let client = match ::kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {e}");
            return ExitCode::FAILURE;
        }
    };
    let namespace = flags
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let app = match App::with_sizing(settings, sizing).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let follow =
        vr_dataplane::control::sources::configmaps::run(client, namespace, name, app.clone());
    finish(serve(app, flags, follow).await)
}

fn finish(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

/// Binds both ports, then runs `source` (the config follower) beside the servers until a
/// shutdown signal.
async fn serve(
    app: Arc<App>,
    flags: Flags,
    source: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let public = tokio::net::TcpListener::bind(&flags.listen)
        .await
        .with_context(|| format!("cannot listen on {}", flags.listen))?;
    let admin_l = tokio::net::TcpListener::bind(&flags.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", flags.admin_listen))?;
    tracing::info!(
        listen = %public.local_addr()?,
        admin = %admin_l.local_addr()?,
        revision = app.runtime().map(|r| r.revision().to_owned()).unwrap_or_default(),
        "serving"
    );

    let watcher = tokio::spawn(source);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let public_task = tokio::spawn(server::serve(
        public,
        Arc::new(service::DataPlane(app.clone())),
        wait_stop(stop_rx.clone()),
    ));
    let admin_task = tokio::spawn(server::serve(
        admin_l,
        Arc::new(admin::AdminApi(app.clone())),
        wait_stop(stop_rx),
    ));

    shutdown_signal().await;
    tracing::info!("shutting down: draining connections");
    let _ = stop_tx.send(true);
    watcher.abort();
    let _ = public_task.await;
    let _ = admin_task.await;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// An absolute path for `program`: itself if it has a directory part, else the first match on `PATH`.
fn find_program(program: &std::path::Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program
            .is_file()
            .then(|| std::path::absolute(program).ok())
            .flatten();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
