//! Harness for the real-component suites: a real etcd + kube-apiserver (+ kube-controller-manager
//! for garbage collection) on 127.0.0.1 started by `e2e/k8s/control-plane.sh`, the operator and
//! data-plane binaries as child processes with their own RBAC-bound identities, and the
//! EndpointSlices a kubelet-less cluster needs (published here, where the operator looks).
//!
//! Every test gets its own namespace; processes are stopped by pid when their handle drops;
//! on a failing test the control-plane and process logs are printed.

pub mod s3;

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod hostile;
pub mod load;
pub mod prometheus;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `cmd` with `stdin` written to its standard input; its output, whatever its exit status.
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> Result<std::process::Output> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// A built binary of the workspace (`e2e/run` builds them first).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    target.join("debug").join(name)
}

/// A running control plane; stopped on drop.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver (and the GC controller) and applies the CRDs and the
    /// operator's RBAC.
    pub fn start() -> Result<Self> {
        Self::start_with(true)
    }

    /// Starts an empty control plane: no CRDs, no operator RBAC (what a Helm chart installs).
    pub fn start_empty() -> Result<Self> {
        Self::start_with(false)
    }

    fn start_with(install: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("vr-e2e-").tempdir()?;
        let script = repo().join("e2e/k8s/control-plane.sh");
        let mut cmd = Command::new(&script);
        cmd.arg("start")
            .arg(dir.path())
            .env("K8S_WATCH_PID", std::process::id().to_string());
        if install {
            // CRDs first, so the garbage collector knows the owner kind from its start.
            cmd.env("K8S_CRDS", repo().join("crds/videoresizer.io_crds.yaml"));
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running control-plane.sh")?;
        if !out.status.success() {
            bail!(
                "control plane did not start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = read_env(&dir.path().join("env"))?;
        let cp = ControlPlane { dir, env };
        if !install {
            return Ok(cp);
        }
        cp.kubectl(&[
            "apply",
            "-f",
            &repo().join("deploy/operator-rbac.yaml").to_string_lossy(),
        ])?;
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/videoresizerconfigs.videoresizer.io",
            "crd/derivatives.videoresizer.io",
        ])?;
        Ok(cp)
    }

    /// The run directory (logs, kubeconfigs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn get(&self, key: &str) -> String {
        self.env.get(key).cloned().unwrap_or_default()
    }

    /// Admin kubeconfig path.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.get("K8S_ADMIN_KUBECONFIG"))
    }

    /// The operator's kubeconfig (static token of `system:serviceaccount:vr-system:vr-operator`).
    pub fn operator_kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.get("K8S_OPERATOR_KUBECONFIG"))
    }

    /// Runs kubectl as admin; returns stdout, fails with stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl_raw(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl as admin and returns the raw output (for expected failures).
    pub fn kubectl_raw(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(self.kubectl_path())
            .args(args)
            .env("KUBECONFIG", self.admin_kubeconfig())
            .env("KUBECACHEDIR", self.dir().join("kubectl-cache"))
            .stdin(Stdio::null())
            .output()
            .context("running kubectl")
    }

    /// Runs kubectl as admin with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<std::process::Output> {
        output_with_stdin(
            Command::new(self.kubectl_path())
                .args(args)
                .env("KUBECONFIG", self.admin_kubeconfig())
                .env("KUBECACHEDIR", self.dir().join("kubectl-cache")),
            stdin,
        )
    }

    /// `kubectl apply -f -` of a YAML string; fails with kubectl's message.
    pub fn apply(&self, yaml: &str) -> Result<()> {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], yaml)?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn kubectl_path(&self) -> PathBuf {
        self.k8s_bin("kubectl")
    }

    /// A program of the Kubernetes toolbox (`kubectl`, `helm`) installed by `e2e/k8s/install.sh`.
    pub fn k8s_bin(&self, name: &str) -> PathBuf {
        PathBuf::from(self.get("K8S_BIN")).join(name)
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.admin_kubeconfig()).await
    }

    /// Creates a namespace with a random name.
    pub fn namespace(&self) -> Result<String> {
        let ns = format!("t-{:08x}", rand::random::<u32>());
        self.kubectl(&["create", "namespace", &ns])?;
        Ok(ns)
    }

    /// Writes a kubeconfig for ServiceAccount `ns/sa` with a token minted by the TokenRequest API.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str) -> Result<PathBuf> {
        let token = self.kubectl(&["create", "token", sa, "-n", ns, "--duration=2h"])?;
        let path = self.dir().join(format!("kubeconfig-{ns}-{sa}"));
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: {sa}\n    namespace: {ns}\ncurrent-context: e2e\n",
            server = self.get("K8S_APISERVER_URL"),
            ca = self.get("K8S_CA_FILE"),
            token = token.trim(),
        );
        std::fs::write(&path, cfg)?;
        Ok(path)
    }

    /// Stops kube-apiserver, keeps it down for `down`, starts it again and waits until it is
    /// ready (blocking: call it from `spawn_blocking` to keep traffic flowing meanwhile).
    pub fn restart_apiserver(&self, down: Duration) -> Result<()> {
        restart_apiserver(self.dir(), down)
    }

    /// Prints every log of the run directory (control plane and processes): call it when a
    /// test fails, before the directory goes.
    pub fn dump_all_logs(&self) {
        self.dump_logs();
        if let Ok(entries) = std::fs::read_dir(self.dir()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log")
                    && !p.to_string_lossy().contains("apiserver")
                    && !p.to_string_lossy().contains("etcd")
                    && !p.to_string_lossy().contains("controller-manager")
                {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!(
                        "--- {} (last 60 lines)\n{}",
                        p.display(),
                        lines[lines.len().saturating_sub(60)..].join("\n")
                    );
                }
            }
        }
    }

    /// Prints the control-plane logs (called when a test fails).
    pub fn dump_logs(&self) {
        for key in ["K8S_APISERVER_LOG", "K8S_CONTROLLER_MANAGER_LOG"] {
            if let Ok(text) = std::fs::read_to_string(self.get(key)) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!(
                    "--- {key} (last 40 lines)\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        let _ = Command::new(repo().join("e2e/k8s/control-plane.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Stops the kube-apiserver of the control plane in `dir`, keeps it down for `down`, starts it
/// again and waits until it is ready (blocking).
pub fn restart_apiserver(dir: &Path, down: Duration) -> Result<()> {
    let out = Command::new(repo().join("e2e/k8s/control-plane.sh"))
        .arg("restart-apiserver")
        .arg(dir)
        .arg(down.as_secs().to_string())
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "restarting kube-apiserver failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn read_env(path: &Path) -> Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// A child process whose output goes to a log file; killed (by pid) on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Spawns `bin args…` with `env`, logging to `log`.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Proc> {
        let file = std::fs::File::create(&log)?;
        let err = file.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        Ok(Proc {
            child,
            log,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (last 40 lines)\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        self.kill();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Polls `f` until it returns `Some`, or fails after `deadline` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Publishes the data-plane processes listening on `(http, admin)` ports of 127.0.0.1 as the
/// ready endpoints of `service` in `ns`, the way the EndpointSlice controller would for ready
/// pods (no kubelet runs here). One slice per process, because each listens on its own ports;
/// slices of processes no longer listed are deleted.
///
/// The API refuses loopback IPs (and single-label names) in endpoints, so these processes are
/// published as FQDN endpoints under the reserved `.invalid` domain: enough for the operator to
/// count ready pods, not to reach them. Suites that need the operator to reach the pods run in
/// their own network namespace and use [`publish_pod_endpoints`].
pub async fn publish_endpoints(
    client: &Client,
    ns: &str,
    service: &str,
    ports: &[(u16, u16)],
) -> Result<()> {
    let endpoints: Vec<(String, u16, u16)> = ports
        .iter()
        .enumerate()
        .map(|(i, (http, admin))| (format!("dataplane-{i}.vr-e2e.invalid"), *http, *admin))
        .collect();
    publish(client, ns, service, "FQDN", &endpoints).await
}

/// Like [`publish_endpoints`], for processes listening on routable pod addresses (`ip`, http
/// port, admin port), published as IPv4 endpoints the operator can scrape. Used inside the
/// network namespace `e2e/netns.sh` creates, where `10.244.0.0/24` is local.
pub async fn publish_pod_endpoints(
    client: &Client,
    ns: &str,
    service: &str,
    pods: &[(std::net::Ipv4Addr, u16, u16)],
) -> Result<()> {
    let endpoints: Vec<(String, u16, u16)> = pods
        .iter()
        .map(|(ip, http, admin)| (ip.to_string(), *http, *admin))
        .collect();
    publish(client, ns, service, "IPv4", &endpoints).await
}

async fn publish(
    client: &Client,
    ns: &str,
    service: &str,
    address_type: &str,
    endpoints: &[(String, u16, u16)],
) -> Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    for (i, (address, http, admin)) in endpoints.iter().enumerate() {
        let name = format!("{service}-e2e-{i}");
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([
                    (
                        "kubernetes.io/service-name".to_string(),
                        service.to_string(),
                    ),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        "vr-e2e-harness".to_string(),
                    ),
                ])),
                ..ObjectMeta::default()
            },
            address_type: address_type.into(),
            endpoints: vec![Endpoint {
                addresses: vec![address.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                hostname: Some(format!("dp-{i}")),
                ..Endpoint::default()
            }],
            ports: Some(vec![
                EndpointPort {
                    name: Some("http".into()),
                    port: Some(i32::from(*http)),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                },
                EndpointPort {
                    name: Some("admin".into()),
                    port: Some(i32::from(*admin)),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                },
            ]),
        };
        let mut v = serde_json::to_value(&slice)?;
        v["apiVersion"] = "discovery.k8s.io/v1".into();
        v["kind"] = "EndpointSlice".into();
        api.patch(
            &name,
            &PatchParams::apply("vr-e2e-harness").force(),
            &Patch::Apply(v),
        )
        .await?;
    }
    for i in endpoints.len()..endpoints.len() + 8 {
        let _ = api
            .delete(&format!("{service}-e2e-{i}"), &Default::default())
            .await;
    }
    Ok(())
}

/// Percentile (0–100) of sorted-in-place samples.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    if samples.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (samples.len() as f64 - 1.0)).round() as usize;
    samples[idx.min(samples.len() - 1)]
}
