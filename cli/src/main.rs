//! `vrctl` / `kubectl-vr`: parse the command line, run one command, print the result (human by
//! default, `-o json|yaml` for scripts) and exit with a code from [`vr_cli::exit`].

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;
use vr_cli::cluster::{self, Cluster, Request};
use vr_cli::dataplane;
use vr_cli::exit::{self, CliError};
use vr_cli::files;
use vr_cli::progress::Progress;
use vr_cli::report::{history_text, print, status_text, status_value, Format};
use vr_cli::watch::{self, Outcome};

const EXIT_CODES: &str = "Exit codes: 0 ok (status --watch: rolled out and ready); 1 the command \
found problems (invalid config, failed prewarm or purge; status --watch: rolled back or invalid); \
2 bad command line; 3 the API server or a data plane could not be reached, or a wait timed out; \
4 the config or revision does not exist; 5 the API server refused the request.";

/// video-resizer's command line: validate and render configs offline, follow and steer
/// rollouts, purge and prewarm data planes.
#[derive(Parser, Debug)]
#[command(name = "vrctl", version, after_help = EXIT_CODES)]
struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Human)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct KubeArgs {
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct WaitArg {
    /// Wait until the operator has acted on the request (seconds; 0 = do not wait).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    wait: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check config files offline with the operator's own validation; every error, with its path.
    Validate {
        /// YAML/JSON files holding VideoResizerConfigs and their Derivatives (`-` = stdin).
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print the data-plane config (the revision ConfigMap's document) a spec would produce.
    Render {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// A config's phase, revision, conditions and rollout. With --watch, follow the rollout to
    /// its outcome and exit 0 once rolled out and ready, 1 when rolled back or invalid, 3 on
    /// timeout (a CI gate after `kubectl apply`).
    Status {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
        /// Follow the rollout until it is rolled out (exit 0) or rolled back (exit 1).
        #[arg(short = 'w', long)]
        watch: bool,
        /// Give up watching after this long (`90s`, `10m`, `1m30s`; exit 3).
        #[arg(long, requires = "watch", default_value = "10m", value_parser = watch::parse_timeout)]
        timeout: Duration,
    },
    /// A config's revision history and outcomes.
    History {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Promote the running canary now (skips the remaining steps).
    Promote {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Abort the running canary: all traffic back to stable at once.
    Abort {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Hold the rollout at its current step (analysis keeps running).
    Pause {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Release a paused rollout.
    Resume {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Try the current spec's revision again after a rollback or abort.
    Retry {
        name: String,
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Make an earlier revision stable at once, without analysis.
    Rollback {
        name: String,
        /// Revision number (as in r<N>).
        #[arg(long = "to", value_name = "N")]
        to: u64,
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Remove every cached variant carrying a tag, on each data plane's admin API.
    Purge {
        /// Cache tag (origin `cacheTags`).
        #[arg(long)]
        tag: String,
        /// Admin base URL of a data-plane pod (repeat for each pod).
        #[arg(
            long = "admin-url",
            env = "VR_ADMIN_URL",
            value_delimiter = ',',
            required = true
        )]
        admin_urls: Vec<String>,
        /// File holding an admin token with scope `purge` (or set VR_ADMIN_TOKEN).
        #[arg(long, value_name = "FILE")]
        token_file: Option<String>,
        /// Seconds to wait for each data plane.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Print a shell completion script (`source <(vrctl completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Request every path × derivative on a data plane so the variants are transformed and cached.
    Prewarm {
        /// Public base URL of the data plane (a Service or an ingress).
        #[arg(long, env = "VR_URL")]
        url: String,
        /// Paths such as /videos/intro.mp4.
        #[arg(required_unless_present = "paths_file")]
        paths: Vec<String>,
        /// File with one path per line (`#` comments).
        #[arg(long, value_name = "FILE")]
        paths_file: Option<String>,
        /// Derivative to warm (repeat, or comma-separated).
        #[arg(
            short = 'd',
            long = "derivative",
            value_delimiter = ',',
            required = true
        )]
        derivatives: Vec<String>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Seconds allowed per variant.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// No progress bar.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// The program's name as invoked: `kubectl vr` as the kubectl plugin, `vrctl` otherwise.
fn program_name() -> &'static str {
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked.starts_with("kubectl-vr") {
        "kubectl vr"
    } else {
        "vrctl"
    }
}

/// Parses the command line; help and errors name the program as it was invoked (`kubectl vr`
/// when installed as the kubectl plugin `kubectl-vr`, `vrctl` otherwise).
fn parse_args() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let name = program_name();
    let matches = Cli::command().name(name).bin_name(name).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse_args();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vrctl: cannot start the async runtime: {e}");
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vrctl: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    let f = cli.output;
    match cli.command {
        Command::Validate { files } => validate(f, &files),
        Command::Render { files } => render(f, &files),
        Command::Status {
            name,
            kube,
            watch,
            timeout,
        } => {
            let c = connect(&kube).await?;
            if watch {
                return watch_status(f, &c, &name, timeout).await;
            }
            let cfg = c.get(&name).await?;
            print(f, &status_value(&cfg), || status_text(&c.namespace, &cfg));
            Ok(exit::OK)
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let name = if program_name() == "vrctl" {
                "vrctl"
            } else {
                "kubectl-vr"
            };
            let mut cmd = Cli::command().name(name).bin_name(name);
            clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::History { name, kube } => {
            let c = connect(&kube).await?;
            let cfg = c.get(&name).await?;
            let st = cfg.status.clone().unwrap_or_default();
            print(f, &st.history, || history_text(&cfg));
            Ok(exit::OK)
        }
        Command::Promote { name, kube, wait } => {
            request(f, &kube, &name, Request::Promote, wait.wait).await
        }
        Command::Abort { name, kube, wait } => {
            request(f, &kube, &name, Request::Abort, wait.wait).await
        }
        Command::Pause { name, kube } => request(f, &kube, &name, Request::Pause, 0).await,
        Command::Resume { name, kube } => request(f, &kube, &name, Request::Resume, 0).await,
        Command::Retry { name, kube, wait } => {
            request(f, &kube, &name, Request::Retry, wait.wait).await
        }
        Command::Rollback {
            name,
            to,
            kube,
            wait,
        } => request(f, &kube, &name, Request::RollbackTo(to), wait.wait).await,
        Command::Purge {
            tag,
            admin_urls,
            token_file,
            timeout,
        } => {
            let token = match token_file {
                Some(p) => std::fs::read_to_string(&p)
                    .map_err(|e| CliError::new(exit::FAILED, format!("{p}: cannot read: {e}")))?
                    .trim()
                    .to_owned(),
                None => std::env::var("VR_ADMIN_TOKEN").map_err(|_| {
                    CliError::new(
                        exit::USAGE,
                        "no admin token: give --token-file or set VR_ADMIN_TOKEN",
                    )
                })?,
            };
            let results =
                dataplane::purge(&admin_urls, &token, &tag, Duration::from_secs(timeout)).await;
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            let removed: u64 = results.iter().map(|r| r.removed).sum();
            print(f, &results, || {
                let mut s = String::new();
                for r in &results {
                    match &r.error {
                        None => s.push_str(&format!("{}: removed {}\n", r.admin_url, r.removed)),
                        Some(e) => s.push_str(&format!("{}: FAILED: {e}\n", r.admin_url)),
                    }
                }
                s.push_str(&format!(
                    "purged tag {tag}: {removed} variant(s) removed on {} of {} data plane(s)\n",
                    results.len() - failed,
                    results.len()
                ));
                s
            });
            Ok(if failed > 0 { exit::FAILED } else { exit::OK })
        }
        Command::Prewarm {
            url,
            mut paths,
            paths_file,
            derivatives,
            concurrency,
            timeout,
            quiet,
        } => {
            if let Some(p) = paths_file {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| CliError::new(exit::FAILED, format!("{p}: cannot read: {e}")))?;
                paths.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            prewarm(f, &url, &paths, &derivatives, concurrency, timeout, quiet).await
        }
    }
}

async fn connect(k: &KubeArgs) -> Result<Cluster, CliError> {
    cluster::connect(
        k.kubeconfig.as_deref(),
        k.context.as_deref(),
        k.namespace.as_deref(),
    )
    .await
}

/// `status --watch`: follows config `name` (state changes on stderr), prints the final status
/// in the chosen format, and maps the outcome to the exit code ([`watch::follow`]).
async fn watch_status(
    f: Format,
    c: &Cluster,
    name: &str,
    timeout: Duration,
) -> Result<u8, CliError> {
    let (outcome, cfg) = watch::follow(c, name, timeout, |o| {
        let (word, why) = match o {
            Outcome::Done(m) => ("rolled out", m),
            Outcome::Failed(m) => ("FAILED", m),
            Outcome::Waiting(m) => ("waiting", m),
        };
        eprintln!("{}/{name}: {word}: {why}", c.namespace);
    })
    .await?;
    print(f, &status_value(&cfg), || status_text(&c.namespace, &cfg));
    match outcome {
        Outcome::Done(_) => Ok(exit::OK),
        Outcome::Failed(m) => Err(CliError::new(
            exit::FAILED,
            format!("{name} was rolled back or is invalid: {m}"),
        )),
        Outcome::Waiting(m) => Err(CliError::new(
            exit::UNAVAILABLE,
            format!(
                "{name}: not rolled out after {}s; last: {m}",
                timeout.as_secs()
            ),
        )),
    }
}

fn validate(f: Format, paths: &[String]) -> Result<u8, CliError> {
    let sources = files::read_sources(paths)?;
    let ignored = files::load(&sources).ignored;
    let (checked, mut problems) = files::check(&sources);
    let mut valid = Vec::new();
    for c in checked {
        match c.result {
            Ok(_) => valid.push(format!(
                "VideoResizerConfig/{}",
                c.config.metadata.name.unwrap_or_default()
            )),
            Err(p) => problems.extend(p),
        }
    }
    let ok = problems.is_empty();
    print(
        f,
        &json!({"valid": ok, "validConfigs": valid, "errors": problems, "ignored": ignored}),
        || {
            let mut s = String::new();
            if !ignored.is_empty() {
                s.push_str(&format!(
                    "skipped {} object(s) of other API groups\n",
                    ignored.len()
                ));
            }
            for p in &problems {
                s.push_str(&format!("{p}\n"));
            }
            for v in &valid {
                s.push_str(&format!("{v}: valid\n"));
            }
            if !ok {
                s.push_str(&format!("{} error(s)\n", problems.len()));
            }
            s
        },
    );
    Ok(if ok { exit::OK } else { exit::FAILED })
}

fn render(f: Format, paths: &[String]) -> Result<u8, CliError> {
    let sources = files::read_sources(paths)?;
    let (checked, mut problems) = files::check(&sources);
    let mut out = Vec::new();
    for c in checked {
        match c.result {
            Ok(r) => {
                let name = c.config.metadata.name.clone().unwrap_or_default();
                let document: Value = serde_yaml::from_str(&r.document).unwrap_or(Value::Null);
                out.push((name, r, document));
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Err(CliError::new(
            exit::FAILED,
            format!("{} error(s); nothing rendered", problems.len()),
        ));
    }
    let values: Vec<Value> = out
        .iter()
        .map(|(name, r, doc)| {
            json!({
                "config": name,
                "hash": r.hash,
                "secrets": r.secrets.iter().map(|(s, k)| format!("{s}/{k}")).collect::<Vec<_>>(),
                "document": doc,
            })
        })
        .collect();
    print(f, &values, || {
        let mut s = String::new();
        for (name, r, _) in &out {
            s.push_str(&format!(
                "# VideoResizerConfig/{name}: content hash {}\n---\n{}",
                r.hash, r.document
            ));
        }
        s
    });
    Ok(exit::OK)
}

async fn request(
    f: Format,
    kube: &KubeArgs,
    name: &str,
    req: Request,
    wait: u64,
) -> Result<u8, CliError> {
    let c = connect(kube).await?;
    let ts = now();
    let mut cfg = c.request(name, req, &ts).await?;
    let mut consumed = false;
    if wait > 0 && req.consumed() {
        cfg = c
            .wait_consumed(name, req, Duration::from_secs(wait))
            .await?;
        consumed = true;
    }
    let value = req.value(&ts);
    print(
        f,
        &json!({
            "config": name,
            "namespace": c.namespace,
            "annotation": req.annotation(),
            "value": value,
            "actedOn": consumed,
            "status": cfg.status,
        }),
        || {
            let what = match (req, &value) {
                (Request::Resume, _) => format!("removed {}", req.annotation()),
                (_, Some(v)) => format!("set {}={v}", req.annotation()),
                (_, None) => String::new(),
            };
            let mut s = format!("{}/{name}: {what}\n", c.namespace);
            if consumed {
                s.push_str("the operator acted on it\n");
                s.push_str(&status_text(&c.namespace, &cfg));
            }
            s
        },
    );
    Ok(exit::OK)
}

#[allow(clippy::too_many_arguments)]
async fn prewarm(
    f: Format,
    url: &str,
    paths: &[String],
    derivatives: &[String],
    concurrency: usize,
    timeout: u64,
    quiet: bool,
) -> Result<u8, CliError> {
    let total = paths.len() * derivatives.len();
    let mut bar = Progress::new(total, quiet || f != Format::Human);
    let results = dataplane::prewarm(
        url,
        paths,
        derivatives,
        concurrency,
        Duration::from_secs(timeout),
        |w| bar.step(w.ok(), &format!("{} {}", w.derivative, w.path)),
    )
    .await;
    bar.finish();
    let failed: Vec<_> = results.iter().filter(|w| !w.ok()).collect();
    let transformed = results
        .iter()
        .filter(|w| w.ok() && w.cache == "MISS")
        .count();
    let cached = results
        .iter()
        .filter(|w| w.ok() && w.cache != "MISS")
        .count();
    let bytes: u64 = results.iter().map(|w| w.bytes).sum();
    let summary = format!(
        "prewarmed {}/{total} variant(s) in {:.1} s: {transformed} transformed, {cached} already cached, {} failed, {bytes} bytes",
        total - failed.len(),
        bar.elapsed_seconds(),
        failed.len()
    );
    // The summary always reaches stderr, whatever the output format, so a log shows it.
    eprintln!("{summary}");
    print(f, &results, || {
        let mut s = String::new();
        for w in &failed {
            s.push_str(&format!(
                "FAILED {} ?derivative={}: {}\n",
                w.path,
                w.derivative,
                w.error.as_deref().unwrap_or_default()
            ));
        }
        s
    });
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
