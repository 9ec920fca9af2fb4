//! `vr-operator`: parse flags, connect, check the CRDs are installed, serve metrics and probes,
//! win the Lease, run the controller; exit if leadership is lost (the Deployment restarts us).

use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use kube::client::ClientBuilder;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vr_crds::resources::VideoResizerConfig;
use vr_operator::api_requests::CountLayer;
use vr_operator::controller::{self, Context};
use vr_operator::core::Settings;
use vr_operator::lease::{self, LeaseSettings};
use vr_operator::metrics::Metrics;

/// Kubernetes operator for video-resizer.
#[derive(Parser, Debug)]
#[command(name = "vr-operator", version)]
struct Flags {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Data-plane image used when a config does not name one.
    #[arg(long, env = "VR_DATAPLANE_IMAGE", default_value = concat!("video-resizer/dataplane:", env!("CARGO_PKG_VERSION")))]
    dataplane_image: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "VR_OPERATOR_METRICS_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    metrics_listen: String,
    /// Elect a leader on a Lease (turn off only when exactly one replica runs).
    #[arg(long, env = "VR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "VR_LEASE_NAME", default_value = "video-resizer-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (default: pod name + random suffix).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, env = "VR_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if flags.log_format == "json" {
        b.json().flatten_event(true).init();
    } else {
        b.init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let config = kube::Config::infer().await.map_err(|e| {
        anyhow::anyhow!("cannot find the Kubernetes API (kubeconfig or in-cluster): {e}")
    })?;
    // Every request is counted by verb and resource (vr_operator_api_requests_total).
    let client = ClientBuilder::try_from(config)
        .map_err(|e| anyhow::anyhow!("cannot reach the Kubernetes API: {e}"))?
        .with_layer(&CountLayer::new(metrics.api_requests.clone()))
        .build();
    let vrcs: Api<VideoResizerConfig> = match &flags.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if let Err(e) = vrcs.list(&ListParams::default().limit(1)).await {
        anyhow::bail!("cannot list VideoResizerConfigs ({e}); are the CRDs installed (kubectl apply -f crds/) and is the operator allowed to read them?");
    }
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(&flags.metrics_listen).await?;
    tracing::info!(metrics = %listener.local_addr()?, "serving metrics and probes");
    tokio::spawn(serve_metrics(listener, metrics.clone(), ready.clone()));

    let identity = flags.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "vr-operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings {
            default_image: flags.dataplane_image.clone(),
        },
        metrics.clone(),
        identity.clone(),
        vr_operator::analysis::Analyzer::new(std::time::Duration::from_secs(2))?,
    ));
    if !flags.leader_election {
        ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        controller::run(ctx, flags.namespace).await;
        return Ok(());
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), &flags.lease_namespace);
    let settings = LeaseSettings::new(&flags.lease_name, &flags.lease_namespace, &identity);
    // A follower is ready (it can take over); only the leader acts.
    ready.store(true, Ordering::Relaxed);
    lease::acquire(&leases, &settings).await;
    metrics.leader.set(1);
    tokio::select! {
        () = controller::run(ctx, flags.namespace) => Ok(()),
        lost = lease::keep(&leases, &settings) => {
            metrics.leader.set(0);
            // Stop acting at once: exiting drops every in-flight reconcile.
            Err(anyhow::anyhow!("{lost}"))
        }
    }
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let ready = ready.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, metrics.to_string()),
                        "/healthz" => (StatusCode::OK, "ok".to_string()),
                        "/readyz" if ready.load(Ordering::Relaxed) => {
                            (StatusCode::OK, "ready".to_string())
                        }
                        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string()),
                        _ => (StatusCode::NOT_FOUND, "not found".to_string()),
                    };
                    let mut r = Response::new(Full::new(bytes::Bytes::from(body)));
                    *r.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
