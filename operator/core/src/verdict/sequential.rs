//! The sequential verdict of a rollout: the policy the user wrote (`spec.rollout.analysis`)
//! as a [`vr_verdict::Policy`] ([`policy_of`]), every look added to the rollout's
//! [`Evidence`] and turned into the [`AnalysisResult`] status records ([`look_result`]), and
//! the evidence carried in status so a new leader resumes the same test ([`restore`]).
//!
//! The statistics (hypotheses, error rates, minimum evidence) are `vr_verdict`'s, described in
//! `docs/canary-statistics.md`: every look may decide, and the confidence holds however many
//! looks are taken.

use super::policy::secs_since;
use super::window::{refused_canary, Sample, Window};
use k8s_openapi::jiff::Timestamp;
use std::fmt::Display;
use vr_crds::rollout::{
    AnalysisEvidence, AnalysisResult, AnalysisSpec, RevisionNumbers, RolloutSpec, RolloutState,
    RolloutStatus, Verdict,
};
use vr_verdict::{decide, Counts, Decision, Evidence, Policy};

/// Seconds after the rollout began during which a canary no pod has loaded yet is not called
/// refused (the data planes may not have read the new pointer yet).
pub const REFUSED_GRACE_SECONDS: f64 = 3.0;

/// The decision policy of `spec` (percent → fraction, milliseconds → seconds). During a bake
/// only the absolute limits apply: the previous revision takes no traffic, so nothing is
/// compared with it.
pub fn policy_of(spec: &AnalysisSpec, baking: bool) -> Policy {
    let pct = |v: u32| f64::from(v.min(100)) / 100.0;
    let policy = Policy {
        confidence: f64::from(spec.confidence_percent.clamp(50, 99)) / 100.0,
        min_requests: u64::from(spec.min_requests.max(1)),
        max_error_rate: Some(pct(spec.max_error_rate_percent)),
        max_error_increase: pct(spec.max_error_rate_increase_percent),
        max_client_error_increase: Some(pct(spec.max_client_error_rate_increase_percent)),
        max_latency_increase: Some(f64::from(spec.max_latency_increase_percent) / 100.0),
        latency_floor_seconds: f64::from(spec.latency_floor_milliseconds) / 1000.0,
        max_p95_seconds: spec.max_p95_milliseconds.map(|ms| f64::from(ms) / 1000.0),
        ..Policy::default()
    };
    if baking {
        Policy {
            max_error_increase: 1.0,
            max_client_error_increase: None,
            max_latency_increase: None,
            ..policy
        }
    } else {
        policy
    }
}

/// The policy `ro` is judged with now.
pub fn policy_for(spec: &RolloutSpec, ro: &RolloutStatus) -> Policy {
    policy_of(&spec.analysis, ro.state == RolloutState::Baking)
}

/// When the evidence of `ro` began: the rollout's start, or the bake's.
pub fn evidence_start(ro: &RolloutStatus) -> &str {
    if ro.state == RolloutState::Baking {
        &ro.step_started_at
    } else {
        &ro.started_at
    }
}

/// The evidence recorded in `ro`'s last look (the same rollout phase: a new rollout and a
/// bake start without one), or none. Open latency blocks are not persisted: a resumed rollout
/// starts new blocks, which drops data by time, never by value, and keeps the test valid.
pub fn restore(ro: &RolloutStatus) -> Evidence {
    ro.last_analysis
        .as_ref()
        .and_then(|a| a.evidence.as_ref())
        .and_then(|e| serde_json::to_value(e).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// The evidence as status records it.
pub fn to_status(e: &Evidence) -> Option<AnalysisEvidence> {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// Adds what a provider measured to `evidence` and returns the result to record: the
/// decision of [`vr_verdict::decide`] under [`policy_for`] (`Continue` is recorded as
/// `Inconclusive`, "deciding: …"), `Inconclusive` for a provider baseline, `Error` with the
/// provider's message, and `Fail` for a canary every pod refused (after
/// [`REFUSED_GRACE_SECONDS`], never during a bake). `notes` receives what was left out.
pub fn look_result<E: Display>(
    spec: &RolloutSpec,
    ro: &RolloutStatus,
    evidence: &mut Evidence,
    sampled: &Result<Sample, E>,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> AnalysisResult {
    let policy = policy_for(spec, ro);
    let at = secs_since(evidence_start(ro), now).clamp(0.0, 1e9);
    let mut result = match sampled {
        Err(e) => bare(Verdict::Error, vec![e.to_string()]),
        Ok(Sample::Baseline { reason }) => bare(Verdict::Inconclusive, vec![reason.clone()]),
        Ok(Sample::Window(w)) => {
            let mut look = w.look.clone();
            look.at_seconds = at.max(evidence.seconds);
            if w.totals {
                look.canary = since(&evidence.canary, &look.canary);
                look.stable = since(&evidence.stable, &look.stable);
            }
            notes.extend(evidence.observe(&policy, &look));
            let mut r = decided(decide(&policy, evidence));
            let baking = ro.state == RolloutState::Baking;
            if let Some(why) = refused(w, ro, now).filter(|_| !baking) {
                r.verdict = Verdict::Fail;
                r.rule = Some("Refused".into());
                r.p_value = None;
                r.reasons = vec![why];
            }
            r
        }
    };
    result.time = now.to_string();
    result.window_seconds = at.round().min(f64::from(u32::MAX)) as u32;
    result.canary = numbers(&evidence.canary);
    result.stable = numbers(&evidence.stable);
    result.evidence = to_status(evidence);
    result
}

fn refused(w: &Window, ro: &RolloutStatus, now: Timestamp) -> Option<String> {
    (secs_since(&ro.started_at, now) >= REFUSED_GRACE_SECONDS)
        .then(|| refused_canary(w, &ro.revision))
        .flatten()
}

/// Counts since the totals in `seen` (a total below them, from an extrapolating query, adds
/// nothing).
fn since(seen: &Counts, total: &Counts) -> Counts {
    Counts::new(
        total.requests.saturating_sub(seen.requests),
        total.server_errors.saturating_sub(seen.server_errors),
        total.client_errors.saturating_sub(seen.client_errors),
    )
}

fn numbers(c: &Counts) -> RevisionNumbers {
    RevisionNumbers {
        requests: c.requests,
        server_errors: c.server_errors,
        client_errors: c.client_errors,
        ..RevisionNumbers::default()
    }
}

fn bare(verdict: Verdict, reasons: Vec<String>) -> AnalysisResult {
    AnalysisResult {
        verdict,
        reasons,
        ..AnalysisResult::default()
    }
}

fn decided(d: Decision) -> AnalysisResult {
    match d {
        Decision::Inconclusive { reason } | Decision::Continue { reason, .. } => {
            bare(Verdict::Inconclusive, vec![reason])
        }
        Decision::Pass { reason, p_value } => AnalysisResult {
            p_value: Some(p_value),
            ..bare(Verdict::Pass, vec![reason])
        },
        Decision::Fail {
            rule,
            reason,
            p_value,
        } => AnalysisResult {
            rule: Some(format!("{rule:?}")),
            p_value: Some(p_value),
            ..bare(Verdict::Fail, vec![reason])
        },
    }
}

/// The result recorded when the numbers could not be read outside a look (`Error`).
pub fn error_result(now: Timestamp, reason: String) -> AnalysisResult {
    AnalysisResult {
        time: now.to_string(),
        ..bare(Verdict::Error, vec![reason])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_verdict::{Histogram, PodLatency, TRANSFORM};

    fn t(secs: f64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + (secs * 1000.0) as i64).expect("time")
    }

    fn canary() -> RolloutStatus {
        RolloutStatus {
            state: RolloutState::Canary,
            revision: "r2".into(),
            previous_revision: "r1".into(),
            started_at: t(0.0).to_string(),
            step_started_at: t(0.0).to_string(),
            ..RolloutStatus::default()
        }
    }

    fn look(c: (u64, u64, u64), s: (u64, u64, u64)) -> Result<Sample, String> {
        Ok(Sample::Window(Window {
            look: vr_verdict::Look {
                canary: Counts::new(c.0, c.1, c.2),
                stable: Counts::new(s.0, s.1, s.2),
                ..Default::default()
            },
            canary_loaded: Some((3, 3)),
            ..Window::default()
        }))
    }

    #[test]
    fn the_default_policy_maps_the_documented_knobs_and_validates() {
        let p = policy_of(&AnalysisSpec::default(), false);
        assert_eq!(p.confidence, 0.99);
        assert_eq!(p.min_requests, 20);
        assert_eq!(p.max_error_rate, Some(0.05));
        assert_eq!(p.max_error_increase, 0.02);
        assert_eq!(p.max_client_error_increase, Some(0.10));
        assert_eq!(p.max_latency_increase, Some(0.5));
        assert_eq!(p.latency_floor_seconds, 0.25);
        assert_eq!(p.max_p95_seconds, None);
        assert_eq!(p.validate(), Ok(()));
        let bake = policy_of(&AnalysisSpec::default(), true);
        assert_eq!(bake.max_client_error_increase, None);
        assert_eq!(bake.max_latency_increase, None);
        assert_eq!(bake.max_error_rate, Some(0.05));
        assert_eq!(bake.validate(), Ok(()));
    }

    #[test]
    fn a_canary_failing_everything_fails_at_the_first_look_past_min_requests() {
        let spec = RolloutSpec::default();
        let ro = canary();
        let mut e = Evidence::default();
        let mut notes = Vec::new();
        let r = look_result(
            &spec,
            &ro,
            &mut e,
            &look((12, 12, 0), (108, 0, 0)),
            t(1.0),
            &mut notes,
        );
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(
            r.reasons[0].contains("too little evidence"),
            "{:?}",
            r.reasons
        );
        let r = look_result(
            &spec,
            &ro,
            &mut e,
            &look((12, 12, 0), (108, 0, 0)),
            t(2.0),
            &mut notes,
        );
        assert_eq!(r.verdict, Verdict::Fail, "{:?}", r.reasons);
        assert_eq!(r.canary.requests, 24);
        assert_eq!(r.canary.server_errors, 24);
        assert_eq!(r.stable.requests, 216);
        assert!(r
            .rule
            .as_deref()
            .is_some_and(|x| x.starts_with("ErrorRate")));
        assert!(r.p_value.is_some_and(|p| p < 1e-6), "{:?}", r.p_value);
        assert!(r.reasons[0].contains("99 % confidence"), "{}", r.reasons[0]);
        assert_eq!(r.window_seconds, 2);
        // Status carries the evidence; a new leader resumes from it.
        let mut resumed = canary();
        resumed.last_analysis = Some(r.clone());
        let back = restore(&resumed);
        assert_eq!(back.canary, e.canary);
        assert_eq!(back.looks, 2);
    }

    #[test]
    fn a_healthy_canary_continues_then_passes_and_totals_become_deltas() {
        let spec = RolloutSpec::default();
        let ro = canary();
        let mut e = Evidence::default();
        let mut notes = Vec::new();
        let totals = |c: u64, s: u64| -> Result<Sample, String> {
            Ok(Sample::Window(Window {
                look: vr_verdict::Look {
                    canary: Counts::new(c, 0, 0),
                    stable: Counts::new(s, 0, 0),
                    ..Default::default()
                },
                totals: true,
                ..Window::default()
            }))
        };
        let r = look_result(&spec, &ro, &mut e, &totals(100, 900), t(5.0), &mut notes);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reasons[0].starts_with("deciding"), "{:?}", r.reasons);
        let r = look_result(&spec, &ro, &mut e, &totals(600, 5400), t(10.0), &mut notes);
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
        assert_eq!(r.canary.requests, 600, "totals are not added twice");
        // An extrapolated total below the evidence adds nothing.
        let r = look_result(&spec, &ro, &mut e, &totals(590, 5400), t(11.0), &mut notes);
        assert_eq!(r.canary.requests, 600);
    }

    #[test]
    fn a_refused_canary_fails_after_the_grace_and_never_during_a_bake() {
        let spec = RolloutSpec::default();
        let ro = canary();
        let refused = Ok::<_, String>(Sample::Window(Window {
            canary_loaded: Some((0, 3)),
            ..Window::default()
        }));
        let mut notes = Vec::new();
        let early = look_result(
            &spec,
            &ro,
            &mut Evidence::default(),
            &refused,
            t(1.0),
            &mut notes,
        );
        assert_eq!(early.verdict, Verdict::Inconclusive);
        let later = look_result(
            &spec,
            &ro,
            &mut Evidence::default(),
            &refused,
            t(4.0),
            &mut notes,
        );
        assert_eq!(later.verdict, Verdict::Fail);
        assert!(later.reasons[0].contains("refused"), "{:?}", later.reasons);
        let mut bake = canary();
        bake.state = RolloutState::Baking;
        let b = look_result(
            &spec,
            &bake,
            &mut Evidence::default(),
            &refused,
            t(9.0),
            &mut notes,
        );
        assert_eq!(b.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn errors_and_baselines_keep_the_evidence() {
        let spec = RolloutSpec::default();
        let ro = canary();
        let mut e = Evidence::default();
        let mut notes = Vec::new();
        look_result(
            &spec,
            &ro,
            &mut e,
            &look((30, 0, 0), (270, 0, 0)),
            t(2.0),
            &mut notes,
        );
        let err: Result<Sample, String> = Err("no ready data-plane pod to scrape".into());
        let r = look_result(&spec, &ro, &mut e, &err, t(3.0), &mut notes);
        assert_eq!(r.verdict, Verdict::Error);
        assert_eq!(r.reasons, vec!["no ready data-plane pod to scrape"]);
        assert_eq!(r.canary.requests, 30);
        let base: Result<Sample, String> = Ok(Sample::Baseline {
            reason: "baseline".into(),
        });
        let r = look_result(&spec, &ro, &mut e, &base, t(4.0), &mut notes);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert_eq!(e.looks, 1);
    }

    #[test]
    fn a_slower_canary_in_the_same_pods_fails_the_latency_rule() {
        let spec = RolloutSpec::default();
        let ro = canary();
        let mut e = Evidence::default();
        let mut notes = Vec::new();
        let bounds: Vec<f64> = (0..17).map(|i| 0.001 * 2f64.powi(i)).collect();
        let hist = |i: usize, n: u64| {
            let mut counts = vec![0; bounds.len() + 1];
            counts[i] = n;
            Histogram::new(bounds.clone(), counts).expect("histogram")
        };
        let mut last = None;
        for k in 1..=40 {
            let w = Window {
                look: vr_verdict::Look {
                    canary: Counts::new(20, 0, 0),
                    stable: Counts::new(20, 0, 0),
                    latency: (0..3)
                        .map(|p| PodLatency {
                            pod: format!("10.0.0.{p}:9090"),
                            kind: TRANSFORM.into(),
                            // ~1 s against ~250 ms: 4× slower, in the same pod and seconds.
                            canary: hist(10, 2),
                            stable: hist(8, 2),
                        })
                        .collect(),
                    ..Default::default()
                },
                ..Window::default()
            };
            let r = look_result(
                &spec,
                &ro,
                &mut e,
                &Ok::<_, String>(Sample::Window(w)),
                t(f64::from(k)),
                &mut notes,
            );
            if r.verdict == Verdict::Fail {
                last = Some(r);
                break;
            }
        }
        let r = last.expect("the latency rule fails within 40 looks");
        assert_eq!(
            r.rule.as_deref(),
            Some("LatencyIncrease"),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons[0].contains("same pod and kind"),
            "{}",
            r.reasons[0]
        );
    }
}
