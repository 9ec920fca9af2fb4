//! `vr-dataplane`: parse flags, load and compile the config (exit 64 if it is bad, before any
//! port is bound), build the app, serve the public and admin ports, watch the config.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vr_dataplane::app::{App, Settings};
use vr_dataplane::{admin, config, runtime::Runtime, server, service, telemetry};

/// On-the-fly video transformation server.
#[derive(Parser, Debug)]
#[command(name = "vr-dataplane", version)]
struct Flags {
    /// Config file (YAML or JSON; the document the operator puts in ConfigMaps).
    #[arg(long, env = "VR_CONFIG")]
    config: PathBuf,
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

/// Exit status for an unusable config (EX_DATAERR-like, as in sysexits' EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let flags = Flags::parse();
    telemetry::init_logging(flags.log_format == "json");
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
    let doc = match config::read(&flags.config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let (Some(ffmpeg), Some(ffprobe)) = (find_program(&flags.ffmpeg), find_program(&flags.ffprobe))
    else {
        eprintln!(
            "cannot find {} and {} (install ffmpeg, or pass --ffmpeg/--ffprobe)",
            flags.ffmpeg.display(),
            flags.ffprobe.display()
        );
        return ExitCode::FAILURE;
    };
    let settings = Settings {
        ffmpeg,
        ffprobe,
        work_dir: flags.work_dir.clone(),
        audit_log: flags.audit_log.clone(),
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
            eprintln!("{}: config is invalid:\n{errs}", flags.config.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    match serve(app, flags, digest).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

async fn serve(app: Arc<App>, flags: Flags, digest: String) -> anyhow::Result<()> {
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

    let watcher = {
        let app = app.clone();
        let state = app.origin_state.clone();
        tokio::spawn(config::watch(
            flags.config.clone(),
            Duration::from_millis(flags.config_poll_ms.max(50)),
            digest,
            move |doc| match Runtime::compile(doc, state.clone()) {
                Ok(r) => {
                    app.install(r);
                    Ok(())
                }
                Err(errs) => {
                    let reason = errs.to_string();
                    app.refused(&reason);
                    Err(reason)
                }
            },
        ))
    };

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
