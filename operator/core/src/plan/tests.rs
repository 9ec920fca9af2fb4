use super::conditions::set_condition;
use super::*;
use crate::model::ObservedRevision;
use crate::reason::{ConditionType, Reason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use vr_crds::contract::{self, Pointer};
use vr_crds::resources::{Derivative, Phase};

const READY: ConditionType = ConditionType::Ready;
const PROGRESSING: ConditionType = ConditionType::Progressing;
const DEGRADED: ConditionType = ConditionType::Degraded;

const CONFIG: &str = include_str!("../../../../crds/examples/videoresizerconfig.yaml");
const DERIVATIVES: &str = include_str!("../../../../crds/examples/derivatives.yaml");

fn config() -> VideoResizerConfig {
    let mut c: VideoResizerConfig = serde_yaml::from_str(CONFIG).expect("example config parses");
    c.metadata.namespace = Some("media".into());
    c.metadata.uid = Some("uid-1".into());
    c.metadata.generation = Some(1);
    c
}

fn derivatives() -> Vec<Derivative> {
    serde_yaml::Deserializer::from_str(DERIVATIVES)
        .map(|d| {
            let mut d: Derivative = serde::Deserialize::deserialize(d).expect("derivative parses");
            d.metadata.namespace = Some("media".into());
            d
        })
        .collect()
}

fn settings() -> Settings {
    Settings {
        default_image: "video-resizer/dataplane:test".into(),
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
}

/// What the cluster looks like after `p` was applied, with `ready` pods.
fn after(p: &Plan, mut observed: Observed, ready: i32) -> Observed {
    if let Some(cm) = &p.new_revision {
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        observed.revisions.push(ObservedRevision {
            name: cm.metadata.name.clone().unwrap_or_default(),
            revision: labels[contract::LABEL_REVISION].parse().expect("number"),
            hash: cm.metadata.annotations.clone().unwrap_or_default()[contract::ANNOTATION_HASH]
                .clone(),
        });
    }
    for name in &p.prune {
        observed.revisions.retain(|r| &r.name != name);
    }
    if let Some(ptr) = &p.pointer {
        observed.pointer = Pointer::from_data(ptr.data.as_ref().expect("data"));
    }
    observed.ready_replicas = ready;
    observed
}

/// The example config's first plan (at t=0) and the cluster after it, with `ready` pods.
fn first_revision(ready: i32) -> (VideoResizerConfig, Plan, Observed) {
    let cfg = config();
    let p1 = plan(
        &cfg,
        &derivatives(),
        &Observed::default(),
        &settings(),
        t(0),
    );
    let o1 = after(&p1, Observed::default(), ready);
    (cfg, p1, o1)
}

fn with_status(mut c: VideoResizerConfig, p: &Plan) -> VideoResizerConfig {
    c.status = Some(p.status.clone());
    c
}

fn condition(s: &VideoResizerConfigStatus, t: ConditionType) -> &Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t.as_str())
        .expect("condition present")
}

#[test]
fn first_reconcile_creates_revision_one_and_points_at_it() {
    let p = plan(
        &config(),
        &derivatives(),
        &Observed::default(),
        &settings(),
        t(0),
    );
    let cm = p.new_revision.as_ref().expect("a new revision");
    let name = cm.metadata.name.clone().expect("name");
    assert!(name.starts_with("web-r1-"), "{name}");
    assert_eq!(cm.immutable, Some(true));
    let labels = cm.metadata.labels.clone().expect("labels");
    assert_eq!(labels[contract::LABEL_CONFIG], "web");
    assert_eq!(labels[contract::LABEL_REVISION], "1");
    assert_eq!(labels[contract::LABEL_ROLE], contract::ROLE_REVISION);
    let doc = &cm.data.as_ref().expect("data")[contract::CONFIG_KEY];
    let parsed =
        vr_crds::DataPlaneConfig::from_yaml(doc).expect("the data plane accepts the document");
    assert_eq!(parsed.revision, "r1");
    assert_eq!(parsed.derivatives.len(), 4);
    let ptr = Pointer::from_data(
        p.pointer
            .as_ref()
            .and_then(|c| c.data.as_ref())
            .expect("pointer"),
    )
    .expect("valid pointer");
    assert_eq!(ptr.stable, name);
    assert_eq!(p.status.active_revision.as_deref(), Some("r1"));
    assert_eq!(p.status.last_revision, 1);
    assert_eq!(condition(&p.status, PROGRESSING).status, "True");
    assert_eq!(condition(&p.status, READY).status, "False");
    let reasons: Vec<_> = p.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [Reason::RevisionCreated, Reason::RevisionActivated]
    );
    // The Secret the config reads is mounted in the declared Deployment.
    let deployment = p
        .children
        .iter()
        .find_map(|c| match c {
            children::Declared::Deployment(d) => Some(d),
            _ => None,
        })
        .expect("a Deployment is declared");
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert!(pod.volumes.iter().flatten().any(|v| v
        .secret
        .as_ref()
        .is_some_and(|s| s.secret_name.as_deref() == Some("media-origin"))));
}

#[test]
fn re_applying_identical_specs_creates_no_revision_and_an_identical_status() {
    let (cfg, p1, o1) = first_revision(2);
    let p2 = plan(
        &with_status(cfg.clone(), &p1),
        &derivatives(),
        &o1,
        &settings(),
        t(10),
    );
    assert!(p2.new_revision.is_none());
    assert_eq!(condition(&p2.status, READY).status, "True");
    assert_eq!(p2.status.phase, Some(Phase::Ready));
    let reasons: Vec<_> = p2.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [Reason::Available]);
    // A GitOps tool re-applies the same spec minutes later: nothing changes, not even times.
    let o2 = after(&p2, o1.clone(), 2);
    let p3 = plan(
        &with_status(cfg, &p2),
        &derivatives(),
        &o2,
        &settings(),
        t(600),
    );
    assert!(p3.new_revision.is_none());
    assert!(p3.prune.is_empty());
    assert!(p3.events.is_empty(), "{:?}", p3.events);
    assert_eq!(p3.status, p2.status);
}

#[test]
fn a_derivative_change_makes_the_next_revision() {
    let (cfg, p1, o1) = first_revision(1);
    let mut ds = derivatives();
    let mobile = ds
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some("mobile"))
        .expect("mobile");
    mobile.spec.preset.width = Some(480);
    let p2 = plan(&with_status(cfg, &p1), &ds, &o1, &settings(), t(5));
    let cm = p2.new_revision.as_ref().expect("new revision");
    assert!(cm
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with("web-r2-")));
    // r1 keeps serving while r2 runs as a canary at the first step's weight.
    assert_eq!(p2.status.active_revision.as_deref(), Some("r1"));
    let ro = p2.status.rollout.as_ref().expect("rollout");
    assert_eq!((ro.revision.as_str(), ro.weight, ro.step), ("r2", 10, 0));
    assert_eq!(p2.status.canary_weight, 10);
    assert!(p2.baseline, "a rollout start asks for a metrics baseline");
}

#[test]
fn reverting_to_earlier_content_reuses_its_revision() {
    let (cfg, p1, o1) = first_revision(1);
    let mut ds = derivatives();
    ds[0].spec.preset.height = Some(200);
    let p2 = plan(&with_status(cfg.clone(), &p1), &ds, &o1, &settings(), t(5));
    let o2 = after(&p2, o1, 1);
    let p3 = plan(
        &with_status(cfg, &p2),
        &derivatives(),
        &o2,
        &settings(),
        t(9),
    );
    assert!(p3.new_revision.is_none());
    assert_eq!(p3.status.active_revision.as_deref(), Some("r1"));
    assert_eq!(p3.status.last_revision, 2);
}

#[test]
fn an_invalid_derivative_changes_nothing_and_says_why_once() {
    let (cfg, p1, o1) = first_revision(2);
    let mut ds = derivatives();
    ds[0].spec.preset.width = Some(5);
    let bad = ds[0].metadata.name.clone().expect("name");
    let p2 = plan(&with_status(cfg.clone(), &p1), &ds, &o1, &settings(), t(5));
    assert!(
        p2.new_revision.is_none()
            && p2.pointer.is_none()
            && p2.children.is_empty()
            && p2.prune.is_empty()
    );
    let d = condition(&p2.status, DEGRADED);
    assert_eq!(d.status, "True");
    assert!(
        d.message.contains(&format!("Derivative/{bad}")) && d.message.contains("width"),
        "{}",
        d.message
    );
    assert_eq!(
        p2.status.active_revision.as_deref(),
        Some("r1"),
        "the last good revision keeps serving"
    );
    assert_eq!(p2.status.phase, Some(Phase::Degraded));
    assert_eq!(p2.events.len(), 1);
    assert!(p2.events[0].warning);
    // The same problem on the next pass: no second event.
    let p3 = plan(&with_status(cfg.clone(), &p2), &ds, &o1, &settings(), t(50));
    assert!(p3.events.is_empty());
    // Fixed: the config says so once and is Ready again.
    let p4 = plan(
        &with_status(cfg, &p3),
        &derivatives(),
        &o1,
        &settings(),
        t(60),
    );
    assert_eq!(condition(&p4.status, DEGRADED).status, "False");
    assert!(
        p4.events.iter().any(|e| e.reason == Reason::SpecValid),
        "{:?}",
        p4.events
    );
}

#[test]
fn history_keeps_the_newest_revisions_and_always_the_active_one() {
    let cfg = config();
    let mut observed = Observed::default();
    for n in 1..=12u64 {
        observed.revisions.push(ObservedRevision {
            name: format!("web-r{n}-aaaaaaaaaa"),
            revision: n,
            hash: format!("h{n}"),
        });
    }
    let mut cfg2 = cfg;
    cfg2.spec.revision_history_limit = 10;
    let p = plan(&cfg2, &derivatives(), &observed, &settings(), t(0));
    // A new revision r13 is created: with it, the newest 10 are r13..r4.
    assert!(p.new_revision.is_some());
    assert_eq!(
        p.prune,
        [
            "web-r3-aaaaaaaaaa",
            "web-r2-aaaaaaaaaa",
            "web-r1-aaaaaaaaaa"
        ]
    );
}

#[test]
fn revision_numbers_are_never_reused_after_pruning() {
    let mut cfg = config();
    cfg.status = Some(VideoResizerConfigStatus {
        last_revision: 7,
        ..VideoResizerConfigStatus::default()
    });
    let observed = Observed {
        revisions: vec![ObservedRevision {
            name: "web-r3-bbbbbbbbbb".into(),
            revision: 3,
            hash: "other".into(),
        }],
        ..Observed::default()
    };
    let p = plan(&cfg, &derivatives(), &observed, &settings(), t(0));
    assert!(p
        .new_revision
        .and_then(|c| c.metadata.name)
        .is_some_and(|n| n.starts_with("web-r8-")));
    assert_eq!(p.status.last_revision, 8);
}

#[test]
fn conditions_change_transition_time_only_when_their_status_flips() {
    let mut cs = Vec::new();
    set_condition(
        &mut cs,
        READY,
        false,
        Reason::NoReadyPods,
        "a",
        Some(1),
        t(0),
    );
    set_condition(
        &mut cs,
        READY,
        false,
        Reason::Activating,
        "b",
        Some(2),
        t(100),
    );
    assert_eq!(cs[0].last_transition_time.0, t(0));
    assert_eq!(cs[0].reason, "Activating");
    set_condition(
        &mut cs,
        READY,
        true,
        Reason::Available,
        "c",
        Some(2),
        t(200),
    );
    assert_eq!(cs[0].last_transition_time.0, t(200));
}

#[test]
fn a_spec_that_turns_invalid_during_a_canary_takes_the_canary_out_of_traffic() {
    let (cfg, p1, o1) = first_revision(2);
    let cfg = with_status(cfg, &p1);
    let mut ds = derivatives();
    ds[0].spec.preset.width = Some(480);
    let p2 = plan(&cfg, &ds, &o1, &settings(), t(5));
    assert!(p2.status.rollout.is_some(), "a canary runs");
    let o2 = after(&p2, o1, 2);
    assert!(o2.pointer.as_ref().is_some_and(|p| p.canary.is_some()));
    ds[0].spec.preset.width = Some(5);
    let p3 = plan(&with_status(cfg, &p2), &ds, &o2, &settings(), t(8));
    let pointer = p3
        .pointer
        .as_ref()
        .and_then(|cm| Pointer::from_data(cm.data.as_ref()?))
        .expect("a pointer write");
    assert_eq!(pointer.canary, None);
    assert_eq!(pointer.stable, o2.pointer.expect("pointer").stable);
    assert!(p3.status.rollout.is_none());
    assert_eq!(p3.status.canary_weight, 0);
    assert!(p3.events.iter().any(|e| e.reason == Reason::RolloutStopped));
}

/// The cluster after the first plan, with one ready pod.
fn o1_again(p0: &Plan) -> Observed {
    after(p0, Observed::default(), 1)
}

/// `(status, reason)` of a condition.
fn read(s: &VideoResizerConfigStatus, t: ConditionType) -> (String, String) {
    let c = condition(s, t);
    (c.status.clone(), c.reason.clone())
}

fn pair(status: &str, reason: Reason) -> (String, String) {
    (status.to_owned(), reason.as_str().to_owned())
}

#[test]
fn kstatus_reads_current_in_progress_and_failed_and_a_rolled_back_change_is_never_ready() {
    // Activating r1: InProgress. Rolled out with a ready pod: Current (Ready, nothing
    // reconciling, not stalled).
    let (cfg, p0, o1) = first_revision(1);
    assert_eq!(
        read(&p0.status, ConditionType::Reconciling),
        pair("True", Reason::Activating)
    );
    let p1 = plan(
        &with_status(cfg.clone(), &p0),
        &derivatives(),
        &o1,
        &settings(),
        t(1),
    );
    let s1 = &p1.status;
    assert_eq!(read(s1, READY), pair("True", Reason::Available));
    assert_eq!(read(s1, ConditionType::Reconciling).0, "False");
    assert_eq!(read(s1, ConditionType::Stalled).0, "False");

    // A canary: InProgress (Reconciling mirrors Progressing).
    let mut ds = derivatives();
    ds[0].spec.preset.height = Some(200);
    let p2 = plan(&with_status(cfg.clone(), &p1), &ds, &o1, &settings(), t(5));
    let o2 = after(&p2, o1, 1);
    assert_eq!(
        read(&p2.status, READY),
        pair("False", Reason::RolloutInProgress)
    );
    assert_eq!(
        read(&p2.status, ConditionType::Reconciling),
        pair("True", Reason::Canary)
    );
    assert_eq!(read(&p2.status, ConditionType::Stalled).0, "False");

    // Aborted: r2 held back, r1 serves with a ready pod, and still the config is not Ready —
    // Stalled with the reason, so `kubectl wait --for=condition=Ready` and kstatus fail.
    let mut aborted = with_status(cfg.clone(), &p2);
    aborted
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(contract::ANNOTATION_ABORT.into(), "t".into());
    let p3 = plan(&aborted, &ds, &o2, &settings(), t(10));
    let o3 = after(&p3, o2, 1);
    assert!(p3.status.held_back.is_some(), "{:?}", p3.status);
    let ready = condition(&p3.status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RolledBack")
    );
    assert!(
        ready.message.contains("held back") && ready.message.contains("r1 keeps serving"),
        "{}",
        ready.message
    );
    assert_eq!(
        read(&p3.status, ConditionType::Stalled),
        pair("True", Reason::RolledBack)
    );
    assert_eq!(read(&p3.status, ConditionType::Reconciling).0, "False");
    assert_eq!(read(&p3.status, DEGRADED).0, "True");

    // The next passes settle, then change nothing, and announce no availability.
    let p4 = plan(&with_status(cfg.clone(), &p3), &ds, &o3, &settings(), t(20));
    let p5 = plan(&with_status(cfg.clone(), &p4), &ds, &o3, &settings(), t(30));
    assert_eq!(p5.status, p4.status, "byte-identical status: no write");
    assert_eq!(read(&p5.status, READY), pair("False", Reason::RolledBack));
    assert!(
        p4.events
            .iter()
            .chain(&p5.events)
            .all(|e| e.reason != Reason::Available),
        "{:?}",
        p4.events
    );

    // An invalid spec is Failed too.
    let mut bad = derivatives();
    bad[0].spec.preset.width = Some(5);
    let p6 = plan(
        &with_status(cfg, &p1),
        &bad,
        &o1_again(&p0),
        &settings(),
        t(40),
    );
    assert_eq!(
        read(&p6.status, ConditionType::Stalled),
        pair("True", Reason::InvalidSpec)
    );
    assert_eq!(read(&p6.status, ConditionType::Reconciling).0, "False");
    assert_eq!(read(&p6.status, READY).0, "False");
}
