use super::*;
use crate::model::{ObservedRevision, Rev};
use crate::reason::Reason;
use crate::verdict::policy::window_due;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;
use vr_crds::contract;
use vr_crds::resources::VideoResizerConfigStatus;
use vr_crds::rollout::{AnalysisResult, RevisionRecord, RolloutSpec};
use vr_crds::rollout::{
    Outcome, ProviderErrorPolicy, RevisionNumbers, RolloutState, RolloutStep, Verdict,
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
}

fn rev(n: u64) -> Rev {
    Rev {
        number: n,
        configmap: format!("web-r{n}-h{n}"),
        hash: format!("h{n}"),
    }
}

fn observed(ns: &[u64]) -> Vec<ObservedRevision> {
    ns.iter()
        .map(|n| ObservedRevision {
            name: rev(*n).configmap,
            revision: *n,
            hash: rev(*n).hash,
        })
        .collect()
}

fn window(verdict: Verdict, now: Timestamp) -> AnalysisResult {
    AnalysisResult {
        verdict,
        time: now.to_string(),
        window_seconds: 5,
        canary: RevisionNumbers {
            requests: 100,
            ..RevisionNumbers::default()
        },
        stable: RevisionNumbers {
            requests: 900,
            ..RevisionNumbers::default()
        },
        reasons: match verdict {
            Verdict::Fail => vec!["canary 5xx 40.0% (40/100) > maxErrorRatePercent 5".into()],
            Verdict::Error => vec!["no data-plane pod could be scraped".into()],
            _ => vec![],
        },
        ..AnalysisResult::default()
    }
}

/// A small world: the status carried between steps, as the API server would.
struct World {
    spec: RolloutSpec,
    annotations: BTreeMap<String, String>,
    generation: i64,
    status: VideoResizerConfigStatus,
    stable: Rev,
    revisions: Vec<ObservedRevision>,
    ready: i32,
    min_replicas: i32,
    restarts: i32,
}

impl World {
    fn new() -> World {
        World {
            spec: RolloutSpec::default(),
            annotations: BTreeMap::new(),
            generation: 2,
            status: VideoResizerConfigStatus::default(),
            stable: rev(1),
            revisions: observed(&[1, 2]),
            ready: 3,
            min_replicas: 3,
            restarts: 0,
        }
    }

    fn step(&mut self, target: u64, window: Option<Verdict>, now: Timestamp) -> Output {
        let out = step(Input {
            spec: &self.spec,
            annotations: &self.annotations,
            generation: self.generation,
            prev: &self.status,
            target: rev(target),
            stable: Some(self.stable.clone()),
            revisions: &self.revisions,
            ready_replicas: self.ready,
            min_replicas: self.min_replicas,
            restarts: self.restarts,
            window: window.map(|v| self::window(v, now)),
            now,
        });
        self.status.rollout = out.rollout.clone();
        self.status.held_back = out.held_back.clone();
        self.status.history = out.history.clone();
        for k in &out.consumed {
            self.annotations.remove(*k);
        }
        if let Some(s) = self.revisions.iter().find(|r| r.name == out.pointer.stable) {
            self.stable = Rev::from(s);
        }
        out
    }
}

fn outcome_of(out: &Output, label: &str) -> Option<Outcome> {
    out.history
        .iter()
        .find(|h| h.revision == label)
        .map(|h| h.outcome)
}

#[test]
fn a_good_canary_walks_every_step_is_promoted_and_bakes() {
    let mut w = World::new();
    let o = w.step(2, None, t(0));
    assert!(o.started);
    assert_eq!(o.pointer.canary.as_deref(), Some("web-r2-h2"));
    assert_eq!(o.pointer.canary_weight_bp, 1000);
    // Passing windows before the pause is over do not advance.
    let o = w.step(2, Some(Verdict::Pass), t(5));
    assert_eq!(o.pointer.canary_weight_bp, 1000);
    let o = w.step(2, Some(Verdict::Pass), t(30));
    assert_eq!(o.pointer.canary_weight_bp, 5000, "step 2");
    assert_eq!(o.rollout.as_ref().map(|r| r.step), Some(1));
    let o = w.step(2, Some(Verdict::Pass), t(35));
    assert_eq!(o.pointer.canary_weight_bp, 5000);
    let o = w.step(2, Some(Verdict::Pass), t(60));
    assert_eq!(o.pointer.stable, "web-r2-h2", "promoted");
    assert_eq!(o.pointer.canary, None);
    assert!(o.promoted);
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::Stable));
    assert_eq!(outcome_of(&o, "r1"), Some(Outcome::Superseded));
    assert_eq!(
        o.rollout.as_ref().map(|r| r.state),
        Some(RolloutState::Baking)
    );
    let o = w.step(2, Some(Verdict::Pass), t(65));
    assert!(o.rollout.is_some(), "still baking");
    let o = w.step(2, Some(Verdict::Pass), t(91));
    assert!(o.rollout.is_none(), "bake over");
    assert_eq!(o.pointer.stable, "web-r2-h2");
}

#[test]
fn a_failed_look_rolls_back_at_once_whatever_the_failure_limit_and_holds_the_content_back() {
    let mut w = World::new();
    w.spec.analysis.failure_limit = 3;
    w.step(2, None, t(0));
    let o = w.step(2, Some(Verdict::Fail), t(5));
    assert_eq!(o.pointer.canary, None);
    assert_eq!(o.pointer.canary_weight_bp, 0);
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::RolledBack));
    let rec = o.history.iter().find(|h| h.revision == "r2").expect("r2");
    assert!(rec.reason.as_deref().unwrap_or("").contains("40.0%"));
    assert!(
        rec.analysis.is_some(),
        "the numbers that failed it are kept"
    );
    assert!(o.rolled_back.is_some());
    assert!(o
        .events
        .iter()
        .any(|e| e.warning && e.reason == Reason::RolledBack));
    assert_eq!(o.held_back.as_ref().map(|h| h.hash.as_str()), Some("h2"));

    // The same content is not tried again...
    let o = w.step(2, None, t(20));
    assert_eq!(o.pointer.canary, None);
    assert!(!o.started);
    // ...until a retry is asked for,
    w.annotations
        .insert(contract::ANNOTATION_RETRY.into(), "1".into());
    let o = w.step(2, None, t(30));
    assert!(o.started);
    assert_eq!(o.consumed, vec![contract::ANNOTATION_RETRY]);
    assert!(!w.annotations.contains_key(contract::ANNOTATION_RETRY));
}

#[test]
fn a_new_generation_lifts_a_held_back_revision() {
    let mut w = World::new();
    w.spec.analysis.failure_limit = 0;
    w.step(2, None, t(0));
    let o = w.step(2, Some(Verdict::Fail), t(5));
    assert!(o.held_back.is_some());
    w.generation += 1;
    let o = w.step(2, None, t(10));
    assert!(
        o.started,
        "the spec changed: the content may be tried again"
    );
}

#[test]
fn inconclusive_windows_neither_advance_nor_fail() {
    let mut w = World::new();
    w.step(2, None, t(0));
    for i in 1..=40 {
        let o = w.step(2, Some(Verdict::Inconclusive), t(i * 5));
        assert_eq!(o.pointer.canary_weight_bp, 1000, "window {i}");
        assert!(o.rolled_back.is_none());
    }
    assert_eq!(
        w.status.rollout.as_ref().map(|r| r.inconclusive_windows),
        Some(40)
    );
}

#[test]
fn provider_errors_pause_or_roll_back_as_the_policy_says() {
    let mut w = World::new();
    w.step(2, None, t(0));
    for i in 1..=3 {
        w.step(2, Some(Verdict::Error), t(i * 5));
    }
    assert_eq!(
        w.status.rollout.as_ref().map(|r| r.state),
        Some(RolloutState::Paused)
    );
    // Passing windows while paused by errors do not advance past the pause...
    let o = w.step(2, Some(Verdict::Pass), t(40));
    assert_eq!(
        o.rollout.as_ref().map(|r| r.state),
        Some(RolloutState::Canary),
        "readable again: resumed"
    );

    let mut w = World::new();
    w.spec.on_provider_error = ProviderErrorPolicy::Rollback;
    w.step(2, None, t(0));
    w.step(2, Some(Verdict::Error), t(5));
    w.step(2, Some(Verdict::Error), t(10));
    let o = w.step(2, Some(Verdict::Error), t(15));
    assert_eq!(o.pointer.canary, None);
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::RolledBack));
}

#[test]
fn fewer_ready_pods_or_restarts_during_the_rollout_fail_it() {
    let mut w = World::new();
    w.step(2, None, t(0));
    w.ready = 2;
    let o = w.step(2, None, t(1));
    assert_eq!(o.pointer.canary, None);
    assert!(o
        .rolled_back
        .as_deref()
        .unwrap_or("")
        .contains("fell from 3 to 2"));

    let mut w = World::new();
    w.step(2, None, t(0));
    w.restarts = 1;
    let o = w.step(2, None, t(1));
    assert_eq!(o.pointer.canary, None);
}

#[test]
fn the_paused_annotation_holds_the_step_and_removing_it_resumes() {
    let mut w = World::new();
    w.step(2, None, t(0));
    w.annotations
        .insert(contract::ANNOTATION_PAUSED.into(), "true".into());
    let o = w.step(2, Some(Verdict::Pass), t(40));
    assert_eq!(o.pointer.canary_weight_bp, 1000);
    assert_eq!(
        o.rollout.as_ref().map(|r| r.state),
        Some(RolloutState::Paused)
    );
    assert!(o.consumed.is_empty(), "pause is state, not a request");
    w.annotations.remove(contract::ANNOTATION_PAUSED);
    let o = w.step(2, None, t(41));
    assert_eq!(o.pointer.canary_weight_bp, 5000);
}

#[test]
fn promote_and_abort_requests_end_the_rollout_without_analysis() {
    let mut w = World::new();
    w.step(2, None, t(0));
    w.annotations
        .insert(contract::ANNOTATION_PROMOTE.into(), "now".into());
    let o = w.step(2, None, t(1));
    assert_eq!(o.pointer.stable, "web-r2-h2");
    assert!(
        o.rollout.is_none(),
        "a requested promotion skips the bake too"
    );
    assert_eq!(o.consumed, vec![contract::ANNOTATION_PROMOTE]);

    let mut w = World::new();
    w.step(2, None, t(0));
    w.annotations
        .insert(contract::ANNOTATION_ABORT.into(), "now".into());
    let o = w.step(2, None, t(1));
    assert_eq!(o.pointer.canary, None);
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::Aborted));
    assert!(o.held_back.is_some());
}

#[test]
fn rollback_to_an_earlier_revision_skips_analysis_and_holds_the_spec_back() {
    let mut w = World::new();
    w.revisions = observed(&[1, 2, 3]);
    w.stable = rev(2);
    w.status.history = vec![RevisionRecord {
        revision: "r2".into(),
        number: 2,
        config_map: rev(2).configmap,
        hash: "h2".into(),
        outcome: Outcome::Stable,
        time: t(0).to_string(),
        reason: None,
        analysis: None,
    }];
    w.annotations
        .insert(contract::ANNOTATION_ROLLBACK_TO.into(), "1".into());
    let o = w.step(2, None, t(1));
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert_eq!(o.pointer.canary, None);
    assert_eq!(outcome_of(&o, "r1"), Some(Outcome::Stable));
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::Superseded));
    assert_eq!(
        o.held_back.as_ref().map(|h| h.revision.as_str()),
        Some("r2")
    );
    // Next pass: r1 keeps serving, nothing starts.
    let o = w.step(2, None, t(2));
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert!(!o.started);

    // A revision that does not exist is refused with a Warning, and the request consumed.
    w.annotations
        .insert(contract::ANNOTATION_ROLLBACK_TO.into(), "9".into());
    let o = w.step(2, None, t(3));
    assert!(o.events.iter().any(|e| e.reason == Reason::RollbackRefused));
    assert_eq!(o.pointer.stable, "web-r1-h1");
}

#[test]
fn a_spec_change_mid_rollout_replaces_the_canary() {
    let mut w = World::new();
    w.revisions = observed(&[1, 2, 3]);
    w.step(2, None, t(0));
    let o = w.step(3, None, t(3));
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::Replaced));
    assert_eq!(o.pointer.canary.as_deref(), Some("web-r3-h3"));
    assert!(o.started);
}

#[test]
fn without_steps_or_without_a_stable_revision_the_target_takes_everything() {
    let mut w = World::new();
    w.spec.steps.clear();
    let o = w.step(2, None, t(0));
    assert_eq!(o.pointer.stable, "web-r2-h2");
    assert!(o.rollout.is_none());

    let o = step(Input {
        spec: &RolloutSpec::default(),
        annotations: &BTreeMap::new(),
        generation: 1,
        prev: &VideoResizerConfigStatus::default(),
        target: rev(1),
        stable: None,
        revisions: &observed(&[1]),
        ready_replicas: 0,
        min_replicas: 1,
        restarts: 0,
        window: None,
        now: t(0),
    });
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert!(o.rollout.is_none());
}

#[test]
fn a_bake_failure_returns_to_the_previous_stable_revision() {
    let mut w = World::new();
    w.spec.steps = vec![RolloutStep {
        weight: 50,
        pause_seconds: 0,
    }];
    w.step(2, None, t(0));
    let o = w.step(2, Some(Verdict::Pass), t(5));
    assert_eq!(o.pointer.stable, "web-r2-h2");
    let o = w.step(2, Some(Verdict::Fail), t(10));
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::RolledBack));
    assert!(o.held_back.is_some());
}

#[test]
fn the_next_wake_is_the_next_window_or_the_step_end() {
    let mut w = World::new();
    let o = w.step(2, None, t(0));
    assert_eq!(
        o.wake_after,
        Some(Duration::from_secs(1)),
        "a look every second"
    );
    let ro = o.rollout.expect("rollout");
    assert!(window_due(&w.spec, &ro, t(1)));
    w.spec.analysis.interval_seconds = 5;
    assert!(!window_due(&w.spec, &ro, t(4)));
    assert!(window_due(&w.spec, &ro, t(5)));
}

#[test]
fn a_scale_down_the_autoscaler_may_make_does_not_fail_the_rollout() {
    let mut w = World::new();
    w.ready = 5;
    w.min_replicas = 2;
    w.step(2, None, t(0));
    w.ready = 3;
    let o = w.step(2, None, t(1));
    assert!(
        o.pointer.canary.is_some(),
        "5 → 3 pods, minReplicas 2: fine"
    );
    w.ready = 1;
    let o = w.step(2, None, t(2));
    assert_eq!(o.pointer.canary, None, "below minReplicas: fails");
}

#[test]
fn a_window_measured_for_a_replaced_canary_is_not_counted_against_the_new_one() {
    let mut w = World::new();
    w.revisions = observed(&[1, 2, 3]);
    w.spec.analysis.failure_limit = 0;
    w.step(2, None, t(0));
    // The spec moved to r3 while r2's window was being measured.
    let o = w.step(3, Some(Verdict::Fail), t(5));
    assert_eq!(o.pointer.canary.as_deref(), Some("web-r3-h3"));
    assert!(o.rolled_back.is_none());
    assert_eq!(o.rollout.as_ref().map(|r| r.failed_windows), Some(0));
}

#[test]
fn a_failure_after_passes_still_rolls_back() {
    let mut w = World::new();
    w.step(2, None, t(0));
    w.step(2, Some(Verdict::Pass), t(5));
    let o = w.step(2, Some(Verdict::Fail), t(30));
    assert_eq!(o.pointer.canary_weight_bp, 0);
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::RolledBack));
}

#[test]
fn abort_during_the_bake_returns_to_the_previous_revision_and_promote_ends_the_bake() {
    let mut w = World::new();
    w.spec.steps = vec![RolloutStep {
        weight: 50,
        pause_seconds: 0,
    }];
    w.step(2, None, t(0));
    let o = w.step(2, Some(Verdict::Pass), t(5));
    assert_eq!(
        o.rollout.as_ref().map(|r| r.state),
        Some(RolloutState::Baking)
    );
    w.annotations
        .insert(contract::ANNOTATION_ABORT.into(), "1".into());
    let o = w.step(2, None, t(6));
    assert_eq!(o.pointer.stable, "web-r1-h1");
    assert_eq!(outcome_of(&o, "r2"), Some(Outcome::Aborted));
    assert_eq!(outcome_of(&o, "r1"), Some(Outcome::Stable));
    assert_eq!(o.consumed, vec![contract::ANNOTATION_ABORT]);

    let mut w = World::new();
    w.spec.steps = vec![RolloutStep {
        weight: 50,
        pause_seconds: 0,
    }];
    w.step(2, None, t(0));
    w.step(2, Some(Verdict::Pass), t(5));
    w.annotations
        .insert(contract::ANNOTATION_PROMOTE.into(), "1".into());
    let o = w.step(2, None, t(6));
    assert!(o.rollout.is_none());
    assert_eq!(o.pointer.stable, "web-r2-h2");
    assert_eq!(o.consumed, vec![contract::ANNOTATION_PROMOTE]);
}
