//! Suite `operator`: the CRDs, the operator and the data plane against a real kube-apiserver.
//! Run with `e2e/run operator` (it installs the control plane and builds the binaries).

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vr_crds::resources::VideoResizerConfig;
use vr_e2e::*;

/// A test world: control plane, a namespace, generated media.
struct World {
    cp: ControlPlane,
    ns: String,
    media: tempfile::TempDir,
}

impl World {
    fn new() -> Result<World> {
        let cp = ControlPlane::start()?;
        let ns = cp.namespace()?;
        let media = tempfile::tempdir()?;
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25:duration=2",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
            ])
            .arg(media.path().join("sample.mp4"))
            .status()?;
        anyhow::ensure!(status.success(), "ffmpeg could not make the sample");
        Ok(World { cp, ns, media })
    }

    fn config_yaml(&self) -> String {
        format!(
            r#"apiVersion: videoresizer.io/v1alpha1
kind: VideoResizerConfig
metadata:
  name: web
  namespace: {ns}
spec:
  origins:
    - name: videos
      matcher: '^/videos/(?P<name>[a-z0-9_-]+)\.mp4$'
      sources:
        - name: media
          kind: local
          local:
            root: {root}
            path: '${{name}}.mp4'
  debug:
    allowedNetworks: [127.0.0.0/8]
  # This suite measures propagation: each revision takes all traffic at once (the canary
  # suite covers stepped rollouts).
  rollout:
    steps: []
  workload:
    image: video-resizer/dataplane:e2e
    minReplicas: 1
    maxReplicas: 3
"#,
            ns = self.ns,
            root = self.media.path().display()
        )
    }

    fn derivative_yaml(&self, name: &str, width: u32, extra: &str) -> String {
        format!(
            "apiVersion: videoresizer.io/v1alpha1\nkind: Derivative\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  config: web\n  width: {width}\n  height: 180\n{extra}",
            ns = self.ns
        )
    }

    fn operator(&self, identity: &str) -> Result<(Proc, u16)> {
        let port = free_port()?;
        let args = vec![
            "--metrics-listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--lease-namespace".into(),
            "vr-system".into(),
            "--identity".into(),
            identity.into(),
            "--log-format".into(),
            "text".into(),
        ];
        let p = Proc::spawn(
            identity,
            &binary("vr-operator"),
            &args,
            &[
                (
                    "KUBECONFIG",
                    self.cp.operator_kubeconfig().display().to_string(),
                ),
                ("RUST_LOG", "info".into()),
            ],
            self.cp.dir().join(format!("{identity}.log")),
        )?;
        Ok((p, port))
    }

    /// Starts a data-plane process as the config's ServiceAccount (token from TokenRequest)
    /// and publishes it as a ready endpoint.
    async fn dataplane(&self, index: usize) -> Result<(Proc, u16, u16)> {
        let client = self.cp.client().await?;
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &self.ns);
        wait_for(
            "the data plane's ServiceAccount",
            Duration::from_secs(60),
            || {
                let sas = sas.clone();
                async move { sas.get_opt("web-dataplane").await.ok().flatten() }
            },
        )
        .await?;
        let kubeconfig = self
            .cp
            .service_account_kubeconfig(&self.ns, "web-dataplane")?;
        let (http, admin) = (free_port()?, free_port()?);
        let args = vec![
            "--kube-config-name".to_string(),
            "web".into(),
            "--namespace".into(),
            self.ns.clone(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--work-dir".into(),
            self.cp
                .dir()
                .join(format!("dp-{index}-work"))
                .display()
                .to_string(),
            "--log-format".into(),
            "text".into(),
        ];
        let p = Proc::spawn(
            &format!("dataplane-{index}"),
            &binary("vr-dataplane"),
            &args,
            &[("KUBECONFIG", kubeconfig.display().to_string())],
            self.cp.dir().join(format!("dataplane-{index}.log")),
        )?;
        // Like a kubelet, publish the endpoint only once the readiness probe passes.
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
        Ok((p, http, admin))
    }
}

/// A config with one derivative, served: the operator (`op-a`) and one data-plane process
/// published as a ready endpoint, and the config `Ready`.
struct Serving {
    op: Proc,
    op_port: u16,
    dp: Proc,
    http: u16,
    admin: u16,
    vrcs: Api<VideoResizerConfig>,
}

impl World {
    async fn serving(&self) -> Result<Serving> {
        let client = self.cp.client().await?;
        self.cp.apply(&format!(
            "{}---\n{}",
            self.config_yaml(),
            self.derivative_yaml("mobile", 320, "")
        ))?;
        let (op, op_port) = self.operator("op-a")?;
        let (dp, http, admin) = self.dataplane(0).await?;
        publish_endpoints(&client, &self.ns, "web-dataplane", &[(http, admin)]).await?;
        let vrcs: Api<VideoResizerConfig> = Api::namespaced(client, &self.ns);
        wait_for("Ready", Duration::from_secs(60), || ready_condition(&vrcs)).await?;
        Ok(Serving {
            op,
            op_port,
            dp,
            http,
            admin,
            vrcs,
        })
    }
}

/// Runs a scenario in a fresh world; on failure prints every log before the world goes.
async fn scenario<F>(body: F)
where
    F: for<'a> AsyncFnOnce(&'a World) -> Result<()>,
{
    let w = World::new().expect("the test world starts (control plane, namespace, media)");
    if let Err(e) = body(&w).await {
        w.cp.dump_all_logs();
        panic!("{e:#}");
    }
}

async fn ready_condition(api: &Api<VideoResizerConfig>) -> Option<VideoResizerConfig> {
    let c = api.get_opt("web").await.ok().flatten()?;
    let st = c.status.as_ref()?;
    let ready = st
        .conditions
        .iter()
        .any(|x| x.type_ == "Ready" && x.status == "True");
    (ready && st.observed_generation == c.metadata.generation).then_some(c)
}

/// GET with `debug=view`: (revision header, body) when the data plane answers.
async fn probe(http: u16, query: &str) -> Option<(String, serde_json::Value)> {
    let r = reqwest::get(format!("http://127.0.0.1:{http}/videos/sample.mp4?{query}"))
        .await
        .ok()?;
    let rev = r
        .headers()
        .get("x-config-revision")?
        .to_str()
        .ok()?
        .to_owned();
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    Some((rev, body))
}

fn revision_configmaps(cms: &[ConfigMap]) -> Vec<String> {
    let mut v: Vec<String> = cms
        .iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("videoresizer.io/role"))
                .map(String::as_str)
                == Some("revision")
        })
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    v.sort();
    v
}

async fn metric(port: u16, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn crds_install_explain_and_reject_invalid_objects() {
    scenario(crds_install_explain_and_reject_invalid_objects_body).await;
}

async fn crds_install_explain_and_reject_invalid_objects_body(w: &World) -> Result<()> {
    let explain = w.cp.kubectl(&["explain", "vrc.spec.origins"])?;
    assert!(explain.contains("Ordered origin rules"), "{explain}");
    let explain = w.cp.kubectl(&["explain", "vrd.spec.width"])?;
    assert!(explain.to_lowercase().contains("width"), "{explain}");

    // Schema: a width below 10.
    let out =
        w.cp.kubectl_stdin(&["apply", "-f", "-"], &w.derivative_yaml("tiny", 5, ""))?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("spec.width"), "{err}");
    // CEL: kind http without its block.
    let bad = w.config_yaml().replace("kind: local", "kind: http");
    let out = w.cp.kubectl_stdin(&["apply", "-f", "-"], &bad)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.origins[0].sources[0]"),
        "{err}"
    );
    // CEL transition rule: a Derivative cannot move to another config.
    w.cp.apply(&w.derivative_yaml("mobile", 320, ""))?;
    let moved = w
        .derivative_yaml("mobile", 320, "")
        .replace("config: web", "config: other");
    let out = w.cp.kubectl_stdin(&["apply", "-f", "-"], &moved)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("config is immutable"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn a_config_becomes_a_revision_and_a_workload_and_new_revisions_reach_the_running_data_plane()
{
    scenario(a_config_becomes_a_revision_and_a_workload_and_new_revisions_reach_the_running_data_plane_body).await;
}

async fn a_config_becomes_a_revision_and_a_workload_and_new_revisions_reach_the_running_data_plane_body(
    w: &World,
) -> Result<()> {
    let client = w.cp.client().await?;
    w.cp.apply(&w.config_yaml())?;
    w.cp.apply(&w.derivative_yaml("mobile", 320, ""))?;
    let (_op, op_port) = w.operator("op-a")?;

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &w.ns);
    let first = wait_for("revision r1", Duration::from_secs(60), || {
        let cms = cms.clone();
        async move {
            let l = cms
                .list(&ListParams::default().labels("videoresizer.io/config=web"))
                .await
                .ok()?;
            let revs = revision_configmaps(&l.items);
            (revs.len() == 1).then(|| revs[0].clone())
        }
    })
    .await?;
    assert!(first.starts_with("web-r1-"), "{first}");
    let cm = cms.get(&first).await?;
    assert_eq!(cm.immutable, Some(true));
    // The revision is written first, the workload right after it.
    wait_for("the workload", Duration::from_secs(30), || async {
        w.cp.kubectl(&["get", "pdb", "web-dataplane", "-n", &w.ns])
            .ok()
            .map(|_| ())
    })
    .await?;
    for kind in [
        "deployment",
        "service",
        "hpa",
        "pdb",
        "serviceaccount",
        "role",
        "rolebinding",
    ] {
        let owner = w.cp.kubectl(&[
            "get",
            kind,
            "web-dataplane",
            "-n",
            &w.ns,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}",
        ])?;
        assert_eq!(owner, "web", "{kind} is owned by the config");
    }
    let dep: Api<Deployment> = Api::namespaced(client.clone(), &w.ns);
    let d = dep.get("web-dataplane").await?;
    // The API server defaults replicas; what matters is that the operator does not own them
    // (server-side apply would otherwise reset the HPA's choice on every pass).
    let ours = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some(vr_crds::contract::FIELD_MANAGER))
        .context("the operator's managed fields")?;
    let owned = serde_json::to_string(&ours.fields_v1)?;
    assert!(
        !owned.contains("f:replicas"),
        "replicas are left to the HPA: {owned}"
    );

    let (mut dp, http, admin) = w.dataplane(0).await?;
    publish_endpoints(&client, &w.ns, "web-dataplane", &[(http, admin)]).await?;
    let vrcs: Api<VideoResizerConfig> = Api::namespaced(client.clone(), &w.ns);
    wait_for(
        "Ready=True with a current observedGeneration",
        Duration::from_secs(60),
        || ready_condition(&vrcs),
    )
    .await?;

    // The data plane serves the derivative (a real transform).
    let (rev, body) = wait_for(
        "the data plane to serve r1",
        Duration::from_secs(30),
        || probe(http, "derivative=mobile&debug=view"),
    )
    .await?;
    assert_eq!(rev, "r1");
    assert!(
        body["variant"]
            .as_str()
            .is_some_and(|v| v.contains("w=320")),
        "{body}"
    );
    let r = reqwest::get(format!(
        "http://127.0.0.1:{http}/videos/sample.mp4?derivative=mobile"
    ))
    .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert!(!r.bytes().await?.is_empty());

    // Propagation: edit the derivative, time until the running process serves the new revision.
    let runs = std::env::var("VR_E2E_PROPAGATION_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20u32);
    let mut samples = Vec::new();
    for i in 0..runs {
        let width = 330 + 2 * i;
        let t0 = Instant::now();
        w.cp.apply(&w.derivative_yaml("mobile", width, ""))?;
        let want = format!("w={width};");
        wait_for(
            "the new revision to be served",
            Duration::from_secs(30),
            || {
                let want = want.clone();
                async move {
                    let (_, body) = probe(http, "derivative=mobile&debug=view").await?;
                    body["variant"]
                        .as_str()
                        .is_some_and(|v| v.contains(&want))
                        .then_some(())
                }
            },
        )
        .await?;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    assert!(!dp.exited(), "the data plane was not restarted");
    let (p50, p95) = (
        percentile(&mut samples.clone(), 50.0),
        percentile(&mut samples, 95.0),
    );
    println!("PROPAGATION runs={runs} p50_ms={p50:.0} p95_ms={p95:.0} (kubectl apply of a Derivative → first request served by the new revision)");
    assert!(metric(op_port, "vr_operator_revisions_created").await >= f64::from(runs) + 1.0);
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn identical_reapplies_and_operator_restarts_create_no_revision_and_no_write() {
    scenario(identical_reapplies_and_operator_restarts_create_no_revision_and_no_write_body).await;
}

async fn identical_reapplies_and_operator_restarts_create_no_revision_and_no_write_body(
    w: &World,
) -> Result<()> {
    let spec = format!(
        "{}---\n{}",
        w.config_yaml(),
        w.derivative_yaml("mobile", 320, "")
    );
    let Serving {
        mut op,
        op_port,
        dp: _dp,
        ..
    } = w.serving().await?;

    let snapshot = || async {
        let out = w.cp.kubectl(&["get", "vrc,vrd,configmaps,deployments,services,hpa,pdb,serviceaccounts,roles,rolebindings", "-n", &w.ns, "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}"]);
        out.unwrap_or_default()
    };
    let before = snapshot().await;
    // A GitOps tool re-applies the same manifests.
    let reconciles = metric(op_port, "vr_operator_reconciles_total").await;
    w.cp.apply(&spec)?;
    w.cp.kubectl(&[
        "annotate",
        "vrc",
        "web",
        "-n",
        &w.ns,
        "e2e/poke=1",
        "--overwrite",
    ])?;
    wait_for(
        "a reconcile after the re-apply",
        Duration::from_secs(30),
        || async {
            (metric(op_port, "vr_operator_reconciles_total").await > reconciles).then_some(())
        },
    )
    .await?;
    // The reconcile above has finished (the counter moves at its end); a short window
    // lets any follow-up pass it triggered write too, so "nothing changed" means something.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = snapshot().await;
    let strip_vrc = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("VideoResizerConfig/"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_vrc(&before),
        strip_vrc(&after),
        "nothing but the annotated config changed"
    );

    // Restarting the operator creates nothing either.
    op.kill();
    let (_op2, op2_port) = w.operator("op-b")?;
    wait_for(
        "the new operator's first reconcile",
        Duration::from_secs(60),
        || async { (metric(op2_port, "vr_operator_reconciles_total").await >= 1.0).then_some(()) },
    )
    .await?;
    // The reconcile above has finished (the counter moves at its end); a short window
    // lets any follow-up pass it triggered write too, so "nothing changed" means something.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        strip_vrc(&after),
        strip_vrc(&snapshot().await),
        "a restart wrote nothing"
    );
    assert_eq!(metric(op2_port, "vr_operator_revisions_created").await, 0.0);
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn an_invalid_derivative_degrades_the_config_and_the_last_good_revision_keeps_serving() {
    scenario(
        an_invalid_derivative_degrades_the_config_and_the_last_good_revision_keeps_serving_body,
    )
    .await;
}

async fn an_invalid_derivative_degrades_the_config_and_the_last_good_revision_keeps_serving_body(
    w: &World,
) -> Result<()> {
    let Serving {
        op: _op,
        dp: _dp,
        http,
        vrcs,
        ..
    } = w.serving().await?;

    // Valid for the schema, invalid for the data plane: a frame cannot be an mp4.
    w.cp.apply(&w.derivative_yaml("mobile", 320, "  mode: frame\n  format: mp4\n"))?;
    let c = wait_for("Degraded=True", Duration::from_secs(30), || {
        let vrcs = vrcs.clone();
        async move {
            let c = vrcs.get("web").await.ok()?;
            c.status
                .as_ref()?
                .conditions
                .iter()
                .find(|x| x.type_ == "Degraded" && x.status == "True")
                .cloned()
        }
    })
    .await?;
    assert_eq!(c.reason, "InvalidSpec");
    assert!(
        c.message.contains("Derivative/mobile") && c.message.contains("format"),
        "{}",
        c.message
    );
    let events = w.cp.kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &w.ns,
        "-o",
        "jsonpath={range .items[*]}{.type}/{.reason}{\"\\n\"}{end}",
    ])?;
    assert!(events.contains("Warning/InvalidSpec"), "{events}");
    let (rev, _) = probe(http, "derivative=mobile&debug=view")
        .await
        .context("data plane answers")?;
    assert_eq!(rev, "r1", "the last good revision keeps serving");
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn deleting_the_config_garbage_collects_its_children() {
    scenario(deleting_the_config_garbage_collects_its_children_body).await;
}

async fn deleting_the_config_garbage_collects_its_children_body(w: &World) -> Result<()> {
    // Relies on Kubernetes' garbage collector (kube-controller-manager runs in the harness):
    // every child carries an owner reference to the config; the operator has no finalizer.
    w.cp.apply(&format!(
        "{}---\n{}",
        w.config_yaml(),
        w.derivative_yaml("mobile", 320, "")
    ))?;
    let (_op, _) = w.operator("op-a")?;
    let client = w.cp.client().await?;
    let dep: Api<Deployment> = Api::namespaced(client.clone(), &w.ns);
    wait_for("the Deployment", Duration::from_secs(60), || {
        let dep = dep.clone();
        async move { dep.get_opt("web-dataplane").await.ok().flatten() }
    })
    .await?;
    w.cp.kubectl(&["delete", "vrc", "web", "-n", &w.ns, "--wait=true"])?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &w.ns);
    wait_for(
        "every child to be collected",
        Duration::from_secs(60),
        || {
            let (dep, cms) = (dep.clone(), cms.clone());
            async move {
                let d = dep.get_opt("web-dataplane").await.ok()?;
                let l = cms
                    .list(&ListParams::default().labels("videoresizer.io/config=web"))
                    .await
                    .ok()?;
                (d.is_none() && l.items.is_empty()).then_some(())
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn with_two_operators_only_the_leader_acts_and_killing_it_hands_over() {
    scenario(with_two_operators_only_the_leader_acts_and_killing_it_hands_over_body).await;
}

async fn with_two_operators_only_the_leader_acts_and_killing_it_hands_over_body(
    w: &World,
) -> Result<()> {
    let client = w.cp.client().await?;
    let (mut a, a_port) = w.operator("op-a")?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "vr-system");
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("video-resizer-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    wait_for("op-a to lead", Duration::from_secs(30), || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-a")).then_some(()) }
    })
    .await?;
    let (_b, b_port) = w.operator("op-b")?;
    wait_for("op-b to be up", Duration::from_secs(30), || async {
        reqwest::get(format!("http://127.0.0.1:{b_port}/healthz"))
            .await
            .ok()
            .map(|_| ())
    })
    .await?;

    w.cp.apply(&format!(
        "{}---\n{}",
        w.config_yaml(),
        w.derivative_yaml("mobile", 320, "")
    ))?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &w.ns);
    let count = |cms: Api<ConfigMap>| async move {
        cms.list(&ListParams::default().labels("videoresizer.io/config=web"))
            .await
            .ok()
            .map(|l| revision_configmaps(&l.items).len())
    };
    wait_for("r1", Duration::from_secs(60), || {
        let c = cms.clone();
        async move { (count(c).await == Some(1)).then_some(()) }
    })
    .await?;
    wait_for(
        "op-a to finish its reconcile",
        Duration::from_secs(30),
        || async { (metric(a_port, "vr_operator_reconciles_total").await >= 1.0).then_some(()) },
    )
    .await?;
    assert_eq!(metric(b_port, "vr_operator_leader").await, 0.0);
    let b_metrics = reqwest::get(format!("http://127.0.0.1:{b_port}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        b_metrics.contains("vr_operator_leader 0"),
        "the follower is up and not leading: {b_metrics}"
    );
    assert_eq!(
        metric(b_port, "vr_operator_reconciles_total").await,
        0.0,
        "the follower did not reconcile"
    );

    let killed = Instant::now();
    a.kill();
    wait_for("op-b to take over", Duration::from_secs(40), || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-b")).then_some(()) }
    })
    .await?;
    println!("HANDOVER after {:.1} s", killed.elapsed().as_secs_f64());
    w.cp.apply(&w.derivative_yaml("mobile", 400, ""))?;
    wait_for("r2 from the new leader", Duration::from_secs(60), || {
        let c = cms.clone();
        async move { (count(c).await == Some(2)).then_some(()) }
    })
    .await?;
    assert!(metric(b_port, "vr_operator_reconciles_total").await >= 1.0);
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn an_api_server_outage_keeps_the_last_revision_serving_and_a_later_change_is_picked_up() {
    scenario(
        an_api_server_outage_keeps_the_last_revision_serving_and_a_later_change_is_picked_up_body,
    )
    .await;
}

async fn an_api_server_outage_keeps_the_last_revision_serving_and_a_later_change_is_picked_up_body(
    w: &World,
) -> Result<()> {
    let Serving {
        mut op,
        mut dp,
        http,
        admin,
        ..
    } = w.serving().await?;

    // 30 s without an API server, with traffic on the data plane all along.
    let dir = w.cp.dir().to_path_buf();
    let outage =
        tokio::task::spawn_blocking(move || restart_apiserver(&dir, Duration::from_secs(30)));
    let (mut ok, mut failed) = (0u32, 0u32);
    while !outage.is_finished() {
        match probe(http, "derivative=mobile&debug=view").await {
            Some((rev, _)) if rev == "r1" => ok += 1,
            _ => failed += 1,
        }
        let r = reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await?;
        if r.status() != 200 {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    outage.await??;
    println!("OUTAGE 30 s: {ok} requests served by r1, {failed} failed");
    assert!(ok > 50 && failed == 0, "served {ok}, failed {failed}");
    assert!(!dp.exited());

    // The operator cannot renew its Lease for that long, so it stops acting and exits (the
    // Deployment would restart it); the data plane has no such duty and simply reconnects.
    if op.exited() {
        drop(op);
        let (op2, _) = w.operator("op-a-restarted")?;
        op = op2;
    }
    let _keep = &mut op;
    // A change made after the API server returns reaches the data plane.
    w.cp.apply(&w.derivative_yaml("mobile", 400, ""))?;
    let t0 = Instant::now();
    wait_for(
        "the change after the outage",
        Duration::from_secs(60),
        || async {
            let (_, body) = probe(http, "derivative=mobile&debug=view").await?;
            body["variant"]
                .as_str()
                .is_some_and(|v| v.contains("w=400;"))
                .then_some(())
        },
    )
    .await?;
    println!(
        "AFTER-OUTAGE change served in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test]
#[ignore = "external: needs kube-apiserver (e2e/run operator)"]
async fn fifty_configs_are_reconciled_without_listing_the_cluster() {
    scenario(fifty_configs_are_reconciled_without_listing_the_cluster_body).await;
}

/// The operator's requests to the API server (`vr_operator_api_requests_total`), summed by verb,
/// and its reconciles so far.
async fn api_counts(port: u16) -> (BTreeMap<String, f64>, f64) {
    let text = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut by_verb = BTreeMap::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("vr_operator_api_requests_total{") else {
            continue;
        };
        let verb = labels
            .split_once("verb=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("?", |(v, _)| v);
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_verb.entry(verb.to_owned()).or_insert(0.0) += value;
    }
    (by_verb, metric(port, "vr_operator_reconciles_total").await)
}

/// Waits until the operator's reconcile counter has not moved for 3 s; returns it.
async fn settled_reconciles(port: u16) -> Result<f64> {
    let mut last = (
        metric(port, "vr_operator_reconciles_total").await,
        Instant::now(),
    );
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = metric(port, "vr_operator_reconciles_total").await;
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(3) {
            return Ok(now);
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(180),
            "the operator never went quiet (reconciles still moving at {now})"
        );
    }
}

/// Steady-state API load: after start-up, a change to each of 50 configs costs the operator
/// requests per reconcile, measured with its own counter (`vr_operator_api_requests_total`).
async fn fifty_configs_are_reconciled_without_listing_the_cluster_body(w: &World) -> Result<()> {
    const CONFIGS: usize = 50;
    let name = |i: usize| format!("web-{i:02}");
    let yaml = (0..CONFIGS)
        .map(|i| {
            w.config_yaml().replace(
                "metadata:\n  name: web\n",
                &format!("metadata:\n  name: {}\n", name(i)),
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    w.cp.apply(&yaml)?;
    let (_op, port) = w.operator("op-a")?;
    let vrcs: Api<VideoResizerConfig> = Api::namespaced(w.cp.client().await?, &w.ns);
    wait_for(
        "every config reconciled once",
        Duration::from_secs(180),
        || async {
            let l = vrcs.list(&ListParams::default()).await.ok()?;
            (l.items.len() == CONFIGS
                && l.items.iter().all(|c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.active_config_map.is_some()
                            && s.observed_generation == c.metadata.generation
                    })
                }))
            .then_some(())
        },
    )
    .await?;
    let start = settled_reconciles(port).await?;
    let (before, reconciles_before) = api_counts(port).await;
    // One change per config (an annotation: no new revision, one reconcile each).
    for i in 0..CONFIGS {
        let body = serde_json::json!({ "metadata": { "annotations": { "e2e/touch": "1" } } });
        vrcs.patch(&name(i), &PatchParams::default(), &Patch::Merge(body))
            .await?;
    }
    wait_for(
        "a reconcile of every touched config",
        Duration::from_secs(120),
        || async {
            (metric(port, "vr_operator_reconciles_total").await >= start + CONFIGS as f64)
                .then_some(())
        },
    )
    .await?;
    settled_reconciles(port).await?;
    let (after, reconciles_after) = api_counts(port).await;
    let reconciles = reconciles_after - reconciles_before;
    let delta = |verb: &str| after.get(verb).unwrap_or(&0.0) - before.get(verb).unwrap_or(&0.0);
    let total: f64 = after.keys().map(|v| delta(v)).sum();
    let lists = delta("list");
    println!(
        // On a line of its own: the test harness prints progress dots before it.
        "\nOPERATOR_API configs={CONFIGS} lists_per_reconcile={:.1} requests_per_reconcile={:.1}",
        lists / reconciles,
        total / reconciles
    );
    println!(
        "api requests during {reconciles} reconciles, by verb: {:?}",
        after
            .keys()
            .map(|v| (v.as_str(), delta(v)))
            .collect::<Vec<_>>()
    );
    // Everything a reconcile reads besides the config itself comes from watch-fed stores.
    anyhow::ensure!(
        lists == 0.0,
        "{lists} LIST calls during {reconciles} reconciles after start-up"
    );
    Ok(())
}
