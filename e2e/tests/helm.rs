//! Suite `helm`: the chart on a real kube-apiserver. Run with `e2e/run helm`.
//!
//! * Bad values fail `helm install` with a message naming them; `helm lint` is clean.
//! * Each value file (dev, staging, prod) installs on an empty control plane; the operator then
//!   runs as a process exactly as the chart's Deployment would start it (its args and env) with
//!   a token of the chart's ServiceAccount (TokenRequest), so only the chart's RBAC is granted;
//!   it reconciles the chart's example config to `Ready` with a live data plane. `helm upgrade`
//!   removes what the new values turn off; `helm uninstall` leaves none of the release's
//!   objects (the CRDs stay by design: `helm.sh/resource-policy: keep`).
//! * `vrctl validate` and the operator report the same errors for a broken config; `vrctl
//!   rollback --to N` and `vrctl retry` reach the API server with the chart's vrctl ClusterRole.
//! * The Argo CD health check (real Lua) maps status objects the operator produced.
//! * `vrctl prewarm` drives real transforms on a running data plane; `vrctl purge --tag`
//!   empties them.

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use vr_e2e::*;

const RELEASE: &str = "vr";
const RELEASE_NS: &str = "vr-system";
/// `<release>-<chart>-operator`, the chart's name for the operator's objects.
const OPERATOR: &str = "vr-video-resizer-operator";

/// Set when the operator consumes the rollout request annotations (the canary work): the
/// rollback/retry test then asserts the operator's effect, not only that the request arrived.
const OPERATOR_CONSUMES_REQUESTS: bool = true;

fn chart() -> PathBuf {
    repo().join("charts/video-resizer")
}

fn helm(cp: &ControlPlane, args: &[&str]) -> Result<Output> {
    let home = cp.dir().join("helm");
    Command::new(cp.k8s_bin("helm"))
        .args(args)
        .env("KUBECONFIG", cp.admin_kubeconfig())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .context("running helm")
}

fn helm_ok(cp: &ControlPlane, args: &[&str]) -> Result<String> {
    let out = helm(cp, args)?;
    ensure!(
        out.status.success(),
        "helm {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn vrctl(args: &[&str], kubeconfig: Option<&Path>) -> Result<Output> {
    let mut cmd = Command::new(binary("vrctl"));
    cmd.args(args).stdin(Stdio::null());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    cmd.output().context("running vrctl")
}

/// Runs vrctl with `--kubeconfig FILE` and no KUBECONFIG in its environment.
fn vrctl_flags(args: &[&str], kubeconfig: &Path) -> Result<Output> {
    Command::new(binary("vrctl"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .context("running vrctl")
}

fn json_of(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "not JSON: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Minimal stand-ins for the Prometheus Operator's CRDs (any object accepted), so the values
/// that turn monitoring on can be installed; their real schemas are not checked here.
fn monitoring_crds() -> String {
    let mut s = String::new();
    for (kind, plural) in [
        ("ServiceMonitor", "servicemonitors"),
        ("PodMonitor", "podmonitors"),
        ("PrometheusRule", "prometheusrules"),
    ] {
        s.push_str(&format!(
            "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
            singular = kind.to_lowercase()
        ));
    }
    s
}

/// Sample media served over HTTP by a small file server (the example's origin).
struct Media {
    _dir: tempfile::TempDir,
    _server: Proc,
    port: u16,
}

fn make_sample(path: &Path, seconds: u32) -> Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=640x360:rate=25:duration={seconds}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:duration={seconds}"),
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac"])
        .arg(path)
        .status()?;
    ensure!(status.success(), "ffmpeg could not make {}", path.display());
    Ok(())
}

async fn media(cp: &ControlPlane) -> Result<Media> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("videos"))?;
    make_sample(&dir.path().join("videos/sample.mp4"), 2)?;
    std::fs::copy(
        dir.path().join("videos/sample.mp4"),
        dir.path().join("videos/intro.mp4"),
    )?;
    let port = free_port()?;
    let server = Proc::spawn(
        "media",
        Path::new("python3"),
        &[
            "-m".into(),
            "http.server".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--directory".into(),
            dir.path().display().to_string(),
        ],
        &[],
        cp.dir().join("media.log"),
    )?;
    wait_for("the media server", Duration::from_secs(20), || async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/videos/sample.mp4"))
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await?;
    Ok(Media {
        _dir: dir,
        _server: server,
        port,
    })
}

/// The chart's example (config + derivatives) in `ns`, its origin pointed at `media`.
fn example(ns: &str, media_port: u16) -> Result<String> {
    let dir = chart().join("examples");
    let config = std::fs::read_to_string(dir.join("videoresizerconfig.yaml"))?;
    let derivatives = std::fs::read_to_string(dir.join("derivatives.yaml"))?;
    let origin = "http://media.media.svc.cluster.local/videos/";
    ensure!(config.contains(origin), "the example's origin URL moved");
    let text = format!(
        "{}\n---\n{}",
        config.replace(origin, &format!("http://127.0.0.1:{media_port}/videos/")),
        derivatives
    );
    Ok(text.replace(
        "metadata:\n  name:",
        &format!("metadata:\n  namespace: {ns}\n  name:"),
    ))
}

/// Starts the operator as the chart's Deployment would: its container's args and env (the
/// metrics address moved to a free loopback port, downward-API values filled in), with a token
/// of the Deployment's ServiceAccount.
fn chart_operator(cp: &ControlPlane, identity: &str) -> Result<Proc> {
    let deploy: Value = serde_json::from_str(
        &cp.kubectl(&["get", "deploy", OPERATOR, "-n", RELEASE_NS, "-o", "json"])?,
    )?;
    let pod = &deploy["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"]
        .as_str()
        .context("serviceAccountName")?;
    let c = &pod["containers"][0];
    let port = free_port()?;
    let args: Vec<String> = c["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .map(|a| {
            if a.starts_with("--metrics-listen=") {
                format!("--metrics-listen=127.0.0.1:{port}")
            } else {
                a.to_owned()
            }
        })
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().context("env")? {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => identity.to_owned(),
            Some("metadata.namespace") => RELEASE_NS.to_owned(),
            Some(other) => bail!("unexpected fieldRef {other}"),
            None => e["value"].as_str().unwrap_or_default().to_owned(),
        };
        env.push((name, value));
    }
    let kubeconfig = cp.service_account_kubeconfig(RELEASE_NS, sa)?;
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let pairs: Vec<(&str, String)> = env.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    Proc::spawn(
        identity,
        &binary("vr-operator"),
        &args,
        &pairs,
        cp.dir().join(format!("{identity}.log")),
    )
}

/// A kube-mode data plane for config `config` in `ns` (token of its ServiceAccount), published
/// as a ready endpoint of its Service once its readiness probe passes.
async fn dataplane(cp: &ControlPlane, ns: &str, config: &str) -> Result<(Proc, u16, u16)> {
    let sa = format!("{config}-dataplane");
    wait_for(
        "the data plane's ServiceAccount",
        Duration::from_secs(60),
        || async { cp.kubectl(&["get", "sa", &sa, "-n", ns]).ok() },
    )
    .await?;
    let kubeconfig = cp.service_account_kubeconfig(ns, &sa)?;
    let (http, admin) = (free_port()?, free_port()?);
    let args = vec![
        "--kube-config-name".to_string(),
        config.into(),
        "--namespace".into(),
        ns.into(),
        "--listen".into(),
        format!("127.0.0.1:{http}"),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin}"),
        "--work-dir".into(),
        cp.dir().join(format!("dp-{ns}-work")).display().to_string(),
        "--log-format".into(),
        "text".into(),
    ];
    let p = Proc::spawn(
        "dataplane",
        &binary("vr-dataplane"),
        &args,
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        cp.dir().join(format!("dataplane-{ns}.log")),
    )?;
    wait_for(
        "the data plane's /readyz",
        Duration::from_secs(60),
        || async {
            let r = reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await?;
    let client = cp.client().await?;
    publish_endpoints(&client, ns, &sa, &[(http, admin)]).await?;
    Ok((p, http, admin))
}

fn vrc(cp: &ControlPlane, ns: &str, name: &str) -> Option<Value> {
    let out = cp
        .kubectl(&["get", "vrc", name, "-n", ns, "-o", "json"])
        .ok()?;
    serde_json::from_str(&out).ok()
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn observed(obj: &Value) -> bool {
    obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
}

async fn wait_condition(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    type_: &str,
    deadline: Duration,
) -> Result<Value> {
    wait_for(&format!("{name} {type_}"), deadline, || async {
        let o = vrc(cp, ns, name)?;
        (observed(&o) && condition(&o, type_)?["status"] == "True").then_some(o)
    })
    .await
}

/// How the kstatus library itself (sigs.k8s.io/cli-utils, built by e2e/k8s/install.sh as
/// `kstatus`) reads `obj`: (status, message), e.g. ("Current", "Resource is Ready").
fn kstatus(cp: &ControlPlane, obj: &Value) -> Result<(String, String)> {
    use std::io::Write;
    let mut child = Command::new(cp.k8s_bin("kstatus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kstatus (e2e/k8s/install.sh builds it)")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(&serde_json::to_vec(obj)?)?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kstatus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
    let (status, message) = text.split_once('\t').unwrap_or((&text, ""));
    Ok((status.to_owned(), message.to_owned()))
}

/// Checks that kstatus reads `obj` as `want`, and says so.
fn expect_kstatus(cp: &ControlPlane, what: &str, obj: &Value, want: &str) -> Result<()> {
    let (status, message) = kstatus(cp, obj)?;
    eprintln!("KSTATUS {what}: {status} ({message})");
    ensure!(
        status == want,
        "{what}: kstatus {status} ({message}), want {want}"
    );
    Ok(())
}

/// `kubectl wait --for=condition=Ready` on `object` in `ns`: Ok(()) when it succeeded, the
/// error output when it did not.
fn kubectl_wait_ready(
    cp: &ControlPlane,
    ns: &str,
    object: &str,
    seconds: u32,
) -> Result<std::result::Result<(), String>> {
    let out = cp.kubectl_raw(&[
        "wait",
        "--for=condition=Ready",
        &format!("--timeout={seconds}s"),
        object,
        "-n",
        ns,
    ])?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    })
}

/// `type_`'s condition of `obj` as "status reason: message".
fn said(obj: &Value, type_: &str) -> String {
    condition(obj, type_).map_or_else(
        || format!("no {type_} condition"),
        |c| {
            format!(
                "{} {}: {}",
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        },
    )
}

fn vrd(cp: &ControlPlane, ns: &str, name: &str) -> Option<Value> {
    let out = cp
        .kubectl(&["get", "vrd", name, "-n", ns, "-o", "json"])
        .ok()?;
    serde_json::from_str(&out).ok()
}

/// The Derivatives' status: Ready when their config serves them, and why not otherwise, as
/// `kubectl wait` and kstatus read it.
async fn derivative_health(cp: &ControlPlane, ns: &str) -> Result<()> {
    kubectl_wait_ready(cp, ns, "vrd/mobile", 60)?
        .map_err(|e| anyhow::anyhow!("kubectl wait on a served Derivative: {e}"))?;
    let mobile = vrd(cp, ns, "mobile").context("vrd/mobile")?;
    expect_kstatus(cp, "served Derivative", &mobile, "Current")?;
    cp.apply(&format!(
        "apiVersion: videoresizer.io/v1alpha1\nkind: Derivative\nmetadata:\n  name: orphan\n  namespace: {ns}\nspec:\n  config: nowhere\n  width: 320\n"
    ))?;
    let orphan = wait_for(
        "the orphan Derivative's status",
        Duration::from_secs(60),
        || async {
            let o = vrd(cp, ns, "orphan")?;
            (condition(&o, "Ready")?["reason"] == "ConfigNotFound").then_some(o)
        },
    )
    .await?;
    let err = match kubectl_wait_ready(cp, ns, "vrd/orphan", 3)? {
        Ok(()) => bail!("kubectl wait succeeded on a Derivative without its config"),
        Err(e) => e,
    };
    eprintln!(
        "KUBECTL_WAIT Derivative naming a missing config: {err} | Ready={}",
        said(&orphan, "Ready")
    );
    ensure!(said(&orphan, "Ready").contains("nowhere does not exist"));
    expect_kstatus(
        cp,
        "Derivative naming a missing config",
        &orphan,
        "InProgress",
    )?;
    cp.kubectl(&["delete", "vrd", "orphan", "-n", ns])?;
    Ok(())
}

/// Runs the Argo CD health check on `obj` with real Lua: (status, message).
fn argocd_health(obj: &Value, dir: &Path) -> Result<(String, String)> {
    let runner = dir.join("argocd-health-runner.lua");
    let script = repo().join("gitops/argocd/health.lua");
    std::fs::write(
        &runner,
        format!(
            "obj = {}\nlocal hs = dofile({:?})\nio.write(hs.status, \"\\n\", hs.message or \"\", \"\\n\")\n",
            lua_literal(obj),
            script.display().to_string()
        ),
    )?;
    let out = Command::new("lua5.4").arg(&runner).output()?;
    ensure!(
        out.status.success(),
        "lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((status.to_owned(), message.trim_end().to_owned()))
}

/// A JSON value as a Lua table constructor (what Argo CD hands the script).
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", s),
        Value::Array(a) => format!(
            "{{{}}}",
            a.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("[{:?}] = {}", k, lua_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What each value file must produce.
struct Expect {
    file: &'static str,
    replicas: i64,
    leader_election: bool,
    dataplane_image: &'static str,
    monitoring: bool,
    network_policy: bool,
}

const ENVIRONMENTS: [Expect; 3] = [
    Expect {
        file: "values-dev.yaml",
        replicas: 1,
        leader_election: false,
        dataplane_image: "video-resizer/dataplane:dev",
        monitoring: false,
        network_policy: false,
    },
    Expect {
        file: "values-staging.yaml",
        replicas: 2,
        leader_election: true,
        dataplane_image: "video-resizer/dataplane:0.1.0",
        monitoring: true,
        network_policy: false,
    },
    Expect {
        file: "values-prod.yaml",
        replicas: 2,
        leader_election: true,
        dataplane_image: "registry.example.com/video-resizer/dataplane:0.1.0",
        monitoring: true,
        network_policy: true,
    },
];

/// Kinds the chart may create, namespaced and cluster-wide.
const RELEASE_KINDS: &str = "deployments,serviceaccounts,services,poddisruptionbudgets,roles,rolebindings,networkpolicies,configmaps,servicemonitors,podmonitors,prometheusrules";
const RELEASE_CLUSTER_KINDS: &str = "clusterroles,clusterrolebindings";

fn release_objects(cp: &ControlPlane) -> Result<Vec<String>> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let mut names = Vec::new();
    for (kinds, ns) in [(RELEASE_KINDS, true), (RELEASE_CLUSTER_KINDS, false)] {
        let mut args = vec!["get", kinds, "-l", &selector, "-o", "name"];
        if ns {
            args.extend(["-n", RELEASE_NS]);
        }
        names.extend(cp.kubectl(&args)?.lines().map(str::to_owned));
    }
    Ok(names)
}

#[test]
#[ignore = "external: needs helm (e2e/run helm)"]
fn the_chart_lints_clean_and_renders_every_value_file() {
    let out = Command::new(repo().join(".cache/k8s/bin/helm"))
        .args(["lint", "--strict"])
        .arg(chart())
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for e in &ENVIRONMENTS {
        let out = Command::new(repo().join(".cache/k8s/bin/helm"))
            .args(["lint", "--strict", "-f"])
            .arg(chart().join(e.file))
            .arg(chart())
            .output()
            .expect("helm runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {text}", e.file);
        // `helm template` renders every value file offline, without --api-versions (CI has no
        // cluster); the monitoring API is checked at install time only.
        let out = Command::new(repo().join(".cache/k8s/bin/helm"))
            .args(["template", "vr", "-f"])
            .arg(chart().join(e.file))
            .arg(chart())
            .output()
            .expect("helm runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}: helm template: {}",
            e.file,
            String::from_utf8_lossy(&out.stderr)
        );
        for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
            assert_eq!(
                text.contains(&format!("kind: {kind}\n")),
                e.monitoring,
                "{}: {kind}",
                e.file
            );
        }
        if e.monitoring {
            let alerts = text.matches("- alert: ").count();
            let runbooks = text.matches("runbook_url: ").count();
            assert!(
                alerts >= 6 && runbooks == alerts,
                "{}: {alerts} alerts, {runbooks} runbook_url",
                e.file
            );
            assert!(text.contains("alert: VideoResizerOperatorDown"));
        }
        for role in ["view", "edit", "admin"] {
            assert!(
                text.contains(&format!(
                    "rbac.authorization.k8s.io/aggregate-to-{role}: \"true\""
                )),
                "{}: no ClusterRole aggregated to {role}",
                e.file
            );
        }
        eprintln!(
            "HELM template {} renders offline (no --api-versions)",
            e.file
        );
    }
    // `helm show readme` documents the values (crds/tests/chart.rs checks every one).
    let out = Command::new(repo().join(".cache/k8s/bin/helm"))
        .args(["show", "readme"])
        .arg(chart())
        .output()
        .expect("helm runs");
    let readme = String::from_utf8_lossy(&out.stdout);
    assert!(
        readme.contains("| `networkPolicy.extraEgress` |")
            && readme.contains("| `operator.replicas` |"),
        "helm show readme: {readme}"
    );
    // The operator's pod takes extra args, env, volumes, spread constraints and security
    // contexts from values.
    let out = Command::new(repo().join(".cache/k8s/bin/helm"))
        .args([
            "template",
            "vr",
            "--show-only",
            "templates/deployment.yaml",
            "--set",
            "operator.extraArgs={--namespace=media}",
            "--set",
            "operator.extraEnv[0].name=HTTPS_PROXY,operator.extraEnv[0].value=http://proxy:3128",
            "--set",
            "operator.extraVolumes[0].name=ca,operator.extraVolumes[0].configMap.name=ca",
            "--set",
            "operator.extraVolumeMounts[0].name=ca,operator.extraVolumeMounts[0].mountPath=/etc/ca",
            "--set",
            "operator.topologySpreadConstraints[0].maxSkew=1,operator.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone,operator.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
            "--set",
            "operator.podSecurityContext.runAsUser=1000",
            "--set",
            "operator.podAnnotations.team=media",
        ])
        .arg(chart())
        .output()
        .expect("helm runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "- --namespace=media",
        "name: HTTPS_PROXY",
        "mountPath: /etc/ca",
        "configMap:",
        "topologyKey: topology.kubernetes.io/zone",
        "runAsUser: 1000",
        "team: media",
    ] {
        assert!(text.contains(needle), "{needle} not rendered: {text}");
    }
    eprintln!("HELM show readme documents the values; extra args/env/volumes/spread/securityContext render");
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver and helm (e2e/run helm)"]
async fn each_value_file_installs_and_the_operator_reconciles_the_example_with_the_charts_rbac() {
    let cp = ControlPlane::start_empty().expect("control plane starts");
    if let Err(e) = install_cycle(&cp).await {
        cp.dump_all_logs();
        panic!("{e:#}");
    }
}

async fn install_cycle(cp: &ControlPlane) -> Result<()> {
    let chart = chart().display().to_string();
    let install = |extra: &[&str]| -> Result<Output> {
        let mut args = vec![
            "install",
            RELEASE,
            chart.as_str(),
            "-n",
            RELEASE_NS,
            "--create-namespace",
        ];
        args.extend_from_slice(extra);
        helm(cp, &args)
    };

    // Bad values fail before anything is created, naming the value.
    for (set, needle) in [
        ("operator.replicas=many", "/operator/replicas"),
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("operator.replica=2", "'replica' not allowed"),
        ("operator.leaderElection=false", "operator.leaderElection is false"),
        (
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.enabled is true, but the cluster does not serve monitoring.coreos.com/v1",
        ),
    ] {
        let out = install(&["--set", set])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(needle),
            "--set {set}: expected a failure naming {needle:?}, got: {err}"
        );
    }
    ensure!(
        helm_ok(
            cp,
            &[
                "list",
                "--deployed",
                "--failed",
                "--pending",
                "-q",
                "-n",
                RELEASE_NS
            ]
        )?
        .trim()
        .is_empty(),
        "a failed install left a release"
    );

    cp.apply(&monitoring_crds())?;
    for crd in ["servicemonitors", "podmonitors", "prometheusrules"] {
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}.monitoring.coreos.com"),
        ])?;
    }
    let media = media(cp).await?;

    for (i, e) in ENVIRONMENTS.iter().enumerate() {
        eprintln!("HELM install with {}", e.file);
        let values = chart_file(e.file);
        let out = install(&["-f", &values])?;
        ensure!(
            out.status.success(),
            "{}: helm install failed: {}",
            e.file,
            String::from_utf8_lossy(&out.stderr)
        );
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/videoresizerconfigs.videoresizer.io",
            "crd/derivatives.videoresizer.io",
        ])?;
        check_release(cp, e)?;
        check_environment(cp, e, &media, i == 0).await?;

        if e.monitoring {
            // Upgrade to the dev values: what they turn off goes away.
            helm_ok(
                cp,
                &[
                    "upgrade",
                    RELEASE,
                    &chart,
                    "-n",
                    RELEASE_NS,
                    "-f",
                    &chart_file("values-dev.yaml"),
                ],
            )?;
            check_release(cp, &ENVIRONMENTS[0])?;
        }
        helm_ok(cp, &["uninstall", RELEASE, "-n", RELEASE_NS, "--wait"])?;
        let left = release_objects(cp)?;
        ensure!(left.is_empty(), "{}: helm uninstall left {left:?}", e.file);
        // The CRDs stay (deleting them would delete every config), marked as kept.
        let crd = cp.kubectl(&[
            "get",
            "crd",
            "videoresizerconfigs.videoresizer.io",
            "-o",
            "json",
        ])?;
        let crd: Value = serde_json::from_str(&crd)?;
        ensure!(crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep");
    }
    Ok(())
}

fn chart_file(name: &str) -> String {
    chart().join(name).display().to_string()
}

/// The release's objects match the value file.
fn check_release(cp: &ControlPlane, e: &Expect) -> Result<()> {
    let deploy: Value = serde_json::from_str(
        &cp.kubectl(&["get", "deploy", OPERATOR, "-n", RELEASE_NS, "-o", "json"])?,
    )?;
    ensure!(
        deploy["spec"]["replicas"] == e.replicas,
        "{}: replicas",
        e.file
    );
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        args.contains(&format!("--leader-election={}", e.leader_election).as_str()),
        "{}: {args:?}",
        e.file
    );
    ensure!(c["securityContext"]["allowPrivilegeEscalation"] == false);
    ensure!(deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] == true);
    let image = c["env"]
        .as_array()
        .context("env")?
        .iter()
        .find(|v| v["name"] == "VR_DATAPLANE_IMAGE")
        .and_then(|v| v["value"].as_str())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        image == e.dataplane_image,
        "{}: data-plane image {image}",
        e.file
    );
    let objects = release_objects(cp)?;
    let has = |prefix: &str| objects.iter().any(|o| o.starts_with(prefix));
    ensure!(
        has("servicemonitor") == e.monitoring,
        "{}: {objects:?}",
        e.file
    );
    ensure!(has("podmonitor") == e.monitoring, "{}: {objects:?}", e.file);
    ensure!(
        has("prometheusrule") == e.monitoring,
        "{}: {objects:?}",
        e.file
    );
    ensure!(
        has("networkpolicy") == e.network_policy,
        "{}: {objects:?}",
        e.file
    );
    ensure!(
        has("poddisruptionbudget") == (e.replicas > 1),
        "{}: {objects:?}",
        e.file
    );
    ensure!(
        has("role.rbac") == e.leader_election,
        "{}: {objects:?}",
        e.file
    );
    Ok(())
}

/// The operator (as the chart runs it) reconciles the example to Ready with a live data plane.
async fn check_environment(cp: &ControlPlane, e: &Expect, media: &Media, full: bool) -> Result<()> {
    let ns = cp.namespace()?;
    cp.apply(&example(&ns, media.port)?)?;
    let mut operators = vec![chart_operator(cp, &format!("op-{}-a", e.replicas))?];
    if e.leader_election {
        operators.push(chart_operator(cp, &format!("op-{}-b", e.replicas))?);
    }
    // Observed, no pod ready yet: Progressing (captured for the health check below).
    let waiting = wait_for("the example observed", Duration::from_secs(60), || async {
        let o = vrc(cp, &ns, "web")?;
        (observed(&o) && condition(&o, "Progressing")?["status"] == "True").then_some(o)
    })
    .await?;
    let (_dp, http, _admin) = dataplane(cp, &ns, "web").await?;
    let ready = wait_condition(cp, &ns, "web", "Ready", Duration::from_secs(60)).await?;
    let deploy: Value = serde_json::from_str(&cp.kubectl(&[
        "get",
        "deploy",
        "web-dataplane",
        "-n",
        &ns,
        "-o",
        "json",
    ])?)?;
    ensure!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"] == e.dataplane_image,
        "{}: the data plane does not use the chart's image",
        e.file
    );
    let events = cp.kubectl(&["get", "events.events.k8s.io", "-n", &ns, "-o", "name"])?;
    ensure!(
        !events.trim().is_empty(),
        "no Events published with the chart's RBAC"
    );
    if e.leader_election {
        let lease: Value = serde_json::from_str(
            &cp.kubectl(&["get", "lease", OPERATOR, "-n", RELEASE_NS, "-o", "json"])?,
        )?;
        let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
        ensure!(holder.starts_with("op-"), "lease holder {holder:?}");
    }
    // The example serves a real transform.
    let r = reqwest::get(format!(
        "http://127.0.0.1:{http}/videos/sample.mp4?derivative=mobile"
    ))
    .await?;
    ensure!(r.status() == 200, "example transform: {}", r.status());
    let body = r.bytes().await?;
    ensure!(body.len() > 1000, "example transform: {} bytes", body.len());

    if full {
        health_and_validation(cp, &ns, &waiting, &ready).await?;
        cli_requests(cp, &ns).await?;
    }
    cp.kubectl(&["delete", "namespace", &ns, "--wait=false"])?;
    drop(operators);
    Ok(())
}

/// `vrctl validate` and the operator agree on a broken config; the Argo CD health check maps
/// Progressing, Ready and Degraded objects the operator produced.
async fn health_and_validation(
    cp: &ControlPlane,
    ns: &str,
    waiting: &Value,
    ready: &Value,
) -> Result<()> {
    // kubectl wait and the kstatus library agree with the operator on Ready.
    kubectl_wait_ready(cp, ns, "vrc/web", 30)?
        .map_err(|e| anyhow::anyhow!("kubectl wait on a Ready config: {e}"))?;
    eprintln!("KUBECTL_WAIT rolled-out config: condition met");
    expect_kstatus(cp, "waiting for pods", waiting, "InProgress")?;
    expect_kstatus(cp, "rolled out", ready, "Current")?;
    derivative_health(cp, ns).await?;

    let broken = repo().join("cli/tests/fixtures/broken.yaml");
    let out = vrctl(
        &["validate", "-o", "json", &broken.display().to_string()],
        None,
    )?;
    ensure!(
        out.status.code() == Some(1),
        "vrctl validate exit {:?}",
        out.status.code()
    );
    let report = json_of(&out)?;
    let mut cli: Vec<String> = report["errors"]
        .as_array()
        .context("errors")?
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    ensure!(cli.len() >= 4, "vrctl found too few errors: {cli:?}");
    let text = std::fs::read_to_string(&broken)?.replace(
        "metadata:\n  name:",
        &format!("metadata:\n  namespace: {ns}\n  name:"),
    );
    cp.apply(&text)?;
    let degraded = wait_condition(cp, ns, "broken", "Degraded", Duration::from_secs(60)).await?;
    let mut operator: Vec<String> = degraded["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    cli.sort();
    operator.sort();
    ensure!(cli == operator, "vrctl: {cli:#?}\noperator: {operator:#?}");
    expect_kstatus(cp, "invalid spec", &degraded, "Failed")?;
    let small = wait_for(
        "the broken config's Derivative",
        Duration::from_secs(60),
        || async {
            let o = vrd(cp, ns, "small")?;
            (condition(&o, "Stalled")?["status"] == "True").then_some(o)
        },
    )
    .await?;
    eprintln!(
        "DERIVATIVE of an invalid config: Ready={}",
        said(&small, "Ready")
    );
    expect_kstatus(cp, "Derivative of an invalid config", &small, "Failed")?;
    eprintln!(
        "VALIDATE vrctl and the operator agree on {} errors",
        cli.len()
    );
    // `kustomize build | vrctl validate -`: a stream with objects of other API groups.
    let stream = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: media-origin}}\nstringData: {{token: x}}\n---\n{}",
        example(ns, 8080)?
    );
    let out = output_with_stdin(
        Command::new(binary("vrctl")).args(["validate", "-o", "json", "-"]),
        &stream,
    )?;
    let report = json_of(&out)?;
    ensure!(
        out.status.success() && report["ignored"][0] == "v1 Secret/media-origin",
        "validate - on a kustomize-like stream: {:?} {report}",
        out.status.code()
    );
    eprintln!(
        "VALIDATE a stream with a Secret: valid, {} ignored",
        report["ignored"]
    );
    let out = vrctl(&["completion", "bash"], None)?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_vrctl"),
        "vrctl completion bash"
    );

    let dir = tempfile::tempdir()?;
    for (name, obj, want) in [
        ("progressing-waiting-for-pods", waiting, "Progressing"),
        ("healthy-ready", ready, "Healthy"),
        ("degraded-invalid-spec", &degraded, "Degraded"),
    ] {
        let (status, message) = argocd_health(obj, dir.path())?;
        ensure!(
            status == want,
            "{name}: health {status} ({message}), want {want}"
        );
        eprintln!("ARGOCD {name}: {status} ({message})");
        if let Ok(to) = std::env::var("VR_CAPTURE_FIXTURES") {
            std::fs::write(
                Path::new(&to).join(format!("{name}.json")),
                serde_json::to_string_pretty(obj)?,
            )?;
        }
    }
    // Objects captured from earlier real runs (gitops/argocd/testdata/<expected>-*.json, written
    // by this test with VR_CAPTURE_FIXTURES=DIR), e.g. a rolled-back canary from the canary suite.
    for entry in std::fs::read_dir(repo().join("gitops/argocd/testdata"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let want = file.split('-').next().unwrap_or_default().to_owned();
        let obj: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let (status, message) = argocd_health(&obj, dir.path())?;
        ensure!(
            status.eq_ignore_ascii_case(&want),
            "{file}: health {status} ({message})"
        );
    }
    Ok(())
}

/// `vrctl rollback --to N` and `vrctl retry` with a user bound to the chart's vrctl ClusterRole.
async fn cli_requests(cp: &ControlPlane, ns: &str) -> Result<()> {
    // Revision 2: a new derivative changes the rendered document.
    cp.apply(&format!(
        "apiVersion: videoresizer.io/v1alpha1\nkind: Derivative\nmetadata:\n  name: square\n  namespace: {ns}\nspec:\n  config: web\n  width: 360\n  height: 360\n"
    ))?;
    wait_for("revision r2", Duration::from_secs(60), || async {
        let o = vrc(cp, ns, "web")?;
        (o["status"]["lastRevision"] == 2).then_some(())
    })
    .await?;
    cp.kubectl(&["create", "serviceaccount", "release-bot", "-n", ns])?;
    cp.kubectl(&[
        "create",
        "rolebinding",
        "release-bot",
        "-n",
        ns,
        "--clusterrole=vr-video-resizer-vrctl",
        &format!("--serviceaccount={ns}:release-bot"),
    ])?;
    let kc = cp.service_account_kubeconfig(ns, "release-bot")?;

    // Namespace editors manage configs through the default `edit` role (aggregated by the
    // chart's ClusterRoles, by kube-controller-manager's aggregation controller).
    cp.kubectl(&["create", "serviceaccount", "editor", "-n", ns])?;
    cp.kubectl(&[
        "create",
        "rolebinding",
        "editor",
        "-n",
        ns,
        "--clusterrole=edit",
        &format!("--serviceaccount={ns}:editor"),
    ])?;
    let editor = cp.service_account_kubeconfig(ns, "editor")?;
    wait_for(
        "edit aggregates the chart's rules",
        Duration::from_secs(60),
        || async {
            let out = Command::new(cp.k8s_bin("kubectl"))
                .args([
                    "auth",
                    "can-i",
                    "patch",
                    "videoresizerconfigs.videoresizer.io",
                    "-n",
                    ns,
                ])
                .env("KUBECONFIG", &editor)
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == "yes").then_some(())
        },
    )
    .await?;
    eprintln!("HELM a namespace editor (ClusterRole edit) may patch VideoResizerConfigs");

    let out = vrctl(&["status", "web", "-o", "json"], Some(&kc))?;
    ensure!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(json_of(&out)?["status"]["lastRevision"] == 2);
    let out = vrctl(&["status", "nope"], Some(&kc))?;
    ensure!(
        out.status.code() == Some(4),
        "status of a missing config: {:?}",
        out.status.code()
    );
    let out = vrctl(&["rollback", "web", "--to", "9"], Some(&kc))?;
    ensure!(
        out.status.code() == Some(4) && String::from_utf8_lossy(&out.stderr).contains("revision 9"),
        "rollback to a revision that does not exist: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );

    let annotations = |o: &Value| o["metadata"]["annotations"].clone();
    if OPERATOR_CONSUMES_REQUESTS {
        let out = vrctl(
            &["rollback", "web", "--to", "1", "--wait", "60", "-o", "json"],
            Some(&kc),
        )?;
        ensure!(
            out.status.success(),
            "rollback: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = wait_for(
            "r1 stable, r2 held back",
            Duration::from_secs(60),
            || async {
                let o = vrc(cp, ns, "web")?;
                (observed(&o)
                    && o["status"]["activeRevision"] == "r1"
                    && o["status"]["heldBack"]["revision"] == "r2")
                    .then_some(o)
            },
        )
        .await?;
        // A rolled-back config is not Ready: kubectl wait times out with the reason visible,
        // kstatus reads Failed, and vrctl status --watch fails a CI gate.
        let err = match kubectl_wait_ready(cp, ns, "vrc/web", 5)? {
            Ok(()) => bail!("kubectl wait --for=condition=Ready succeeded on a rolled-back config"),
            Err(e) => e,
        };
        let ready_said = said(&o, "Ready");
        eprintln!("KUBECTL_WAIT rolled back: {err} | Ready={ready_said}");
        ensure!(
            ready_said.starts_with("False RolledBack") && ready_said.contains("held back"),
            "Ready after a rollback: {ready_said}"
        );
        expect_kstatus(cp, "rolled back", &o, "Failed")?;
        let started = std::time::Instant::now();
        let out = vrctl_flags(&["status", "web", "--watch", "--timeout", "30s"], &kc)?;
        eprintln!(
            "VRCTL status --watch on a rolled-back config: exit {:?} after {:.1}s: {}",
            out.status.code(),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        ensure!(
            out.status.code() == Some(1),
            "status --watch after a rollback: exit {:?}",
            out.status.code()
        );
        // A rolled-back config is Degraded for Argo CD (the spec's revision does not serve).
        let dir = tempfile::tempdir()?;
        let (status, message) = argocd_health(&o, dir.path())?;
        eprintln!("ARGOCD rolled-back: {status} ({message})");
        ensure!(
            status == "Degraded",
            "rolled back: health {status} ({message}): {:#}",
            o["status"]
        );
        if let Ok(to) = std::env::var("VR_CAPTURE_FIXTURES") {
            std::fs::write(
                Path::new(&to).join("degraded-rolled-back.json"),
                serde_json::to_string_pretty(&o)?,
            )?;
        }
        let out = vrctl(&["retry", "web", "--wait", "60", "-o", "json"], Some(&kc))?;
        ensure!(
            out.status.success(),
            "retry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = wait_for("r2 rolling out again", Duration::from_secs(60), || async {
            let o = vrc(cp, ns, "web")?;
            (o["status"]["heldBack"].is_null() && o["status"]["rollout"]["revision"] == "r2")
                .then_some(o)
        })
        .await?;
        let (status, message) = argocd_health(&o, dir.path())?;
        eprintln!("ARGOCD canary after retry: {status} ({message})");
        ensure!(
            status == "Progressing",
            "retried canary: health {status} ({message})"
        );
        if let Ok(to) = std::env::var("VR_CAPTURE_FIXTURES") {
            std::fs::write(
                Path::new(&to).join("progressing-canary-after-retry.json"),
                serde_json::to_string_pretty(&o)?,
            )?;
        }
        expect_kstatus(cp, "canary", &o, "InProgress")?;
        // A CI gate follows the rollout; the promotion makes it exit 0.
        let watch = Command::new(binary("vrctl"))
            .args([
                "status",
                "web",
                "--watch",
                "--timeout",
                "120s",
                "--kubeconfig",
            ])
            .arg(&kc)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let started = std::time::Instant::now();
        let out = vrctl(&["promote", "web", "--wait", "60"], Some(&kc))?;
        ensure!(
            out.status.success(),
            "promote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A promote request skips analysis and the bake: r2 serves everything at once.
        wait_for("r2 promoted", Duration::from_secs(60), || async {
            let o = vrc(cp, ns, "web")?;
            (o["status"]["activeRevision"] == "r2" && o["status"]["rollout"].is_null()).then_some(o)
        })
        .await?;
        kubectl_wait_ready(cp, ns, "vrc/web", 30)?
            .map_err(|e| anyhow::anyhow!("kubectl wait on a promoted config: {e}"))?;
        eprintln!("KUBECTL_WAIT promoted config: condition met");
        let out = watch.wait_with_output()?;
        eprintln!(
            "VRCTL status --watch through promotion: exit {:?} after {:.1}s\n{}",
            out.status.code(),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        ensure!(
            out.status.code() == Some(0),
            "status --watch through a promotion: exit {:?}",
            out.status.code()
        );
        let done = vrc(cp, ns, "web").context("web")?;
        expect_kstatus(cp, "promoted", &done, "Current")?;
        let out = vrctl(&["history", "web"], Some(&kc))?;
        eprintln!(
            "VRCTL history after rollback and retry:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = vrctl(&["status", "web"], Some(&kc))?;
        eprintln!("VRCTL status:\n{}", String::from_utf8_lossy(&out.stdout));
    } else {
        let out = vrctl(&["rollback", "web", "--to", "1", "-o", "json"], Some(&kc))?;
        ensure!(
            out.status.success(),
            "rollback: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = vrc(cp, ns, "web").context("web")?;
        ensure!(
            annotations(&o)["videoresizer.io/rollback-to"] == "1",
            "{:?}",
            annotations(&o)
        );
        let out = vrctl(&["retry", "web"], Some(&kc))?;
        ensure!(
            out.status.success(),
            "retry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = vrctl(&["pause", "web"], Some(&kc))?;
        ensure!(out.status.success());
        let o = vrc(cp, ns, "web").context("web")?;
        ensure!(annotations(&o)["videoresizer.io/retry"].is_string());
        ensure!(annotations(&o)["videoresizer.io/paused"] == "true");
        let out = vrctl(&["resume", "web"], Some(&kc))?;
        ensure!(out.status.success());
        let o = vrc(cp, ns, "web").context("web")?;
        ensure!(
            annotations(&o).get("videoresizer.io/paused").is_none(),
            "{:?}",
            annotations(&o)
        );
        eprintln!("VRCTL rollback/retry/pause/resume reached the API server with the vrctl ClusterRole (operator side: pending)");
    }
    // Nobody else may: a ServiceAccount without the binding is refused (exit 5).
    cp.kubectl(&["create", "serviceaccount", "stranger", "-n", ns])?;
    let kc = cp.service_account_kubeconfig(ns, "stranger")?;
    let out = vrctl(&["promote", "web"], Some(&kc))?;
    ensure!(
        out.status.code() == Some(5),
        "unbound promote: {:?}",
        out.status.code()
    );
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs ffmpeg (e2e/run helm)"]
async fn vrctl_prewarm_drives_real_transforms_and_purge_by_tag_removes_them() {
    if let Err(e) = prewarm_and_purge().await {
        panic!("{e:#}");
    }
}

async fn prewarm_and_purge() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("media"))?;
    make_sample(&dir.path().join("media/a.mp4"), 2)?;
    std::fs::copy(
        dir.path().join("media/a.mp4"),
        dir.path().join("media/b.mp4"),
    )?;
    std::fs::write(dir.path().join("ops-token"), "e2e-ops-token-0123456789")?;
    let config = format!(
        r#"revision: prewarm-e2e
origins:
  - name: videos
    matcher: '^/videos/(?P<name>[a-z]+)\.mp4$'
    sources:
      - name: disk
        kind: local
        root: {root}
        path: '${{name}}.mp4'
    cacheTags: [catalog]
derivatives:
  small: {{width: 160, height: 90}}
  thumb: {{mode: frame, width: 160, height: 90, format: jpg, time: 1s}}
admin:
  tokens:
    - name: ops
      tokenFile: {token}
      scopes: [purge]
"#,
        root = dir.path().join("media").display(),
        token = dir.path().join("ops-token").display()
    );
    std::fs::write(dir.path().join("config.yaml"), config)?;
    let (http, admin) = (free_port()?, free_port()?);
    let _dp = Proc::spawn(
        "dataplane",
        &binary("vr-dataplane"),
        &[
            "--config".into(),
            dir.path().join("config.yaml").display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--work-dir".into(),
            dir.path().join("work").display().to_string(),
            "--log-format".into(),
            "text".into(),
        ],
        &[],
        dir.path().join("dataplane.log"),
    )?;
    wait_for(
        "the data plane's /readyz",
        Duration::from_secs(30),
        || async {
            let r = reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await?;
    let url = format!("http://127.0.0.1:{http}");
    let prewarm = |extra: &[&str]| -> Result<(Output, Value)> {
        let mut args = vec![
            "prewarm",
            "--url",
            url.as_str(),
            "-d",
            "small,thumb",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = vrctl(&args, None)?;
        let v = json_of(&out)?;
        Ok((out, v))
    };
    let caches = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|w| w["cache"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let (out, first) = prewarm(&["/videos/a.mp4", "/videos/b.mp4"])?;
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "prewarm: {summary}");
    ensure!(caches(&first) == ["MISS"; 4], "first prewarm: {first:#}");
    ensure!(
        summary.contains("prewarmed 4/4 variant(s)") && summary.contains("4 transformed"),
        "{summary}"
    );
    eprintln!("PREWARM {}", summary.trim());
    let (_, second) = prewarm(&["/videos/a.mp4", "/videos/b.mp4"])?;
    ensure!(caches(&second) == ["HIT"; 4], "second prewarm: {second:#}");

    // A missing source fails that variant and the command (exit 1), the others still run.
    let (out, v) = prewarm(&["/videos/a.mp4", "/videos/zzz.mp4"])?;
    ensure!(
        out.status.code() == Some(1),
        "prewarm with a missing path: {:?}",
        out.status.code()
    );
    ensure!(v.as_array().is_some_and(|a| a.len() == 4));

    let admin_url = format!("http://127.0.0.1:{admin}");
    let token = dir.path().join("ops-token").display().to_string();
    let out = vrctl(
        &[
            "purge",
            "--tag",
            "catalog",
            "--admin-url",
            &admin_url,
            "--token-file",
            &token,
            "-o",
            "json",
        ],
        None,
    )?;
    ensure!(
        out.status.success(),
        "purge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let purged = json_of(&out)?;
    ensure!(
        purged[0]["removed"].as_u64().unwrap_or(0) >= 4,
        "{purged:#}"
    );
    let (_, third) = prewarm(&["/videos/a.mp4"])?;
    ensure!(caches(&third) == ["MISS"; 2], "after purge: {third:#}");

    // A wrong token is refused, and said so.
    std::fs::write(dir.path().join("bad-token"), "nope")?;
    let bad = dir.path().join("bad-token").display().to_string();
    let out = vrctl(
        &[
            "purge",
            "--tag",
            "catalog",
            "--admin-url",
            &admin_url,
            "--token-file",
            &bad,
        ],
        None,
    )?;
    ensure!(
        out.status.code() == Some(1),
        "bad token: {:?}",
        out.status.code()
    );
    ensure!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
    Ok(())
}

#[test]
#[ignore = "external: needs lua5.4 (e2e/run helm)"]
fn the_argocd_health_check_passes_its_lua_unit_test() {
    let out = Command::new("lua5.4")
        .arg(repo().join("gitops/argocd/health_test.lua"))
        .output()
        .expect("lua5.4 runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
