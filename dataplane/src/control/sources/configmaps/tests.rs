use super::*;
use crate::control::app::{Settings, Sizing};
use crate::metrics::{LoadLabels, LoadOutcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

const CONFIG: &str = "web";

/// A valid document with revision label `rev`; its local root `tmp` only exists if it resolves
/// against `/`.
fn doc(rev: &str) -> String {
    format!(
        "revision: {rev}\norigins:\n  - name: v\n    matcher: '^/(?P<f>.+)$'\n    sources:\n      - kind: local\n        name: d\n        root: tmp\n        path: '${{f}}'\n"
    )
}

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

fn revision_cm(name: &str, document: &str) -> ConfigMap {
    configmap(
        name,
        &[
            (contract::LABEL_CONFIG, CONFIG),
            (contract::LABEL_ROLE, contract::ROLE_REVISION),
        ],
        &[(contract::CONFIG_KEY, document)],
    )
}

fn pointer_cm(stable: &str, canary: Option<(&str, u32)>) -> ConfigMap {
    let p = Pointer {
        stable: stable.into(),
        canary: canary.map(|(c, _)| c.into()),
        canary_weight_bp: canary.map_or(0, |(_, w)| w),
    };
    let mut cm = configmap(
        &contract::pointer_configmap_name(CONFIG),
        &[
            (contract::LABEL_CONFIG, CONFIG),
            (contract::LABEL_ROLE, contract::ROLE_POINTER),
        ],
        &[],
    );
    cm.data = Some(p.to_data());
    cm
}

fn store(cms: Vec<ConfigMap>) -> Store {
    cms.into_iter()
        .map(|cm| (cm.metadata.name.clone().unwrap_or_default(), cm))
        .collect()
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

// ---- desired -------------------------------------------------------------------------------

#[test]
fn without_a_pointer_nothing_is_desired() {
    let s = store(vec![revision_cm("web-r1-a", &doc("r1"))]);
    assert_eq!(desired(&s, CONFIG), Ok(None));
    assert_eq!(desired(&Store::new(), CONFIG), Ok(None));
}

#[test]
fn the_pointer_selects_the_stable_revision_and_its_document() {
    let s = store(vec![
        revision_cm("web-r1-a", &doc("r1")),
        revision_cm("web-r2-b", &doc("r2")),
        pointer_cm("web-r2-b", None),
    ]);
    let d = desired(&s, CONFIG).expect("usable").expect("desired");
    assert_eq!(
        d.stable,
        Revision {
            configmap: "web-r2-b".into(),
            document: doc("r2"),
            digest: sha(&doc("r2")),
        }
    );
    assert_eq!(d.canary, None);
}

#[test]
fn a_pointer_to_a_revision_not_seen_yet_is_a_transient_problem() {
    let s = store(vec![
        revision_cm("web-r1-a", &doc("r1")),
        pointer_cm("web-r2-b", None),
    ]);
    let e = desired(&s, CONFIG).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(
        e,
        Problem::NotYetSeen {
            pointer: "web-active".into(),
            configmap: "web-r2-b".into()
        }
    );
    assert!(e.to_string().contains("web-r2-b"), "{e}");
}

#[test]
fn a_pointer_without_stable_or_with_a_bad_weight_is_refused() {
    let mut p = pointer_cm("web-r1-a", None);
    p.data = Some(BTreeMap::new());
    let s = store(vec![revision_cm("web-r1-a", &doc("r1")), p.clone()]);
    let e = desired(&s, CONFIG).unwrap_err();
    assert!(
        matches!(e, Problem::BadPointer { .. }) && !e.is_transient(),
        "{e}"
    );

    p.data = None;
    let s = store(vec![revision_cm("web-r1-a", &doc("r1")), p]);
    assert!(matches!(
        desired(&s, CONFIG),
        Err(Problem::BadPointer { .. })
    ));

    let mut p = pointer_cm("web-r1-a", Some(("web-r2-b", 1)));
    if let Some(d) = p.data.as_mut() {
        d.insert("canaryWeightBasisPoints".into(), "10001".into());
    }
    let s = store(vec![revision_cm("web-r1-a", &doc("r1")), p]);
    let e = desired(&s, CONFIG).unwrap_err();
    assert!(e.to_string().contains("canaryWeightBasisPoints"), "{e}");
}

#[test]
fn a_pointer_without_the_pointer_role_is_refused() {
    let mut p = pointer_cm("web-r1-a", None);
    p.metadata.labels = Some(
        [(contract::LABEL_CONFIG.to_string(), CONFIG.to_string())]
            .into_iter()
            .collect(),
    );
    let s = store(vec![revision_cm("web-r1-a", &doc("r1")), p]);
    let e = desired(&s, CONFIG).unwrap_err();
    assert!(
        matches!(e, Problem::BadPointer { .. }) && e.to_string().contains(contract::LABEL_ROLE),
        "{e}"
    );
}

#[test]
fn a_pointer_naming_a_configmap_that_is_not_a_revision_of_this_config_is_refused() {
    // Names itself.
    let s = store(vec![pointer_cm("web-active", None)]);
    assert_eq!(
        desired(&s, CONFIG),
        Err(Problem::NotARevision {
            configmap: "web-active".into(),
            config: CONFIG.into()
        })
    );
    // A revision of another config (only if it slipped past the label selector).
    let mut other = revision_cm("api-r1-a", &doc("r1"));
    if let Some(l) = other.metadata.labels.as_mut() {
        l.insert(contract::LABEL_CONFIG.into(), "api".into());
    }
    let s = store(vec![other, pointer_cm("api-r1-a", None)]);
    assert!(matches!(
        desired(&s, CONFIG),
        Err(Problem::NotARevision { .. })
    ));
}

#[test]
fn a_revision_without_the_document_key_is_refused() {
    let mut r = revision_cm("web-r1-a", "");
    r.data = Some(
        [("other.yaml".to_string(), doc("r1"))]
            .into_iter()
            .collect(),
    );
    let s = store(vec![r, pointer_cm("web-r1-a", None)]);
    let e = desired(&s, CONFIG).unwrap_err();
    assert_eq!(
        e,
        Problem::NoDocument {
            configmap: "web-r1-a".into()
        }
    );
    assert!(e.to_string().contains(contract::CONFIG_KEY));
}

#[test]
fn a_document_in_binary_data_is_accepted() {
    let mut r = revision_cm("web-r1-a", "");
    r.data = None;
    r.binary_data = Some(
        [(
            contract::CONFIG_KEY.to_string(),
            ByteString(doc("r1").into_bytes()),
        )]
        .into_iter()
        .collect(),
    );
    let s = store(vec![r, pointer_cm("web-r1-a", None)]);
    let d = desired(&s, CONFIG).expect("usable").expect("desired");
    assert_eq!(d.stable.document, doc("r1"));
}

#[test]
fn the_canary_and_its_weight_are_carried_and_a_missing_canary_never_hides_stable() {
    let s = store(vec![
        revision_cm("web-r1-a", &doc("r1")),
        revision_cm("web-r2-b", &doc("r2")),
        pointer_cm("web-r1-a", Some(("web-r2-b", 500))),
    ]);
    let d = desired(&s, CONFIG).expect("usable").expect("desired");
    assert_eq!(d.stable.configmap, "web-r1-a");
    let c = d.canary.expect("canary");
    assert_eq!((c.configmap.as_str(), c.weight_bp), ("web-r2-b", 500));
    assert_eq!(c.revision.map(|r| r.document), Some(doc("r2")));

    let s = store(vec![
        revision_cm("web-r1-a", &doc("r1")),
        pointer_cm("web-r1-a", Some(("web-r3-c", 100))),
    ]);
    let d = desired(&s, CONFIG).expect("usable").expect("desired");
    assert_eq!(d.stable.configmap, "web-r1-a");
    let c = d.canary.expect("canary");
    assert_eq!((c.configmap.as_str(), c.revision), ("web-r3-c", None));
}

#[test]
fn the_digest_changes_with_the_document_only() {
    let a = store(vec![
        revision_cm("web-r1-a", &doc("r1")),
        pointer_cm("web-r1-a", None),
    ]);
    let b = store(vec![
        revision_cm("web-r1-a", &doc("r1b")),
        pointer_cm("web-r1-a", None),
    ]);
    let da = desired(&a, CONFIG).expect("ok").expect("some");
    let db = desired(&b, CONFIG).expect("ok").expect("some");
    assert_eq!(da.stable.configmap, db.stable.configmap);
    assert_ne!(da.stable.digest, db.stable.digest);
    assert_eq!(
        desired(&a, CONFIG)
            .expect("ok")
            .expect("some")
            .stable
            .digest,
        da.stable.digest
    );
}

#[test]
fn documents_from_configmaps_resolve_relative_paths_against_the_root_and_errors_name_the_configmap()
{
    let rev = Revision {
        configmap: "web-r1-a".into(),
        document: doc("r1"),
        digest: sha(&doc("r1")),
    };
    let d = document(&rev).expect("parses");
    assert_eq!(d.base, Path::new("/"));
    assert_eq!(d.digest, rev.digest);

    let bad = Revision {
        document: "origins: [ broken".into(),
        ..rev
    };
    let e = document(&bad).unwrap_err().to_string();
    assert!(e.contains("ConfigMap web-r1-a"), "{e}");
}

#[test]
fn config_names_must_be_short_dns_labels() {
    assert!(valid_config_name("web"));
    assert!(valid_config_name("web-2"));
    for bad in ["", "Web", "-web", "web-", "a/b", "w.eb", &"a".repeat(57)] {
        assert!(!valid_config_name(bad), "{bad}");
    }
    assert!(valid_config_name(&"a".repeat(56)));
}

// ---- link ----------------------------------------------------------------------------------

#[test]
fn link_changes_are_reported_once_per_state_change_not_per_retry() {
    let mut l = Link::Connecting;
    assert_eq!(l.on_error(), Some(LinkChange::Unreachable));
    assert_eq!(l.on_error(), None);
    assert_eq!(l.on_event(), Some(LinkChange::Connected));
    assert_eq!(l.on_event(), None);
    assert_eq!(l.on_error(), Some(LinkChange::Disconnected));
    assert_eq!(l.on_error(), None);
    assert_eq!(l.on_error(), None);
    assert_eq!(l.on_event(), Some(LinkChange::Reconnected));
    assert_eq!(l.on_event(), None);

    let mut l = Link::Connecting;
    assert_eq!(l.on_event(), Some(LinkChange::Connected));
}

#[test]
fn only_events_after_the_list_request_prove_contact() {
    assert!(!proves_contact::<ConfigMap>(&Event::Init));
    assert!(proves_contact::<ConfigMap>(&Event::InitDone));
    assert!(proves_contact(&Event::Apply(pointer_cm("web-r1-a", None))));
}

#[test]
fn a_compacted_watch_is_routine_and_a_refused_connection_is_not() {
    let gone = kube::core::Status {
        code: 410,
        ..kube::core::Status::default()
    };
    assert!(routine(&watcher::Error::WatchError(Box::new(gone))));
    let forbidden = kube::core::Status {
        code: 403,
        ..kube::core::Status::default()
    };
    assert!(!routine(&watcher::Error::WatchError(Box::new(forbidden))));
    assert!(!routine(&watcher::Error::NoResourceVersion));
}

// ---- follower ------------------------------------------------------------------------------

async fn app(dir: &tempfile::TempDir) -> Arc<App> {
    let sizing = Sizing {
        memory_cache_bytes: 1 << 20,
        memory_cache_object_bytes: 1 << 19,
        ..Sizing::default()
    };
    App::with_sizing(
        Settings {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
            work_dir: dir.path().join("work"),
            audit_log: None,
        },
        sizing,
    )
    .await
    .expect("app builds")
}

fn invalid_loads(app: &App) -> u64 {
    app.metrics
        .config_loads
        .get_or_create(&LoadLabels {
            outcome: LoadOutcome::Invalid,
        })
        .get()
}

fn ok_loads(app: &App) -> u64 {
    app.metrics
        .config_loads
        .get_or_create(&LoadLabels {
            outcome: LoadOutcome::Ok,
        })
        .get()
}

fn live(app: &App) -> Option<String> {
    app.runtime().map(|r| r.revision().to_owned())
}

/// Feeds a full (re)list of `cms` and reconciles.
fn relist(f: &mut Follower, app: &App, cms: Vec<ConfigMap>) -> Outcome {
    assert!(!f.observe(Event::Init));
    for cm in cms {
        assert!(!f.observe(Event::InitApply(cm)), "no reconcile mid-list");
    }
    assert!(f.observe(Event::InitDone));
    f.reconcile(app)
}

fn apply(f: &mut Follower, app: &App, cm: ConfigMap) -> Outcome {
    assert!(f.observe(Event::Apply(cm)));
    f.reconcile(app)
}

#[tokio::test]
async fn the_first_listed_revision_becomes_ready_and_a_pointer_update_swaps_it() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    assert_eq!(live(&app), None);
    let out = relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r1-a", None),
        ],
    );
    assert_eq!(out, Outcome::Installed("web-r1-a".into()));
    assert_eq!(live(&app).as_deref(), Some("r1"));

    let held = app.runtime().expect("live");
    let out = apply(&mut f, &app, pointer_cm("web-r2-b", None));
    assert_eq!(out, Outcome::Installed("web-r2-b".into()));
    assert_eq!(live(&app).as_deref(), Some("r2"));
    assert_eq!(
        held.revision(),
        "r1",
        "a request in flight keeps its revision"
    );
    assert_eq!(ok_loads(&app), 2);

    // An unrelated change (a new revision nobody points at) changes nothing.
    let out = apply(&mut f, &app, revision_cm("web-r3-c", &doc("r3")));
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(ok_loads(&app), 2);
}

#[tokio::test]
async fn a_bad_revision_is_refused_once_and_the_last_good_one_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            pointer_cm("web-r1-a", None),
        ],
    );
    assert_eq!(live(&app).as_deref(), Some("r1"));

    // Unparseable.
    apply(&mut f, &app, revision_cm("web-r2-b", "origins: [ broken"));
    let out = apply(&mut f, &app, pointer_cm("web-r2-b", None));
    assert!(
        matches!(&out, Outcome::Refused(r) if r.contains("web-r2-b")),
        "{out:?}"
    );
    assert_eq!(invalid_loads(&app), 1);
    assert_eq!(live(&app).as_deref(), Some("r1"));

    // Same content again (e.g. a relist): not recompiled, not counted again.
    let out = apply(&mut f, &app, revision_cm("web-r9-z", &doc("r9")));
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(invalid_loads(&app), 1);

    // Parses but does not compile (local root missing): refused whole, never half-applied.
    let mut d = doc("r3");
    d = d.replace("root: tmp", "root: /nonexistent-vr-root");
    apply(&mut f, &app, revision_cm("web-r3-c", &d));
    let out = apply(&mut f, &app, pointer_cm("web-r3-c", None));
    assert!(
        matches!(&out, Outcome::Refused(r) if r.contains("web-r3-c")),
        "{out:?}"
    );
    assert_eq!(invalid_loads(&app), 2);
    assert_eq!(live(&app).as_deref(), Some("r1"));

    // A fixed pointer loads again.
    let out = apply(&mut f, &app, pointer_cm("web-r9-z", None));
    assert_eq!(out, Outcome::Installed("web-r9-z".into()));
    assert_eq!(live(&app).as_deref(), Some("r9"));
}

#[tokio::test]
async fn a_refused_pointer_is_counted_once_until_it_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    let mut p = pointer_cm("web-r1-a", None);
    p.data = Some(BTreeMap::new());
    let out = relist(
        &mut f,
        &app,
        vec![revision_cm("web-r1-a", &doc("r1")), p.clone()],
    );
    assert!(matches!(out, Outcome::Refused(_)), "{out:?}");
    assert_eq!(apply(&mut f, &app, p), Outcome::Unchanged);
    assert_eq!(invalid_loads(&app), 1);
    assert_eq!(live(&app), None, "not ready on a bad pointer");
    let out = apply(&mut f, &app, pointer_cm("web-r1-a", None));
    assert_eq!(out, Outcome::Installed("web-r1-a".into()));
}

#[tokio::test]
async fn a_pointer_ahead_of_its_revision_waits_then_loads_when_it_arrives() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    let out = relist(&mut f, &app, vec![pointer_cm("web-r1-a", None)]);
    assert!(
        matches!(&out, Outcome::Waiting(m) if m.contains("web-r1-a")),
        "{out:?}"
    );
    assert_eq!(
        apply(&mut f, &app, pointer_cm("web-r1-a", None)),
        Outcome::Unchanged,
        "waiting is reported once"
    );
    assert_eq!(invalid_loads(&app), 0, "waiting is not a refusal");
    assert_eq!(live(&app), None);
    let out = apply(&mut f, &app, revision_cm("web-r1-a", &doc("r1")));
    assert_eq!(out, Outcome::Installed("web-r1-a".into()));
    assert_eq!(live(&app).as_deref(), Some("r1"));
}

#[tokio::test]
async fn losing_the_pointer_or_the_revision_keeps_the_last_revision_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            pointer_cm("web-r1-a", None),
        ],
    );
    assert!(f.observe(Event::Delete(revision_cm("web-r1-a", ""))));
    assert!(matches!(f.reconcile(&app), Outcome::Waiting(_)));
    assert!(f.observe(Event::Delete(pointer_cm("web-r1-a", None))));
    assert!(matches!(f.reconcile(&app), Outcome::Waiting(_)));
    assert_eq!(live(&app).as_deref(), Some("r1"));
    assert_eq!(invalid_loads(&app), 0);
}

#[tokio::test]
async fn a_relist_replaces_the_map_so_objects_deleted_while_away_are_forgotten() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r1-a", None),
        ],
    );
    let out = relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r2-b", None),
        ],
    );
    assert_eq!(out, Outcome::Installed("web-r2-b".into()));
    assert_eq!(
        f.store().keys().cloned().collect::<Vec<_>>(),
        ["web-active", "web-r2-b"]
    );
    // A relist with nothing changed does not reload.
    let out = relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r2-b", None),
        ],
    );
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(ok_loads(&app), 2);
}

#[tokio::test]
async fn an_edited_revision_with_the_same_name_is_reloaded() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            pointer_cm("web-r1-a", None),
        ],
    );
    let out = apply(&mut f, &app, revision_cm("web-r1-a", &doc("r1-edited")));
    assert_eq!(out, Outcome::Installed("web-r1-a".into()));
    assert_eq!(live(&app).as_deref(), Some("r1-edited"));
}

fn canary_of(app: &App) -> Option<(String, u32)> {
    let live = app.live()?;
    live.canary
        .as_ref()
        .map(|(rt, w)| (rt.revision().to_owned(), *w))
}

#[tokio::test]
async fn a_canary_is_loaded_beside_stable_and_a_weight_change_or_promotion_recompiles_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r1-a", Some(("web-r2-b", 1000))),
        ],
    );
    assert_eq!(live(&app).as_deref(), Some("r1"));
    assert_eq!(canary_of(&app), Some(("r2".into(), 1000)));
    let canary_rt = app.live().and_then(|l| l.canary.clone()).expect("canary").0;

    // Raising the weight reuses the compiled canary.
    apply(
        &mut f,
        &app,
        pointer_cm("web-r1-a", Some(("web-r2-b", 5000))),
    );
    let (rt, w) = app.live().and_then(|l| l.canary.clone()).expect("canary");
    assert_eq!(w, 5000);
    assert!(Arc::ptr_eq(&rt, &canary_rt));

    // Promotion: the canary's compiled runtime becomes stable as it is.
    apply(&mut f, &app, pointer_cm("web-r2-b", None));
    let l = app.live().expect("live");
    assert!(Arc::ptr_eq(&l.stable, &canary_rt));
    assert!(l.canary.is_none());
    assert_eq!(
        app.metrics
            .config_active
            .get_or_create(&crate::metrics::ActiveLabels {
                revision: "r2".into(),
                role: "canary"
            })
            .get(),
        0
    );
}

#[tokio::test]
async fn a_canary_that_does_not_load_is_refused_and_stable_serves_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    let out = relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            revision_cm("web-r2-b", "revision: r2\norigins: []\n"),
            pointer_cm("web-r1-a", Some(("web-r2-b", 5000))),
        ],
    );
    assert!(matches!(out, Outcome::Refused(_)), "{out:?}");
    assert_eq!(live(&app).as_deref(), Some("r1"));
    assert_eq!(canary_of(&app), None);
    assert_eq!(invalid_loads(&app), 1);
}

#[tokio::test]
async fn requests_split_by_weight_and_the_same_url_keeps_its_revision() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(&dir).await;
    let mut f = Follower::new(CONFIG);
    relist(
        &mut f,
        &app,
        vec![
            revision_cm("web-r1-a", &doc("r1")),
            revision_cm("web-r2-b", &doc("r2")),
            pointer_cm("web-r1-a", Some(("web-r2-b", 2500))),
        ],
    );
    let live = app.live().expect("live");
    let pick = |i: usize| live.route(&format!("/v/{i}.mp4"), "width=320").1;
    let canary = (0..4000)
        .filter(|i| pick(*i) == crate::control::app::Role::Canary)
        .count();
    assert!((900..1100).contains(&canary), "{canary} of 4000");
    for i in 0..200 {
        assert_eq!(pick(i), pick(i), "URL {i} moved between revisions");
    }
}
